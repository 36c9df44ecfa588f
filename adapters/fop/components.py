"""Spec components: the ``fop/fop`` and ``hd/sgd-hd`` optimizers, the ``fop/monitor``
training observer (step timing, learned spectra) and two small metrics that make one spec
mix the quadratic and the classifier cells."""

from __future__ import annotations

import statistics
import time
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from harness import CellResult, Component, Metric, Params, RunContext, component_field
from harness.training import OptimizerAdapter, StepInfo, TrainingObserver, TrainingRun

from .hd import SGDHD
from .optim import FOP, effective_lr, spectra
from .spectrum import plot_spectra


class FOPOptimizer(OptimizerAdapter):
    """First-order preconditioning (Moskovitz et al. 2019) over SGD or momentum."""

    name = "fop/fop"
    version = "1"

    class Params(Params):
        lr: float = Field(0.1, gt=0, description="base learning rate eps")
        meta_lr: float = Field(1e-3, ge=0, description="rho: step size on M (P = M M^T); "
                               "0 is an ablation: P stays I, FOP is exactly its base optimizer")
        base: Literal["sgd", "momentum"] = "sgd"
        momentum: float = Field(0.9, ge=0, lt=1, description="used when base is momentum")
        nesterov: bool = False
        dampening: float = Field(0.0, ge=0, lt=1)
        weight_decay: float = Field(0.0, ge=0)
        structure: Literal["layerwise", "scalar"] = Field(
            "layerwise", description="per-layer P = M M^T, or P = c I for the whole model "
            "(= SGD-HD)")
        dense_side: Literal["input", "output", "none"] = Field(
            "input", description="which side of a dense weight P multiplies (paper: open)")
        vectors: Literal["full", "none"] = Field("full", description="P for 1-D params")
        max_dim: int = Field(1024, ge=1, description="larger blocks get no preconditioner")
        init_scale: float = Field(1.0, gt=0, description="P_0 = init_scale * I")
        hypergradient_sign: Literal[1, -1] = Field(
            1, description="ablation: -1 ascends the hypergradient (the key sign flipped)")

        @model_validator(mode="after")
        def _nesterov(self) -> FOPOptimizer.Params:
            if self.nesterov and self.base != "momentum":
                raise ValueError("nesterov needs base: momentum")
            return self

    def build(self, ctx: RunContext, model: torch.nn.Module,
              params: list[torch.nn.Parameter] | None = None) -> torch.optim.Optimizer:
        p = self.params
        opt = FOP(self.trainable(model, params), lr=p.lr, meta_lr=p.meta_lr,
                  momentum=p.momentum if p.base == "momentum" else 0.0,
                  dampening=p.dampening, nesterov=p.nesterov, weight_decay=p.weight_decay,
                  structure=p.structure, dense_side=p.dense_side, vectors=p.vectors,
                  max_dim=p.max_dim, init_scale=p.init_scale,
                  hypergradient_sign=p.hypergradient_sign)
        opt.param_names = {id(t): n for n, t in model.named_parameters()}
        return opt


class SGDHDOptimizer(OptimizerAdapter):
    """SGD-HD (Baydin et al. 2018): SGD whose learning rate follows its hypergradient."""

    name = "hd/sgd-hd"
    version = "1"

    class Params(Params):
        lr: float = Field(0.1, gt=0, description="initial learning rate alpha_0")
        hypergrad_lr: float = Field(1e-3, ge=0, description="beta (the paper's runs: 1e-3)")
        momentum: float = Field(0.0, ge=0, lt=1)
        nesterov: bool = False
        dampening: float = Field(0.0, ge=0, lt=1)
        weight_decay: float = Field(0.0, ge=0)

    def build(self, ctx: RunContext, model: torch.nn.Module,
              params: list[torch.nn.Parameter] | None = None) -> torch.optim.Optimizer:
        p = self.params
        return SGDHD(self.trainable(model, params), lr=p.lr, momentum=p.momentum,
                     dampening=p.dampening, weight_decay=p.weight_decay, nesterov=p.nesterov,
                     hypergrad_lr=p.hypergrad_lr)


