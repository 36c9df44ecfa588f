"""Figures of the pixel pendulum: true frames over the frames decoded from latent rollouts.

Each ``hnn/pixel-rollout`` cell saves ``pixel_rollout.npz`` (the first evaluation
episode's true and predicted first frames, and both energies) and ``rollout_frames.png``
(truth over this model). When a run finishes, cells that share the data (same dataset
and seed) also get ``compare_rollout_frames.png``: truth, baseline and HNN rows, and the
energies read off the frames beneath.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness import RunContext  # noqa: E402

from .plots import data_key, up_to_date  # noqa: E402


def _rows(recs: list[dict[str, Any]], every: int, cols: int, title: str) -> Any:
    side = int(round(np.sqrt(recs[0]["true"].shape[-1])))
    times = list(range(0, min(len(recs[0]["true"]), every * cols), every))
    names = ["ground truth"] + [r["name"] for r in recs]
    seqs = [recs[0]["true"]] + [r["pred"] for r in recs]
    fig = plt.figure(figsize=(0.9 * len(times) + 1, 0.95 * len(seqs) + 2.4))
    grid = fig.add_gridspec(len(seqs) + 1, len(times), height_ratios=[1] * len(seqs) + [2])
    for r, (name, seq) in enumerate(zip(names, seqs, strict=True)):
        for c, t in enumerate(times):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(seq[t].reshape(side, side), cmap="gray", vmin=0, vmax=0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t={t}", fontsize=7)
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
    ax = fig.add_subplot(grid[len(seqs), :])
    ax.plot(recs[0]["e_true"], color="black", lw=2, label="ground truth")
    for rec in recs:
        ax.plot(rec["e_pred"], lw=1.3, label=rec["name"])
    ax.set_xlabel("frame")
    ax.set_ylabel("energy (read off frames)", fontsize=7)
    ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def save_frames(ctx: RunContext, data: Any, true: np.ndarray, pred: np.ndarray,
                e_true: np.ndarray, e_pred: np.ndarray, label: str, kind: str, every: int,
                cols: int) -> None:
    half = true.shape[-1] // 2
    name = {"baseline": "baseline NN", "hnn:solenoidal": "HNN"}.get(kind, kind)
    rec = {"true": true[0, :, :half], "pred": pred[0, :, :half], "e_true": e_true[0],
           "e_pred": e_pred[0], "name": name}
    key = data_key(data, np.arange(true.shape[1]))
    np.savez(ctx.artifact("pixel_rollout.npz"), **rec,
             meta=json.dumps({"label": label, "kind": kind, "key": key, "every": every,
                              "cols": cols}))
    fig = _rows([rec], every, cols, f"{label}: decoded latent rollout vs truth")
    fig.savefig(ctx.artifact("rollout_frames.png"), dpi=90)
    plt.close(fig)


def save_pixel_comparisons(out_dir: str) -> int:
    groups: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for path in sorted(Path(out_dir).glob("cells/*/artifacts/pixel_rollout.npz")):
        try:
            with np.load(path, allow_pickle=False) as z:
                rec: dict[str, Any] = {k: z[k] for k in ("true", "pred", "e_true", "e_pred")}
                rec["name"] = str(z["name"])
                rec.update(json.loads(str(z["meta"])))
        except (OSError, KeyError, ValueError):
            continue
        groups.setdefault(str(rec["key"]), []).append((path, rec))
    done = 0
    for members in groups.values():
        if len(members) < 2:
            continue
        if up_to_date([p for p, _ in members], ("compare_rollout_frames.png",)):
            done += len(members)
            continue
        recs = sorted((r for _, r in members), key=lambda r: (r["kind"] != "baseline",
                                                              str(r["label"])))
        title = str(recs[0]["label"]).split("/")[0] + ": truth vs decoded latent rollouts"
        fig = _rows(recs, int(recs[0]["every"]), int(recs[0]["cols"]), title)
        for path, _ in members:
            fig.savefig(path.parent / "compare_rollout_frames.png", dpi=90)
            done += 1
        plt.close(fig)
    return done
