"""``supsup/separate``: the paper's "Upper Bound" baseline, one dense network per task.

Supermasks in Superposition (Wortsman et al., arXiv 2006.14769) compares SupSup's GG
accuracy with an upper bound that trains a separate network for every task (no sharing,
so no forgetting and T times the parameters). Here each task trains its own copy of the
given dense model from the same initialization (the model is built once by the runner;
the copies differ only in the task they learn), with the same optimizer, steps and
batches as ``supsup/finetune``, and is evaluated on its own task with the identity given.
"""

from __future__ import annotations

import copy
from typing import Any

from harness import HarnessError, Method, RunContext

from .masks import is_masked
from .plots import plot_per_task
from .train import FinetuneParams, _accuracy, _check_data, _Sequential


class Separate(_Sequential):
    """Upper bound: a separate dense network per task, each trained on its task only."""

    name = "supsup/separate"
    Params = FinetuneParams

    def run(self, ctx: RunContext, data: Any, model: Any) -> dict[str, Any]:
        data = _check_data(data, self.name)
        if is_masked(model) or not hasattr(model, "parameters"):
            raise HarnessError("supsup/separate needs a dense torch model",
                               hint="use supsup/dense-mlp")
        p: FinetuneParams = self.params  # type: ignore[assignment]
        accuracies = []
        with ctx.progress.task("tasks", data.num_tasks) as tick:
            for t in range(data.num_tasks):
                task = data.task(t)
                net = copy.deepcopy(model)
                params = [q for q in net.parameters() if q.requires_grad]
                self._train_task(ctx, net, params, task.x_train, task.y_train, t)
                accuracies.append(_accuracy(net, task.x_test, task.y_test))
                tick(1)
        out = {"num_tasks": data.num_tasks, "acc_after_learning": accuracies,
               "acc_matrix": None, "final_gg": accuracies,
               "task0_bitwise_unchanged": True, "params_unchanged": True,
               "final_train_loss": [], "timings": {}}
        if p.plots:
            plot_per_task(ctx.artifact("accuracy_per_task.png"), accuracies, accuracies, None,
                          title="upper bound: a separate network per task")
        return {"continual": out, "model": model}


METHODS: list[type[Method]] = [Separate]
