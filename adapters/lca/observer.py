"""``lca/allocation``: Loss Change Allocation as a training observer.

Lan, Liu, Zhou, Dingwall & Yosinski, "LCA: Loss Change Allocation for Neural Network
Training", NeurIPS 2019, arXiv:1909.01440. Official code: uber-research/loss-change-
allocation (TensorFlow: ``adaptive_calc_gradients.py``, ``save_lca_stream.py``,
``plot_util.py``).

For every optimizer step t the change of the full training-set loss is split among the
parameters: ``LCA[t, i] = (theta[t+1, i] - theta[t, i]) * k[t, i]``, where ``k`` is the
gradient of the full training loss averaged along the straight segment from theta[t] to
theta[t+1]. As in the official code ``k`` is Simpson's rule over ``n`` equal pieces
(weights 1,4,1 for n=2; 1,4,2,4,1 for n=4; ...; sum of weights 3n); n starts at 2 and is
doubled, reusing the gradients already computed, while the per-step residual
``|(L[t+1] - L[t]) - sum_i LCA[t, i]|`` exceeds the tolerance (1e-3) and n < 32. The
end-point gradient of step t is the start-point gradient of step t+1. The first-order
variant (``integration: first_order``) uses the gradient at theta[t] alone; in Simpson
mode the first-order allocation is computed alongside for free (its per-step sums and
residuals are kept), so one run gives both.

The loss is ``run.loss_fn`` (per-example losses; cross-entropy for the classifier
training) averaged over the whole training set, evaluated in chunks of ``chunk_size``
with ``torch.func.functional_call`` at the given parameter vectors, so the model itself is
never disturbed. No regularization term (weight decay lives in the optimizer) is
included, as in the official ``loss_cross_ent``. Dropout and every other train-only
behaviour are off; BatchNorm normalizes with the statistics of each chunk without
updating its running averages (``batchnorm: batch``, the official setting:
learning_phase 0, batchnorm_learning_phase 1), or with its running averages
(``batchnorm: running``). The observer draws no random numbers, so training is
bit-for-bit the same with or without it.

Memory is bounded by a small multiple of the model size: the observer never keeps the
parameter history; it works from each step's two parameter vectors and keeps, per
objective, the per-layer (per parameter tensor) LCA of every step, the per-parameter
totals over the run, the fraction of parameters that helped (LCA < 0) at every step,
the losses, residuals and split counts.

Deviations from the official code, all deliberate:

- It runs during training, step by step, instead of post hoc on saved weights and
  gradients (same numbers, no files of size steps x parameters).
- The Simpson sum is held as three running sums (ends, odd points, interior even points)
  instead of a (n+1) x P matrix of gradients; mathematically identical.
- The full-data mean is exact for any chunk size (chunks are weighted by their size);
  the official code averages equal chunks and silently drops a remainder.
- By default only the training loss is analysed. With ``test_set: true`` the test loss is
  allocated too and the adaptive criterion takes the larger of the two residuals, as
  the official code always does.
- If a step's "before" parameters differ from the previous step's "after" (a training
  method that edits parameters between steps), the start point is recomputed and the
  event counted (``restarts``); the official code assumes an unbroken chain.
- Per-layer sums are per parameter tensor (a layer's weight and bias apart), as the
  official ``plot_total_layers`` does per TF variable.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from harness import HarnessError, Params, RunContext
from harness.training import StepInfo, TrainingObserver, TrainingRun

from .integrate import FullDataLoss, Layout, Point, integrate_step, point


class Ledger:
    """Bounded per-objective record: per-step per-layer sums, per-parameter totals."""

    def __init__(self, layout: Layout, device: torch.device) -> None:
        self.layout = layout
        self.totals = torch.zeros(layout.total, dtype=torch.float64, device=device)
        self.rows: dict[str, list[Any]] = {k: [] for k in (
            "layers", "layers_first_order", "helped", "zero", "layer_helped", "loss_before",
            "loss_after", "residual", "first_order_residual")}

    def add(self, lca: torch.Tensor, lca_fo: torch.Tensor, l0: float, l1: float,
            residual: float, residual_fo: float) -> None:
        lay = self.layout
        helped = (lca < 0).to(torch.float64)
        sizes = torch.tensor(lay.sizes, dtype=torch.float64, device=lca.device)
        self.totals += lca
        r = self.rows
        r["layers"].append(lay.layer_sums(lca).cpu().numpy())
        r["layers_first_order"].append(lay.layer_sums(lca_fo).cpu().numpy())
        r["helped"].append(float(helped.mean().item()))
        r["zero"].append(float((lca == 0).to(torch.float64).mean().item()))
        r["layer_helped"].append((lay.layer_sums(helped) / sizes).cpu().numpy())
        r["loss_before"].append(l0)
        r["loss_after"].append(l1)
        r["residual"].append(residual)
        r["first_order_residual"].append(residual_fo)

    def export(self) -> dict[str, Any]:
        n_layers = len(self.layout.names)
        out: dict[str, Any] = {}
        for key, rows in self.rows.items():
            if key in ("layers", "layers_first_order", "layer_helped"):
                out[key] = np.array(rows, dtype=np.float64).reshape(len(rows), n_layers)
            else:
                out[key] = np.asarray(rows, dtype=np.float64)
        out["param_totals"] = self.totals.cpu().numpy()
        return out


def shuffle_layers_in_time(rec: dict[str, Any], rng: np.random.Generator) -> None:
    """The ``layer_time: shuffled`` ablation: every column (parameter tensor) of the
    per-iteration per-layer arrays gets its own random permutation of the iterations."""
    steps, n_layers = rec["layers"].shape
    for j in range(n_layers):
        perm = rng.permutation(steps)
        for key in ("layers", "layers_first_order", "layer_helped"):
            rec[key][:, j] = rec[key][perm, j]


class LCAParams(Params):
    integration: Literal["simpson", "first_order", "uniform"] = Field(
        "simpson", description="simpson: adaptive Simpson along the step (official); "
        "first_order: the gradient at the step's start only; uniform: ABLATION, a blind "
        "allocation that splits each step's loss change equally among the parameters "
        "(conserves the loss by construction, says nothing about who helped)")
    allocation_sign: Literal["natural", "flipped"] = Field(
        "natural", description="ABLATION: flipped negates every allocation (Simpson and "
        "first order), the plausible sign bug; the Simpson refinement is unchanged")
    layer_time: Literal["aligned", "shuffled"] = Field(
        "aligned", description="ABLATION: shuffled permutes each parameter tensor's "
        "per-iteration record in time, independently (a bookkeeping bug that misaligns "
        "layers; totals and conservation are untouched)")
    splits: int = Field(2, description="initial pieces of each step (power of two, >= 2)")
    max_splits: int = Field(32, description="stop doubling the pieces here")
    tolerance: float = Field(1e-3, gt=0, description="per-step |dL - sum LCA| target")
    chunk_size: int = Field(4096, ge=0, description="examples per forward pass (0: all)")
    batchnorm: Literal["batch", "running"] = Field(
        "batch", description="BatchNorm statistics for the analysis loss (official: batch)")
    precision: Literal["model", "float64"] = Field(
        "model", description="dtype of the loss/gradient evaluations (sums are float64)")
    test_set: bool = Field(False, description="also allocate the test-loss change")
    save: bool = Field(True, description="write lca_allocation.npz to the cell artifacts")

    @field_validator("splits", "max_splits")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v < 2 or v & (v - 1):
            raise ValueError(f"must be a power of two >= 2 (Simpson pieces), got {v}")
        return v


class LossChangeAllocation(TrainingObserver):
    """Loss Change Allocation (arXiv 1909.01440): per-parameter, per-step share of the
    full training-set loss change; observes any training method that calls observers."""

    name = "lca/allocation"
    version = "2"
    Params = LCAParams

    def on_start(self, ctx: RunContext, run: TrainingRun) -> None:
        super().on_start(ctx, run)
        p: LCAParams = self.params  # type: ignore[assignment]
        if p.max_splits < p.splits:
            raise HarnessError(f"lca/allocation: max_splits ({p.max_splits}) is below "
                               f"splits ({p.splits})", hint="raise max_splits")
        params = {n: t for n, t in run.model.named_parameters() if t.requires_grad}
        if not params:
            raise HarnessError("lca/allocation: the model has no trainable parameters")
        self.layout = Layout(params)
        self.device = next(iter(params.values())).device
        dtype = torch.float64 if p.precision == "float64" else None
        sets = [("train", run.x_train, run.y_train)]
        if p.test_set:
            if run.x_test is None or run.y_test is None:
                raise HarnessError("lca/allocation: test_set is on but this training method "
                                   "gives no test data", hint="set test_set: false")
            sets.append(("test", run.x_test, run.y_test))
        self.objectives = [FullDataLoss(run.model, run.loss_fn, x, y, self.layout,
                                        p.chunk_size, p.batchnorm, dtype)
                           for _, x, y in sets]
        self.ledgers = [Ledger(self.layout, self.device) for _ in sets]
        self.set_names = [s[0] for s in sets]
        self.prev: tuple[torch.Tensor, Point] | None = None
        self.splits: list[int] = []
        self.steps: list[int] = []
        self.restarts = 0
        self.seconds = 0.0

    def _evaluate(self, theta: torch.Tensor, with_grad: bool
                  ) -> list[tuple[float, torch.Tensor | None]]:
        return [obj(theta, with_grad) for obj in self.objectives]

    def _flat(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        missing = [n for n in self.layout.names if n not in values]
        if missing:
            raise HarnessError(f"lca/allocation: the step's parameters lack {missing[:3]}",
                               hint="the training method must snapshot every trainable "
                               "parameter before and after each step")
        return self.layout.flatten(values).to(self.device)

    def on_step(self, info: StepInfo) -> None:
        t0 = time.perf_counter()
        p: LCAParams = self.params  # type: ignore[assignment]
        theta0, theta1 = self._flat(info.before), self._flat(info.after)
        if self.prev is not None and torch.equal(self.prev[0], theta0):
            p0 = self.prev[1]
        else:
            self.restarts += self.prev is not None
            p0 = point(self._evaluate, theta0)
        p1 = point(self._evaluate, theta1)
        seg = integrate_step(self._evaluate, theta0, theta1, p0, p1, splits=p.splits,
                             max_splits=p.max_splits, tolerance=p.tolerance,
                             first_order=p.integration != "simpson")
        delta = theta1 - theta0
        sign = -1.0 if p.allocation_sign == "flipped" else 1.0
        for o, ledger in enumerate(self.ledgers):
            dl = p1.losses[o] - p0.losses[o]
            if p.integration == "uniform":
                lca = torch.full_like(delta, dl / delta.numel())
            else:
                lca = seg.mean_grads[o] * delta
            lca, lca_fo = sign * lca, sign * (p0.grads[o] * delta)
            res = dl - float(lca.sum().item())
            res_fo = dl - float(lca_fo.sum().item())
            ledger.add(lca, lca_fo, p0.losses[o], p1.losses[o], res, res_fo)
        self.splits.append(seg.splits)
        self.steps.append(info.step)
        self.prev = (theta1, p1)
        self.seconds += time.perf_counter() - t0

    def on_end(self) -> dict[str, Any]:
        p: LCAParams = self.params  # type: ignore[assignment]
        exports = [ledger.export() for ledger in self.ledgers]
        if p.layer_time == "shuffled":
            rng = self.ctx.derive("layer-time-shuffle").rng
            for rec in exports:
                shuffle_layers_in_time(rec, rng)
        out: dict[str, Any] = exports[0]
        for name, rec in zip(self.set_names[1:], exports[1:], strict=True):
            out[name] = rec
        out.update({
            "names": list(self.layout.names), "sizes": list(self.layout.sizes),
            "splits": np.asarray(self.splits, dtype=np.int64),
            "steps": np.asarray(self.steps, dtype=np.int64),
            "evaluations": sum(o.evaluations for o in self.objectives),
            "restarts": self.restarts, "seconds": self.seconds,
            "settings": p.model_dump(mode="json"),
        })
        if p.save and self.steps:
            self._save(out)
        return out

    def _save(self, out: dict[str, Any]) -> None:
        arrays = {k: v for k, v in out.items() if isinstance(v, np.ndarray)}
        for name in self.set_names[1:]:
            arrays.update({f"{name}_{k}": v for k, v in out[name].items()})
        arrays["names"] = np.asarray(out["names"])
        np.savez_compressed(self.ctx.artifact("lca_allocation.npz"), **arrays)
