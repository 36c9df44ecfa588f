"""Standard metrics on a method's outputs, and a wrapper for Hugging Face ``evaluate``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from harness import CellResult, HarnessError, Metric, Params, RunContext

if TYPE_CHECKING:
    import torch


class LogitParams(Params):
    logits: str = Field("test_logits", description="output key holding logits")
    targets: str = Field("test_targets", description="output key holding class indices")
    name: str | None = Field(None, description="metric name in results (default: the kind)")


def _get(result: CellResult, key: str, metric: str) -> torch.Tensor:
    import torch
    if key not in result.outputs:
        raise HarnessError(f"metric {metric!r} needs output {key!r}, which this method does "
                           f"not produce (it has: {', '.join(sorted(result.outputs)) or 'none'})",
                           hint="remove the metric for this method or set its logits/targets")
    return torch.as_tensor(result.outputs[key])


class _LogitMetric(Metric):
    Params = LogitParams
    default_name = ""

    @classmethod
    def output_names(cls, params: Any, method: Any = None) -> tuple[list[str], bool]:
        return [params.name or cls.default_name], False

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        p: LogitParams = self.params  # type: ignore[assignment]
        logits = _get(result, p.logits, self.name)
        targets = _get(result, p.targets, self.name).long()
        return {p.name or self.default_name: float(self.score(logits, targets))}

    def score(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        raise NotImplementedError


class Accuracy(_LogitMetric):
    """Fraction of examples whose argmax logit is the target (test split by default)."""

    name = "accuracy"
    default_name = "accuracy"

    def score(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        return (logits.argmax(-1) == targets).double().mean().item()


class CrossEntropy(_LogitMetric):
    """Mean cross-entropy of the logits against the targets (nats)."""

    name = "cross-entropy"
    default_name = "cross_entropy"

    def score(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        import torch.nn.functional as F
        return F.cross_entropy(logits.double(), targets).item()


class MacroF1(_LogitMetric):
    """F1 score averaged over classes (each class weighs the same)."""

    name = "macro-f1"
    default_name = "macro_f1"

    def score(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        import torch
        pred = logits.argmax(-1)
        classes = torch.unique(torch.cat([pred, targets]))
        f1s = []
        for c in classes:
            tp = ((pred == c) & (targets == c)).sum().item()
            fp = ((pred == c) & (targets != c)).sum().item()
            fn = ((pred != c) & (targets == c)).sum().item()
            f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
        return sum(f1s) / len(f1s)


class Scalars(Metric):
    """Copy the numbers a method reports in ``outputs["scalars"]`` (optionally some keys)."""

    name = "scalars"

    class Params(Params):
        keys: list[str] | None = None
        prefix: str = ""

    @classmethod
    def output_names(cls, params: Any, method: Any = None) -> tuple[list[str], bool]:
        keys = params.keys
        if keys is None and method is not None and method.is_resolved:
            keys = method.adapter.scalar_names(method.params)
        if keys is None:  # the method does not declare its scalars
            return [], True
        return [params.prefix + k for k in keys], False

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        scalars: dict[str, Any] = result.outputs.get("scalars", {})
        keys = self.params.keys if self.params.keys is not None else list(scalars)
        missing = [k for k in keys if k not in scalars]
        if missing:
            raise HarnessError(f"scalars {missing} not reported by this method",
                               hint=f"it reports: {', '.join(sorted(scalars)) or 'none'}")
        return {self.params.prefix + k: float(scalars[k]) for k in keys}


class EvaluateMetric(Metric):
    """A Hugging Face `evaluate` metric module, by local path (or hub name when online)."""

    name = "evaluate/metric"
    code_params = ("path",)  # evaluate runs the module's code: needs --trust-code

    class Params(Params):
        path: str = Field(..., description="local metric script/folder (relative to the "
                          "spec's folder), or a hub name; its code runs, so a spec using "
                          "it needs `--trust-code`")
        predictions: str = Field("test_logits", description="output key; logits are argmaxed")
        references: str = Field("test_targets", description="output key")
        kwargs: dict[str, Any] = Field(default_factory=dict)

    dynamic_outputs = True  # the module's own score names
    outputs = ()

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        import evaluate
        import torch
        p = self.params
        local = Path(p.path).expanduser()
        if not local.is_absolute() and ctx.spec_dir is not None:
            local = ctx.spec_dir / local
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get(
            "HF_EVALUATE_OFFLINE") == "1"
        if not local.exists() and offline:
            raise HarnessError(
                f"evaluate metric {p.path!r} is not a local path and the hub is offline",
                hint="download the metric module (a folder with its .py script) and give "
                "its path, e.g. path: ./metrics/accuracy")
        try:
            module = evaluate.load(str(local) if local.exists() else p.path)
        except Exception as exc:  # evaluate raises many kinds
            where = "a local path" if local.exists() else "not a local path, and the hub"
            raise HarnessError(f"cannot load evaluate metric {p.path!r} ({where} failed: "
                               f"{type(exc).__name__})", hint="give a local metric folder or "
                               "script path; hub metrics need network access") from None
        preds = result.outputs.get(p.predictions)
        refs = result.outputs.get(p.references)
        if preds is None or refs is None:
            raise HarnessError(f"evaluate/metric needs outputs {p.predictions!r} and "
                               f"{p.references!r}")
        if isinstance(preds, torch.Tensor) and preds.dim() == 2:
            preds = preds.argmax(-1)
        if isinstance(preds, torch.Tensor):
            preds = preds.tolist()
        if isinstance(refs, torch.Tensor):
            refs = refs.tolist()
        scores = module.compute(predictions=preds, references=refs, **p.kwargs) or {}
        return {f"{module.name}_{k}" if k != module.name else k: float(v)
                for k, v in scores.items() if isinstance(v, (int, float))}


METRICS: list[type[Metric]] = [Accuracy, CrossEntropy, MacroF1, Scalars, EvaluateMetric]
