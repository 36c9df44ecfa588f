"""Metrics and plots on the outputs of the ``lca/allocation`` observer.

``lca/summary`` turns the observer's record into numbers (conservation residuals, the
first-order comparison, fraction of parameters helping, per-layer totals, the
synchronization of the layers' peaks of ``findings.py``); ``lca/plots``
draws the pictures of the paper's kind into the cell's artifacts. Both read
``outputs["observers"]["lca/allocation"]`` of any training method that ran the observer.
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any, Literal

import numpy as np
from pydantic import Field

from harness import CellResult, HarnessError, Metric, Params, RunContext

from .findings import plot_peaks, synchronization

TINY = 1e-300


class ObserverParams(Params):
    observer: str = Field("lca/allocation", description="key under outputs['observers']")
    objective: Literal["train", "test"] = Field(
        "train", description="which loss (test needs the observer's test_set: true)")


def lca_record(result: CellResult, p: ObserverParams) -> dict[str, Any]:
    """The observer's output for the chosen objective (names/settings attached)."""
    observers = result.outputs.get("observers")
    if not isinstance(observers, dict) or p.observer not in observers:
        raise HarnessError(
            f"this method's outputs have no observer {p.observer!r}",
            hint="add `observers: [{use: lca/allocation}]` to a training method that "
            "calls observers (e.g. torch/train-classifier)")
    rec = observers[p.observer]
    if p.objective == "test":
        if "test" not in rec:
            raise HarnessError("lca metrics: objective test needs the observer's test_set",
                               hint="set test_set: true in lca/allocation")
        rec = {**rec, **rec["test"]}
    if len(rec["residual"]) == 0:
        raise HarnessError("lca/allocation observed no optimizer step")
    return rec


def summarize(rec: dict[str, Any], layers: bool = True,
              rng: np.random.Generator | None = None) -> dict[str, float]:
    """Every number the summary metric reports, from one observer record (the
    synchronization numbers only with ``rng``, which draws their shuffled baseline)."""
    settings = rec["settings"]
    dl = rec["loss_after"] - rec["loss_before"]
    loss_change = float(dl.sum())
    lca_sum = float(rec["layers"].sum())
    fo_sum = float(rec["layers_first_order"].sum())
    residual = abs(loss_change - lca_sum)
    fo_residual = abs(loss_change - fo_sum)
    scale = max(abs(loss_change), TINY)
    step_res = np.abs(rec["residual"])
    totals = rec["layers"].sum(axis=0)
    out = {
        "lca_loss_start": float(rec["loss_before"][0]),
        "lca_loss_end": float(rec["loss_after"][-1]),
        "lca_loss_change": loss_change,
        "lca_sum": lca_sum,
        "lca_residual": residual,
        "lca_residual_rel": residual / scale,
        "lca_first_order_sum": fo_sum,
        "lca_first_order_residual": fo_residual,
        "lca_first_order_residual_rel": fo_residual / scale,
        "lca_first_order_ratio": fo_residual / max(residual, TINY),
        "lca_step_residual_max": float(step_res.max()),
        "lca_step_residual_abs_sum": float(step_res.sum()),
        "lca_first_order_step_residual_max": float(np.abs(rec["first_order_residual"]).max()),
        "lca_steps_over_tolerance": float((step_res > settings["tolerance"]).sum()),
        "lca_splits_mean": float(np.mean(rec["splits"])),
        "lca_splits_max": float(np.max(rec["splits"])),
        "lca_helped_fraction": float(np.mean(rec["helped"])),
        "lca_helped_fraction_nonzero": float(np.mean(
            rec["helped"] / np.maximum(1.0 - rec["zero"], TINY))),
        "lca_zero_fraction": float(np.mean(rec["zero"])),
        "lca_params_helped_total": float((rec["param_totals"] < 0).mean()),
        "lca_layers": float(len(totals)),
        "lca_hurting_layers": float((totals > 0).sum()),
        "lca_steps": float(len(dl)),
        "lca_gradient_evaluations": float(rec["evaluations"]),
        "lca_restarts": float(rec["restarts"]),
    }
    if rng is not None:
        out.update(synchronization(rec["layers"], rng))
    if layers:
        out.update({f"lca_layer/{name}": float(v)
                    for name, v in zip(rec["names"], totals, strict=True)})
    return out


class LCASummary(Metric):
    """LCA numbers: conservation and first-order residuals, fraction helping, layers."""

    name = "lca/summary"
    outputs = ("lca_*",)

    class Params(ObserverParams):
        layers: bool = Field(True, description="report lca_layer/<parameter name> totals")
        groups: dict[str, list[str]] = Field(
            default_factory=dict, description="named groups of parameter tensors "
            "(fnmatch patterns, e.g. {hidden: ['1.*', '3.*']}): lca_group/<name> is the "
            "total LCA of the tensors matching any of the group's patterns")

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        rec = lca_record(result, self.params)
        out = summarize(rec, self.params.layers, ctx.derive("lca/peak-shuffle").rng)
        totals = rec["layers"].sum(axis=0)
        for group, patterns in self.params.groups.items():
            keep = [any(fnmatch.fnmatchcase(n, pat) for pat in patterns) for n in rec["names"]]
            if not any(keep):
                raise HarnessError(f"lca/summary groups.{group}: no parameter tensor matches "
                                   f"{patterns}", hint=f"the tensors are {', '.join(rec['names'])}")
            out[f"lca_group/{group}"] = float(totals[np.array(keep)].sum())
        return {k: v for k, v in out.items() if math.isfinite(v)}


