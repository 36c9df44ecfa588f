"""``rxrx1/benchmark``: one classifier training per correction on the same screen.

Each named correction is put into the ``training`` method (``torch/train-classifier`` or
any method with a ``correction`` param), trained from the same initial weights with its
own seed stream, and evaluated on the unseen experiments (``test``), the in-distribution
split (``id_test``) and, for the batch probe and the figures, embedded. One cell holds
every correction so that the share of the no-correction-to-oracle gap is a per-seed,
paired number (``rxrx1/accuracy``). ``only`` restricts the run to some corrections (the
baseline and the oracle always run: the gap needs them).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from pydantic import Field, model_validator

from harness import Component, Method, Params, RunContext, component_field
from harness.data import ClassificationData
from harness.errors import HarnessError

from .plots import plot_embeddings
from .screen import groups_of, split_names, split_xy

DEFAULT_CORRECTIONS = ["none", "oracle", "global", "self-standardize", "per-plate",
                       "per-experiment", "control-standardize", "adabn", "tvn",
                       "gain-bias-augment", "coral"]


class BenchmarkParams(Params):
    training: Component = component_field(
        "method", {"use": "torch/train-classifier", "optimizer": {"use": "torch/adam",
                                                                  "lr": 0.003},
                   "epochs": 10, "batch_size": 64},
        "the classifier training each correction is put into")
    corrections: dict[str, Component] = Field(
        default_factory=lambda: {n: Component.model_validate(f"rxrx1/{n}")
                                 for n in DEFAULT_CORRECTIONS},
        description="name -> correction component", json_schema_extra={"harness_kind":
                                                                        "correction"})
    baseline: str = Field("none", description="the no-correction entry of `corrections`")
    oracle: str | None = Field("oracle", description="the oracle entry (null on real data)")
    only: list[str] | None = Field(None, description="run only these (plus baseline, oracle)")
    plot: bool = Field(True, description="draw the embeddings figure")

    @model_validator(mode="after")
    def _names(self) -> BenchmarkParams:
        for key in [self.baseline, self.oracle, *(self.only or [])]:
            if key is not None and key not in self.corrections:
                raise ValueError(f"{key!r} is not a key of corrections "
                                 f"({', '.join(self.corrections)})")
        return self


class Benchmark(Method):
    """Train one classifier per batch correction on the same screen; evaluate each."""

    name = "rxrx1/benchmark"
    version = "1"
    Params = BenchmarkParams

    def run(self, ctx: RunContext, data: ClassificationData, model: torch.nn.Module
            ) -> dict[str, Any]:
        p: BenchmarkParams = self.params  # type: ignore[assignment]
        base = p.training.params
        if "correction" not in type(base).model_fields:
            raise HarnessError(f"training method {p.training.use!r} takes no correction",
                               hint="use torch/train-classifier")
        keep = [p.baseline, *([p.oracle] if p.oracle else []),
                *(p.only if p.only is not None else p.corrections)]
        names = [n for n in p.corrections if n in keep]
        runs: dict[str, Any] = {}
        seconds: dict[str, float] = {}
        with ctx.progress.task("corrections", len(names)) as tick:
            for name in names:
                t0 = time.perf_counter()
                params = base.model_copy(update={"correction": p.corrections[name]})
                trainer = p.training.adapter(params)
                out = trainer.run(ctx.derive(f"train/{name}"), data, copy.deepcopy(model))
                runs[name] = self._evaluate(out)
                seconds[name] = time.perf_counter() - t0
                tick()
        if p.plot:
            plot_embeddings(runs, data, ctx.artifact("embeddings.png"))
        splits = [s for s in split_names(data) if s != "train"]
        return {"runs": runs,
                "groups": {s: groups_of(data, s) for s in splits},
                "targets": {s: split_xy(data, s)[1] for s in splits},
                "baseline": p.baseline, "oracle": p.oracle, "corrections": names,
                "experiments": data.meta.get("experiments", []),
                "cell_types": data.meta.get("cell_types", []),
                "transductive": {n: bool(p.corrections[n].adapter.transductive) for n in names},
                "scalars": {f"seconds.{n}": s for n, s in seconds.items()}}

    @staticmethod
    def _evaluate(out: dict[str, Any]) -> dict[str, Any]:
        corr, cdata, model = out["correction"], out["data"], out["model"]
        preds = {"test": out["test_logits"].argmax(1)}
        emb = {}
        for s in split_names(cdata):
            if s == "train":
                continue
            x = split_xy(cdata, s)[0]
            if s != "test":
                preds[s] = corr.predict(model, x, s).argmax(1)
            if hasattr(corr, "embed"):
                emb[s] = corr.embed(model, x, s)
        return {"pred": preds, "embeddings": emb,
                "train_accuracy": out["scalars"]["train_accuracy"]}
