"""``supsup/nns``: SupSup without task identity at training time (scenario NNs).

Supermasks in Superposition (Wortsman et al., arXiv 2006.14769), the NNs scenario ("no
task identity during training or testing"): the data arrive task after task, but the
model is never told when the task changes. Follows the official ``trainers/nns.py`` and
the NNs branch of ``main.py`` (RAIVNLab/supsup):

- every ``check_every`` training batches (official ``k = 100``; the first batch of the run
  excluded, which starts on mask 0) the current training batch goes through the
  superposition of the first ``n = max(allocated, min_superposed)`` masks (official
  ``maxn = 5``, so untrained slots take part while fewer than five are allocated), with
  alphas ``1/n``; ``g = -d entropy / d alpha``; the confidence is ``softmax(g).max()``;
- if the confidence is below ``confidence / n`` (official ``1.125 / num_tasks_learned``)
  a new mask is allocated and trained from here on, else the training continues on the
  mask ``argmax(g)`` (which may be an earlier one: it is trained further);
- every data block gets a fresh optimizer over the score tensors of **all** slots (the
  official parameter list for NNs); only the mask in use gets gradients;
- at test time tasks are inferred as in scenario GN over the allocated masks
  (``supsup/train``'s ``inference``, ``objective_examples``, ...), with labels shared by
  default (``unshared_labels: false``, the official default the NNs config keeps).

Deviations: the check counts optimizer steps over the whole run instead of the batch
index within each epoch (the official ``batch_idx % k`` restarts every epoch); when every
slot is allocated no new mask is taken (the official code skips training on an
out-of-range index); "the mask of data task i" for GG and for the task-inference count
is the mask that trained most on that task's block (the official evaluation compares
with the data index, which is the same when exactly one mask is allocated per task).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field

from harness import HarnessError, Method, RunContext

from .inference import alpha_gradient, entropy_objective, evaluate_gn
from .masks import (
    cache_masks,
    clear_masks,
    fixed_weights,
    is_masked,
    masked_layers,
    set_num_tasks_learned,
    set_task,
)
from .train import SupSupTrain, SupSupTrainParams, _batches, _check_data


class NNsParams(SupSupTrainParams):
    check_every: int = Field(100, ge=1, description="training batches between two "
                             "task checks (official k = 100)")
    min_superposed: int = Field(5, ge=1, description="superpose at least this many slots "
                                "at a check (official maxn = 5)")
    confidence: float = Field(1.125, ge=0, description="allocate a new mask when "
                              "softmax(g).max() < confidence / n (official 1.125; 0: never "
                              "allocate, an ABLATION)")
    unshared_labels: bool = Field(False, description="a batch with a wrongly inferred mask "
                                  "counts as all wrong (official NNs: false)")


class NNs(SupSupTrain):
    """SupSup trained without task identity: a new mask when the superposed model is not
    confident that an existing mask fits (official ``trainers/nns.py``)."""

    name = "supsup/nns"
    Params = NNsParams

    def run(self, ctx: RunContext, data: Any, model: Any) -> dict[str, Any]:
        p: NNsParams = self.params  # type: ignore[assignment]
        data = _check_data(data, self.name)
        if not is_masked(model):
            raise HarnessError("supsup/nns needs a masked model",
                               hint="use supsup/masked-mlp with tasks: >= the data's tasks")
        self.slots = int(getattr(model, "num_tasks", 0))
        self.real = data.num_classes
        self.state = {"allocated": 1, "current": 0, "step": 0}
        self.allocations: list[dict[str, int]] = []
        self.checks: list[dict[str, Any]] = []  # every check, for the docs' diagnosis
        self.usage: list[Counter[int]] = []
        assigned: dict[int, int] = {}
        scores = [s for layer in masked_layers(model) for s in layer.scores]

        def select(t: int) -> None:
            clear_masks(model)
            set_task(model, assigned.get(t, self.state["current"]))

        def after(t: int) -> None:
            assigned[t] = self.usage[t].most_common(1)[0][0]

        out = self._sequence(ctx, data, model, select, lambda t: scores, after,
                             fixed=fixed_weights(model))
        learned = self.state["allocated"]
        tasks = [data.task(t) for t in range(data.num_tasks)]
        inference = {}
        for mode in dict.fromkeys(p.inference):
            algorithm, objective = mode.split("/")
            cache_masks(model, learned)
            set_num_tasks_learned(model, learned)
            per_task, per_gn, right, batches = [], [], 0, 0
            for i, task in enumerate(tasks):
                r = evaluate_gn(model, task.x_test, task.y_test, assigned[i], learned,
                                algorithm=algorithm, objective=objective, real=self.real,
                                batch=p.infer_batch, examples=p.objective_examples,
                                pick=p.pick, unshared_labels=p.unshared_labels,
                                generator=ctx.derive(f"infer/{i}").generator,
                                log_base=p.log_base, total_tasks=self.slots)
                per_task.append(r["task_accuracy"])
                per_gn.append(r["gn_accuracy"])
                right += int(r["right_batches"])
                batches += int(r["batches"])
            inference[mode] = {"tasks": learned, "task_accuracy": right / batches,
                               "per_task": per_task, "per_task_gn": per_gn,
                               "batches": batches}
        clear_masks(model)
        ctx.artifact("nns_checks.json").write_text(json.dumps(self.checks, indent=1))
        out.update(inference=inference, primary=p.inference[0], curve=[],
                   masks_allocated=learned, allocations=self.allocations, checks=self.checks,
                   assigned=[assigned[t] for t in range(data.num_tasks)])
        return {"continual": out, "model": model}

    def _decide(self, model: torch.nn.Module, x: torch.Tensor) -> None:
        """The official check: keep the most likely mask, or allocate a new one."""
        p: NNsParams = self.params  # type: ignore[assignment]
        st = self.state
        n = min(max(st["allocated"], p.min_superposed), self.slots)
        cache_masks(model, n)
        set_num_tasks_learned(model, n)
        grad = -alpha_gradient(model, x, torch.full((n,), 1.0 / n), entropy_objective,
                               self.real)
        clear_masks(model)
        confidence = float(grad.softmax(dim=0).max())
        new = confidence < p.confidence / n and st["allocated"] < self.slots
        if new:
            st["allocated"] += 1
            st["current"] = st["allocated"] - 1
            self.allocations.append({"step": st["step"], "mask": st["current"]})
        else:
            st["current"] = int(grad.argmax())
        self.checks.append({"step": st["step"], "n": n, "confidence": confidence,
                            "threshold": p.confidence / n, "new": new,
                            "mask": st["current"],
                            "g": [round(float(v), 4) for v in grad]})

    def _train_task(self, ctx: RunContext, model: torch.nn.Module,
                    params: list[torch.nn.Parameter], x: torch.Tensor, y: torch.Tensor,
                    t: int) -> float:
        p: NNsParams = self.params  # type: ignore[assignment]
        opt = p.optimizer.build().build(ctx.derive(f"optimizer/{t}"), model, params)
        self.usage.append(Counter())
        st = self.state
        loss = torch.tensor(float("nan"))
        for idx in _batches(len(x), p.batch_size, p.steps, ctx.derive(f"batches/{t}").generator):
            if st["step"] > 0 and st["step"] % p.check_every == 0:
                self._decide(model, x[idx])
            set_task(model, st["current"])
            model.train()
            self.usage[t][st["current"]] += 1
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            st["step"] += 1
        return float(loss.detach())


METHODS: list[type[Method]] = [NNs]
