"""The paper's findings (2) and (3), computed from the per-layer per-iteration LCA.

Lan et al., arXiv 1909.01440, abstract: "(2) Some entire layers hurt overall ... (3)
increments in learning proceed in a synchronized manner across layers, often peaking on
identical iterations". The paper shows (3) with per-layer LCA curves whose peaks line up
(its Fig. 6-7 kind); it gives no statistic, so the one here is ours:

- a *peak* of layer j is an iteration t where layer j helps more than at t-1 and at t+1
  (a strict local maximum of ``-LCA_j``; "layer" is one parameter tensor, as everywhere
  in this adapter);
- the *synchronization* of two layers is the share of the sparser layer's peaks that are
  also peaks of the other; ``peak_sync`` is its mean over all pairs of layers;
- the baseline permutes each layer's series in time independently (``shuffles`` times,
  random numbers from the run context) and computes the same number: about 1/3 for
  series without common timing. ``peak_sync_ratio`` = actual / shuffled.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def peak_mask(series: np.ndarray) -> np.ndarray:
    """Boolean mask of the iterations where ``-series`` is a strict local maximum."""
    helped = -np.asarray(series, dtype=np.float64)
    mask = np.zeros(len(helped), dtype=bool)
    if len(helped) >= 3:
        mask[1:-1] = (helped[1:-1] > helped[:-2]) & (helped[1:-1] > helped[2:])
    return mask


def peak_sync(layers: np.ndarray) -> float:
    """Mean over layer pairs of |peaks_i & peaks_j| / min(|peaks_i|, |peaks_j|)."""
    masks = [peak_mask(layers[:, j]) for j in range(layers.shape[1])]
    shares = []
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            fewest = min(int(masks[i].sum()), int(masks[j].sum()))
            if fewest:
                shares.append(float((masks[i] & masks[j]).sum()) / fewest)
    return float(np.mean(shares)) if shares else float("nan")


def shuffled_peak_sync(layers: np.ndarray, rng: np.random.Generator,
                       shuffles: int = 20) -> float:
    """``peak_sync`` with every layer's series permuted in time on its own (the baseline
    of no common timing), averaged over ``shuffles`` draws."""
    steps, n_layers = layers.shape
    values = [peak_sync(np.stack([layers[rng.permutation(steps), j]
                                  for j in range(n_layers)], axis=1))
              for _ in range(shuffles)]
    return float(np.mean(values))


def synchronization(layers: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    actual = peak_sync(layers)
    shuffled = shuffled_peak_sync(layers, rng)
    return {"lca_peak_sync": actual, "lca_peak_sync_shuffled": shuffled,
            "lca_peak_sync_ratio": actual / shuffled if shuffled > 0 else float("nan")}


def plot_peaks(plt: Any, rec: dict[str, Any], window: int = 100) -> Any:
    """Redraw of the paper's per-layer LCA over iterations with the peaks marked: the
    first ``window`` iterations, each layer's LCA scaled to its largest magnitude and
    offset, its peaks as dots, and grey lines where at least half the layers peak."""
    layers, names = rec["layers"][:window], rec["names"]
    n_layers = layers.shape[1]
    masks = np.stack([peak_mask(layers[:, j]) for j in range(n_layers)], axis=1)
    steps = np.arange(1, len(layers) + 1)
    fig, ax = plt.subplots(figsize=(12, 0.9 * n_layers + 1.5))
    for t in steps[masks.sum(axis=1) * 2 >= n_layers]:
        ax.axvline(t, color="0.85", lw=2, zorder=0)
    for j in range(n_layers):
        helped = -layers[:, j] / max(np.abs(layers[:, j]).max(), 1e-300)
        base = 1.2 * (n_layers - 1 - j)
        ax.plot(steps, base + helped, lw=0.9)
        ax.plot(steps[masks[:, j]], base + helped[masks[:, j]], "k.", ms=3)
    ax.set_yticks([1.2 * (n_layers - 1 - j) for j in range(n_layers)], list(names),
                  fontsize=7)
    ax.set(xlabel="iteration", title="-LCA per layer (scaled; up = helped), peaks as dots; "
           "grey: iterations where at least half of the layers peak")
    fig.tight_layout()
    return fig