class Monitor(TrainingObserver):
    """Times each training step and optimizer.step() (wall clock and this thread's CPU time);
    final lr; plots FOP's learned spectra.

    The CPU times (``time.thread_time``) are the overhead measure to trust on a shared
    machine: other processes inflate wall-clock intervals but not this thread's CPU time
    (with ``threads: 1`` all of torch's work runs on the calling thread)."""

    name = "fop/monitor"
    version = "1"

    class Params(Params):
        plot: bool = Field(True, description="write preconditioner_spectrum.png (FOP only)")

    def on_start(self, ctx: RunContext, run: TrainingRun) -> None:
        super().on_start(ctx, run)
        self.intervals: list[float] = []
        self.cpu_intervals: list[float] = []
        self.opt_time = self.opt_cpu = 0.0
        self.steps = 0
        self.last = time.perf_counter()
        self.last_cpu = time.thread_time()
        opt = run.optimizer
        if opt is not None:
            inner = opt.step

            def timed(*args: Any, **kwargs: Any) -> Any:
                start, cpu = time.perf_counter(), time.thread_time()
                out = inner(*args, **kwargs)
                self.opt_time += time.perf_counter() - start
                self.opt_cpu += time.thread_time() - cpu
                return out

            opt.step = timed  # type: ignore[method-assign]

    def on_step(self, info: StepInfo) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        self.intervals.append(now - self.last)
        self.cpu_intervals.append(cpu - self.last_cpu)
        self.last, self.last_cpu = now, cpu
        self.steps += 1

    def on_end(self) -> dict[str, Any]:
        opt = self.run.optimizer
        if opt is not None and "step" in vars(opt):
            del opt.step  # restore the class's step
        steady = self.intervals[1:] or self.intervals
        steady_cpu = self.cpu_intervals[1:] or self.cpu_intervals
        scalars: dict[str, float] = {
            "step_ms": 1e3 * sum(steady) / max(len(steady), 1),
            "step_ms_median": 1e3 * statistics.median(steady) if steady else 0.0,
            "optimizer_step_ms": 1e3 * self.opt_time / max(self.steps, 1),
            "step_cpu_ms": 1e3 * sum(steady_cpu) / max(len(steady_cpu), 1),
            "optimizer_step_cpu_ms": 1e3 * self.opt_cpu / max(self.steps, 1),
        }
        # the same steps without optimizer.step(): forward, backward and the loop
        scalars["non_optimizer_cpu_ms"] = (scalars["step_cpu_ms"]
                                           - scalars["optimizer_step_cpu_ms"])
        if opt is not None:
            scalars["final_lr"] = effective_lr(opt)
        out: dict[str, Any] = {"scalars": scalars}
        spec = spectra(opt) if opt is not None else {}
        if spec:
            out["spectrum"] = spec
            tops = [max(v) for v in spec.values()]
            lows = [min(v) for v in spec.values()]
            scalars.update(p_eig_max=max(tops), p_eig_min=min(lows),
                           p_blocks=float(len(spec)))
            if self.params.plot:
                plot_spectra(self.ctx.artifact("preconditioner_spectrum.png"), spec,
                             title="learned preconditioners P = M M^T per layer")
        return out


class ObserverScalars(Metric):
    """Copy the numbers training observers report under outputs["observers"][name]["scalars"]."""

    name = "fop/observer-scalars"
    dynamic_outputs = True  # whatever the observers report
    outputs = ()
    version = "1"

    class Params(Params):
        observer: str | None = Field(None, description="observer adapter name (None: all)")
        prefix: str = ""

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, got in (result.outputs.get("observers") or {}).items():
            if self.params.observer not in (None, name) or not isinstance(got, dict):
                continue
            for key, value in (got.get("scalars") or {}).items():
                out[self.params.prefix + key] = float(value)
        return out


class IfOutputs(Metric):
    """Compute a wrapped metric only for cells whose outputs have the given keys."""

    name = "fop/if-outputs"
    version = "1"

    class Params(Params):
        needs: list[str] = Field(default_factory=lambda: ["test_logits"])
        metric: Component = component_field("metric", "accuracy", "the wrapped metric")

    @classmethod
    def output_names(cls, params: Any, method: Any = None) -> tuple[list[str], bool]:
        inner = params.metric
        if not isinstance(inner, Component) or not inner.is_resolved:
            return [], True
        return inner.adapter.output_names(inner.params, method)

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        if not all(k in result.outputs for k in self.params.needs):
            return {}
        return self.params.metric.build().compute(ctx, result)


ADAPTERS = [FOPOptimizer, SGDHDOptimizer, Monitor, ObserverScalars, IfOutputs]
