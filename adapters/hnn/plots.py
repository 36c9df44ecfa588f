"""Plots for the HNN rollouts: phase portraits and energy over time (truth vs models).

Every ``hnn/rollout`` cell saves ``rollouts.npz`` and its own ``phase_portrait.png`` and
``energy.png`` (truth vs this cell's model). When a run finishes (the core's
``harness_run_finished`` hook), every cell whose sibling cells rolled out from the same data
and evaluation times (same data fingerprint: same dataset and seed) also gets
``compare_phase_portrait.png`` and ``compare_energy.png``: truth, baseline and HNN together.
``harness report`` draws the same comparisons per dataset and seed (``report_sections``).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from harness import RunContext  # noqa: E402
from harness.fingerprint import fingerprint  # noqa: E402

COLORS = {"truth": "black", "baseline": "tab:red", "hnn": "tab:blue"}
KEYS = ("t", "true", "model", "e_true", "e_model")


def _color(kind: str) -> str:
    if kind == "baseline":
        return COLORS["baseline"]
    return COLORS["hnn"] if kind == "hnn:solenoidal" else "tab:green"


def _name(rec: dict[str, Any]) -> str:
    kind = str(rec["kind"])
    base = {"baseline": "baseline NN", "hnn:solenoidal": "HNN"}.get(kind, kind)
    return f"{base} ({rec['label'].split('/')[1]})" if "/" in rec["label"] else base


def data_key(data: Any, t: np.ndarray) -> str:
    return fingerprint({"data": data, "t": np.asarray(t)})


def _positions(x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """What a phase portrait draws: (q, p) for 2-D states, body paths for two bodies."""
    if x.shape[-1] == 2:
        return [(x[:, 0], x[:, 1])]
    return [(x[:, 0], x[:, 2]), (x[:, 1], x[:, 3])]


def _phase(ax: Any, recs: list[dict[str, Any]], k: int) -> None:
    true = recs[0]["true"]
    for i in range(min(k, len(true))):
        for xs, ys in _positions(true[i]):
            ax.plot(xs, ys, "-", color=COLORS["truth"], lw=2,
                    label="ground truth" if i == 0 else None)
        for rec in recs:
            for xs, ys in _positions(rec["model"][i]):
                ax.plot(xs, ys, "--", color=_color(str(rec["kind"])), lw=1.5,
                        label=_name(rec) if i == 0 else None)
    two_d = true.shape[-1] == 2
    ax.set_xlabel("$q$" if two_d else "$x$")
    ax.set_ylabel("$p$" if two_d else "$y$")
    ax.legend(fontsize=7)


def _energy(fig: Any, recs: list[dict[str, Any]], k: int) -> None:
    n = min(k, len(recs[0]["true"]))
    for i in range(n):
        ax = fig.add_subplot(1, n, i + 1)
        ax.plot(recs[0]["t"], recs[0]["e_true"][i], "-", color=COLORS["truth"], lw=2,
                label="ground truth")
        for rec in recs:
            ax.plot(recs[0]["t"], rec["e_model"][i], "-", color=_color(str(rec["kind"])),
                    lw=1.5, label=_name(rec))
        ax.set_xlabel("time")
        ax.set_title(f"start {i}: energy", fontsize=9)
        if i == 0:
            ax.set_ylabel("energy (as the paper measures it)")
            ax.legend(fontsize=7)


def _quiver(ax: Any, model: Any, data: Any) -> None:
    pts = np.concatenate([data.x_train.numpy(), data.eval_states])
    r = 1.15 * float(np.abs(pts).max())
    g = np.linspace(-r, r, 15)
    qq, pp = np.meshgrid(g, g)
    grid = torch.tensor(np.stack([qq.ravel(), pp.ravel()], 1), dtype=torch.float32)
    field = model.time_derivative(grid, create_graph=False).numpy()
    ax.quiver(qq.ravel(), pp.ravel(), field[:, 0], field[:, 1], color=(0.6, 0.6, 0.6))


def save_rollout_plots(ctx: RunContext, data: Any, model: Any, rec: dict[str, Any],
                       k: int) -> None:
    """``rollouts.npz``, ``phase_portrait.png`` and ``energy.png`` for one cell."""
    rec["key"] = data_key(data, rec["t"])
    np.savez(ctx.artifact("rollouts.npz"), **{k_: rec[k_] for k_ in KEYS},
             meta=json.dumps({"label": rec["label"], "kind": rec["kind"], "key": rec["key"]}))
    fig, ax = plt.subplots(figsize=(5, 4.5))
    if data.dim == 2:
        _quiver(ax, model, data)
    _phase(ax, [rec], k)
    ax.set_title(f"{data.name}: {_name(rec)} vs truth", fontsize=10)
    fig.tight_layout()
    fig.savefig(ctx.artifact("phase_portrait.png"), dpi=90)
    plt.close(fig)
    fig = plt.figure(figsize=(4 * min(k, len(rec["true"])), 3.2))
    _energy(fig, [rec], k)
    fig.tight_layout()
    fig.savefig(ctx.artifact("energy.png"), dpi=90)
    plt.close(fig)


def load_record(path: Path) -> dict[str, Any] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            rec: dict[str, Any] = {k: z[k] for k in KEYS}
            rec.update(json.loads(str(z["meta"])))
        return rec
    except (OSError, KeyError, ValueError):
        return None


def comparison_figures(recs: list[dict[str, Any]], title: str, k: int) -> list[Any]:
    recs = sorted(recs, key=lambda r: (r["kind"] != "baseline", str(r["label"])))
    fig1, ax = plt.subplots(figsize=(5, 4.5))
    _phase(ax, recs, k)
    ax.set_title(f"{title}: phase portrait", fontsize=10)
    fig1.tight_layout()
    fig2 = plt.figure(figsize=(4 * min(k, len(recs[0]["true"])), 3.2))
    _energy(fig2, recs, k)
    fig2.suptitle(f"{title}: energy over time", fontsize=10)
    fig2.tight_layout()
    return [fig1, fig2]


def _groups(out_dir: str) -> dict[str, list[tuple[Path, dict[str, Any]]]]:
    """Saved rollouts of a results folder, grouped by data key (dataset and seed)."""
    groups: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for path in sorted(Path(out_dir).glob("cells/*/artifacts/rollouts.npz")):
        rec = load_record(path)
        if rec is not None:
            groups.setdefault(str(rec["key"]), []).append((path, rec))
    return groups


def save_comparisons(out_dir: str, k: int = 3) -> int:
    """Truth vs every model on the same data, into each of those cells' artifacts.

    Returns the number of cells that got comparison plots."""
    done = 0
    names = ("compare_phase_portrait.png", "compare_energy.png")
    for members in _groups(out_dir).values():
        if len(members) < 2:
            continue
        done += len(members)
        if up_to_date([p for p, _ in members], names):  # a re-run redraws nothing
            continue
        recs = [rec for _, rec in members]
        title = str(recs[0]["label"]).split("/")[0]
        for fig, name in zip(comparison_figures(recs, title, k), names, strict=True):
            for path, _ in members:  # the same figure in every cell of the group
                fig.savefig(path.parent / name, dpi=90)
            plt.close(fig)
    return done


def up_to_date(rollouts: list[Path], names: tuple[str, ...]) -> bool:
    """True when every cell of a group already has its comparison figures, written after
    the newest of the group's rollouts (a cached re-run, or cells copied into a control's
    folder with their figures)."""
    try:
        newest = max(p.stat().st_mtime_ns for p in rollouts)
        return all((p.parent / n).stat().st_mtime_ns >= newest for p in rollouts for n in names)
    except (OSError, ValueError):
        return False


def report_sections(out_dir: str, k: int = 3) -> list[tuple[str, str]]:
    """HTML sections: truth vs all models, one per (dataset, seed) in a results folder."""
    sections = []
    for members in _groups(out_dir).values():
        recs = [rec for _, rec in members]
        label = str(recs[0]["label"])
        parts = label.split("/")
        title = f"{parts[0]} {parts[-1]}" if len(parts) > 1 else label
        imgs = []
        for fig in comparison_figures(recs, title, k):
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=80)
            plt.close(fig)
            data = base64.b64encode(buf.getvalue()).decode()
            imgs.append(f'<img src="data:image/png;base64,{data}" style="max-width:560px">')
        sections.append((f"HNN rollouts: {title}", "".join(imgs)))
    return sections