class LCAPlots(Metric):
    """Plots of LCA: per layer over iterations, per-parameter totals, loss vs sum of LCA."""

    name = "lca/plots"
    outputs = ()
    Params = ObserverParams

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rec = lca_record(result, self.params)
        tag = "" if self.params.objective == "train" else "_test"
        figures = {
            f"lca_layers{tag}.png": plot_layers(plt, rec),
            f"lca_param_totals{tag}.png": plot_param_totals(plt, rec),
            f"lca_conservation{tag}.png": plot_conservation(plt, rec),
            f"lca_peaks{tag}.png": plot_peaks(plt, rec),
        }
        for name, fig in figures.items():
            fig.savefig(ctx.artifact(name), dpi=110)
            plt.close(fig)
        return {}


def plot_layers(plt: Any, rec: dict[str, Any]) -> Any:
    layers, names = rec["layers"], rec["names"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    steps = np.arange(1, len(layers) + 1)
    for j, name in enumerate(names):
        ax1.plot(steps, np.cumsum(layers[:, j]), label=name)
    ax1.axhline(0, color="k", linestyle=":")
    ax1.set(xlabel="iteration", ylabel="cumulative LCA (summed over the layer)",
            title="LCA per layer over training (negative = helped)")
    ax1.legend(fontsize=7)
    totals = layers.sum(axis=0)
    ax2.bar(range(len(names)), totals, color=["tab:green" if v < 0 else "tab:red"
                                              for v in totals])
    ax2.axhline(0, color="k", linestyle=":")
    ax2.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    ax2.set(ylabel="total LCA", title=f"{int((totals > 0).sum())} of {len(names)} "
            "parameter tensors hurt")
    fig.tight_layout()
    return fig


def plot_param_totals(plt: Any, rec: dict[str, Any]) -> Any:
    totals = rec["param_totals"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    ax1.hist(totals, bins=120, color="tab:blue", log=True)
    ax1.axvline(0, color="k", linestyle=":")
    ax1.set(xlabel="total LCA of one parameter over the run", ylabel="parameters",
            title=f"{(totals < 0).mean():.1%} of parameters helped in total")
    steps = np.arange(1, len(rec["helped"]) + 1)
    ax2.plot(steps, rec["helped"], lw=0.8, label="all parameters")
    for j, name in enumerate(rec["names"]):
        ax2.plot(steps, rec["layer_helped"][:, j], lw=0.5, alpha=0.6, label=name)
    ax2.axhline(0.5, color="k", linestyle=":")
    ax2.set(xlabel="iteration", ylabel="fraction with LCA < 0",
            title=f"parameters helping per iteration (mean {np.mean(rec['helped']):.3f})")
    ax2.legend(fontsize=6)
    fig.tight_layout()
    return fig


def plot_conservation(plt: Any, rec: dict[str, Any]) -> Any:
    s = summarize(rec, layers=False)
    l0 = rec["loss_before"][0]
    dl = rec["loss_after"] - rec["loss_before"]
    steps = np.arange(len(dl) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    ax1.plot(steps, l0 + np.concatenate([[0], np.cumsum(dl)]), label="actual loss", lw=2)
    ax1.plot(steps, l0 + np.concatenate([[0], np.cumsum(rec["layers"].sum(1))]),
             label="L0 + cumulative sum of LCA", lw=1)
    ax1.plot(steps, l0 + np.concatenate([[0], np.cumsum(rec["layers_first_order"].sum(1))]),
             label="L0 + cumulative first-order LCA", lw=1, linestyle="--")
    ax1.set(xlabel="iteration", ylabel="full training-set loss",
            title=f"loss vs sum of LCA (error {s['lca_residual_rel']:.3%}, first order "
            f"{s['lca_first_order_residual_rel']:.1%})")
    ax1.legend(fontsize=8)
    ax2.semilogy(steps[1:], np.abs(rec["residual"]) + TINY, ".", ms=2, label="|residual|")
    ax2.semilogy(steps[1:], np.abs(rec["first_order_residual"]) + TINY, ".", ms=2,
                 alpha=0.5, label="|first-order residual|")
    ax2.axhline(rec["settings"]["tolerance"], color="k", linestyle=":", label="tolerance")
    ax2.set(xlabel="iteration", ylabel="|dL - sum LCA| per iteration",
            title=f"per-iteration residual (splits: mean {s['lca_splits_mean']:.2f}, "
            f"max {int(s['lca_splits_max'])})")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig
