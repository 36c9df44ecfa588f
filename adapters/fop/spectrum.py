"""Plots of learned preconditioners' eigenvalue spectra (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path


def plot_spectra(path: Path, spectra: dict[str, list[float]], title: str = "") -> Path:
    """One curve per block: eigenvalues sorted descending against their rank (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, eig in spectra.items():
        vals = sorted((max(v, 1e-12) for v in eig), reverse=True)
        ax.plot(range(1, len(vals) + 1), vals, marker="o" if len(vals) <= 64 else None,
                markersize=3, label=f"{name} ({len(vals)})")
    ax.set_yscale("log")
    ax.set_xscale("log" if max((len(v) for v in spectra.values()), default=1) > 64 else "linear")
    ax.set_xlabel("rank")
    ax.set_ylabel("eigenvalue of P = M M^T")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
