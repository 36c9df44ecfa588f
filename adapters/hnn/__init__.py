"""Hamiltonian Neural Networks (Greydanus, Dzamba & Yosinski, NeurIPS 2019, arXiv
1906.01563), after the official code greydanus/hamiltonian-nn.

Adapters: datasets ``hnn/spring``, ``hnn/pendulum``, ``hnn/two-body``; models ``hnn/mlp``
(baseline) and ``hnn/hnn``; method ``hnn/train``; metrics ``hnn/derivative-loss``,
``hnn/rollout`` and ``hnn/reversibility``. The pixel pendulum: dataset
``hnn/pixel-pendulum``, models ``hnn/pixel-mlp`` and ``hnn/pixel-hnn``, method
``hnn/pixel-train``, metric ``hnn/pixel-rollout``. Each module's docstring lists its
deviations from the official code; ``docs/hnn.md`` collects them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import Adapter, hookimpl


@hookimpl
def harness_adapters() -> list[type[Adapter]]:
    # imported here, not at the top: a run that only calls this plugin's other
    # hooks imports none of its adapter modules (harness.manifest)
    from .datasets import DATASETS
    from .models import MODELS
    from .pixel_metrics import PixelRollout
    from .pixel_models import PIXEL_ADAPTERS
    from .pixels import PixelPendulum
    from .rollout import METRICS
    from .train import Train
    return [*DATASETS, *MODELS, Train, *METRICS, PixelPendulum, *PIXEL_ADAPTERS, PixelRollout]


def _figures_fresh(out_dir: str, rollout: str, names: tuple[str, ...]) -> bool:
    """True when every cell with a ``rollout`` file already has the figures ``names``,
    each written after the newest rollout of the run (a cached re-run): then nothing is
    redrawn, and matplotlib, numpy and torch are not even imported. A sufficient check
    only: anything else goes to the plotting module, which decides per group of cells."""
    rollouts = list(Path(out_dir).glob(f"cells/*/artifacts/{rollout}"))
    try:
        newest = max(p.stat().st_mtime_ns for p in rollouts)
        return all((p.parent / n).stat().st_mtime_ns >= newest for p in rollouts for n in names)
    except (OSError, ValueError):  # no rollout, or a figure missing
        return False


@hookimpl
def harness_run_finished(summary: dict[str, Any], out_dir: str) -> None:
    """Truth vs baseline vs HNN plots into the cells that share a dataset and seed."""
    adapters = summary.get("adapters", [])
    if "hnn/rollout" in adapters and not _figures_fresh(
            out_dir, "rollouts.npz", ("compare_phase_portrait.png", "compare_energy.png")):
        from .plots import save_comparisons
        save_comparisons(out_dir)
    if "hnn/pixel-rollout" in adapters and not _figures_fresh(
            out_dir, "pixel_rollout.npz", ("compare_rollout_frames.png",)):
        from .pixel_plots import save_pixel_comparisons
        save_pixel_comparisons(out_dir)


@hookimpl
def harness_report_sections(summary: dict[str, Any], out_dir: str) -> list[tuple[str, str]]:
    if "hnn/rollout" not in summary.get("adapters", []):
        return []
    from .plots import report_sections
    return report_sections(out_dir)
