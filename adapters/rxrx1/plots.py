"""Figures: embeddings coloured by experiment per correction (a cell artifact)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .screen import groups_of


def plot_embeddings(runs: dict[str, Any], data: Any, path: Path, split: str = "id_test",
                    cell_type: int = 1) -> None:
    """PCA of one cell type's embeddings per correction, coloured by experiment."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = groups_of(data, split)
    rows = (g["cell_type"] == cell_type).numpy()
    exp = g["experiment"].numpy()[rows]
    names = [n for n in runs if split in runs[n]["embeddings"]]
    cols = min(4, len(names)) or 1
    nrows = max(1, (len(names) + cols - 1) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3 * cols, 2.8 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    labels = data.meta.get("experiments", [])
    for ax, n in zip(axes.flat, names, strict=False):
        e = runs[n]["embeddings"][split].numpy()[rows]
        e = (e - e.mean(0)) / (e.std(0) + 1e-8)
        _, _, vt = np.linalg.svd(e, full_matrices=False)
        xy = e @ vt[:2].T
        for k in np.unique(exp):
            sel = exp == k
            ax.scatter(xy[sel, 0], xy[sel, 1], s=5, alpha=0.7,
                       label=labels[k] if k < len(labels) else str(k))
        ax.set_title(n, fontsize=9)
        ax.axis("on")
        ax.set_xticks([])
        ax.set_yticks([])
    axes.flat[0].legend(fontsize=6, markerscale=2)
    ct = data.meta.get("cell_types", ["?"] * 4)[cell_type]
    fig.suptitle(f"{ct} embeddings ({split}), PCA, coloured by experiment", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
