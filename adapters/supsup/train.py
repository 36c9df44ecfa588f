"""``supsup/train`` and the ``supsup/finetune`` baseline: tasks learned one after another.

Supermasks in Superposition (Wortsman, Ramanujan, Liu, Kembhavi, Rastegari, Yosinski,
Farhadi; NeurIPS 2020; arXiv 2006.14769). SupSup, as in the official ``main.py``: for task
t, set the model's task to t and build a fresh optimizer over the score tensors of task t
only (the weights never get gradients); train on task t's data with cross-entropy over all
outputs, superfluous ones included; go to the next task. Official GNu settings (the
method's defaults): RMSprop, lr 1e-4, batch 128, 1000 steps per task (``iter_lim``), no
scheduler. After the last task (and after the learned-task counts in
``infer_checkpoints``, the official ``eval_ckpts``) every learned task is evaluated with its
identity given (GG) and inferred from its test batches (GN, see ``inference.py``).

Deviations and additions: training batches come from per-epoch shuffles and ``steps``
counts optimizer steps across epochs (the official loop counts iterations the same way,
bounded by ``epochs``, which ``iter_lim`` makes irrelevant); accuracy right after each task
and, for up to 50 tasks, the full task-by-task accuracy matrix are recorded (the official
code logs the current task only); the bitwise checks (hashes of the weights and of each
task's scores when it finished, task 0's logits right after task 0) are this harness's
additions to make "no forgetting" checkable.

The fine-tuning baseline trains every parameter of a dense network on each task in turn
(fresh optimizer per task, same steps and batches), then evaluates all tasks with the one
final network: what SupSup avoids.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from harness import Component, HarnessError, Method, Params, RunContext, component_field

from .data import TaskSequence
from .inference import evaluate_gn
from .masks import (
    cache_masks,
    clear_masks,
    fixed_weights,
    is_masked,
    set_num_tasks_learned,
    set_task,
    share_scores,
    task_scores,
)
from .plots import plot_curve, plot_per_task


class SequentialParams(Params):
    optimizer: Component = component_field(
        "optimizer", {"use": "torch/rmsprop", "lr": 1e-4},
        "optimizer component, rebuilt for every task (official GNu: RMSprop, lr 1e-4)")
    steps: int = Field(1000, ge=1, description="optimizer steps per task (official iter_lim)")
    batch_size: int = Field(128, ge=1, description="training batch (official: 128)")
    acc_matrix: bool | None = Field(None, description="evaluate every learned task after "
                                    "each task (default: when there are at most 50 tasks)")
    plots: bool = Field(True, description="write the accuracy plots to the artifacts")


def _batches(n: int, size: int, steps: int, generator: torch.Generator):
    """``steps`` index batches from consecutive per-epoch shuffles (last partial one kept)."""
    done = 0
    while True:
        perm = torch.randperm(n, generator=generator)
        for s in range(0, n, size):
            if done == steps:
                return
            yield perm[s:s + size]
            done += 1


@torch.no_grad()
def _logits(model: nn.Module, x: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    was = model.training
    model.eval()
    out = torch.cat([model(x[i:i + chunk]) for i in range(0, len(x), chunk)])
    model.train(was)
    return out


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((_logits(model, x).argmax(1) == y).double().mean())


def _digest(tensors: Sequence[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _check_data(data: Any, name: str) -> TaskSequence:
    if not isinstance(data, TaskSequence):
        raise HarnessError(f"{name} needs a task sequence, got {type(data).__name__}",
                           hint="use supsup/permuted-digits (or rotated/split) as the dataset")
    return data


class _Sequential(Method):
    """Shared loop: train task 0..T-1 in order, with per-task hooks."""

    def _train_task(self, ctx: RunContext, model: nn.Module, params: list[torch.nn.Parameter],
                    x: torch.Tensor, y: torch.Tensor, t: int) -> float:
        p: SequentialParams = self.params  # type: ignore[assignment]
        opt = p.optimizer.build().build(ctx.derive(f"optimizer/{t}"), model, params)
        model.train()
        loss = torch.tensor(float("nan"))
        for idx in _batches(len(x), p.batch_size, p.steps, ctx.derive(f"batches/{t}").generator):
            def closure(idx: torch.Tensor = idx) -> torch.Tensor:
                opt.zero_grad()
                out = F.cross_entropy(model(x[idx]), y[idx])
                out.backward()
                return out
            loss = closure()
            opt.step()
        return float(loss.detach())

    def _sequence(self, ctx: RunContext, data: TaskSequence, model: nn.Module,
                  select: Any, trainable: Any, after_task: Any = None,
                  fixed: list[torch.Tensor] | None = None) -> dict[str, Any]:
        """Train all tasks; ``select(t)`` switches the model to task t, ``trainable(t)``
        lists what task t trains, ``after_task(t)`` runs once task t is trained; ``fixed``
        is what must never change (default: the parameters that need no gradient at the
        start). Returns the GG bookkeeping and the bitwise checks."""
        p: SequentialParams = self.params  # type: ignore[assignment]
        T = data.num_tasks
        matrix = p.acc_matrix if p.acc_matrix is not None else T <= 50
        tasks = [data.task(t) for t in range(T)]
        after, rows, losses = [], [], []
        task0_logits = None
        digests: dict[str, str] = {}
        frozen = fixed if fixed is not None else [b for b in model.parameters()
                                                  if not b.requires_grad]
        digests["frozen"] = _digest(frozen)
        t0 = time.perf_counter()
        with ctx.progress.task("tasks", T) as tick:
            for t in range(T):
                select(t)
                losses.append(self._train_task(ctx, model, trainable(t), tasks[t].x_train,
                                               tasks[t].y_train, t))
                digests[f"task{t}"] = _digest(trainable(t))
                if after_task is not None:
                    after_task(t)
                select(t)
                after.append(_accuracy(model, tasks[t].x_test, tasks[t].y_test))
                if t == 0:
                    task0_logits = _logits(model, tasks[0].x_test)
                if matrix:
                    row = []
                    for i in range(t + 1):
                        select(i)
                        row.append(_accuracy(model, tasks[i].x_test, tasks[i].y_test))
                    rows.append(row)
                tick(1)
        sequence_s = time.perf_counter() - t0
        final = []
        for i in range(T):
            select(i)
            final.append(_accuracy(model, tasks[i].x_test, tasks[i].y_test))
        select(0)
        same0 = task0_logits is not None and bool(
            torch.equal(_logits(model, tasks[0].x_test), task0_logits))
        unchanged = digests["frozen"] == _digest(frozen) and all(
            digests[f"task{t}"] == _digest(trainable(t)) for t in range(T))
        return {"num_tasks": T, "acc_after_learning": after, "acc_matrix": rows or None,
                "final_gg": final, "task0_bitwise_unchanged": same0,
                "params_unchanged": unchanged, "final_train_loss": losses,
                "timings": {"sequence_s": sequence_s}}


MODES = ("oneshot/entropy", "oneshot/g", "binary/entropy", "binary/g")
Mode = Literal["oneshot/entropy", "oneshot/g", "binary/entropy", "binary/g"]


class SupSupTrainParams(SequentialParams):
    inference: list[Mode] = Field(
        default_factory=lambda: cast(list[Mode], list(MODES)), min_length=1,
        description="task-inference modes <algorithm>/<objective> evaluated after the last "
        "task; the first is the primary one (its numbers have no suffix and it draws the "
        "curve). g needs superfluous outputs; g modes are skipped without them unless "
        "primary")
    infer_batch: int = Field(16, ge=1, description="test examples per inference batch "
                             "(official test batch: 128)")
    objective_examples: int | None = Field(
        None, ge=1, description="examples of a batch the objective reads (official GNu "
        "data_to_repeat: 1); default: the whole batch")
    pick: Literal["argmin", "argmax"] = Field(
        "argmin", description="sign convention: argmin of the gradient (official); argmax "
        "is deliberately wrong, for checking that the claims can fail")
    scores: Literal["per_task", "shared"] = Field(
        "per_task", description="ABLATION: shared makes every task read and train the first "
        "task's scores (one mask for all tasks; breaks the no-forgetting claims)")
    train_weights: bool = Field(False, description="ABLATION: also train the weights with "
                                "each task's scores (breaks the no-forgetting claims)")
    unshared_labels: bool = Field(True, description="a batch with a wrongly inferred task "
                                  "counts as all wrong (official GNu configs)")
    log_base: int = Field(2, ge=2, description="binary: keep 1/log_base of the candidates")
    infer_checkpoints: list[int] | None = Field(
        None, description="learned-task counts at which task inference is also measured "
        "(official eval_ckpts); default: 1..T for T <= 10, else about 10 points")
    checkpoint_batches: int | None = Field(
        None, ge=1, description="at the intermediate checkpoints, at most this many batches "
        "per task (the final evaluation always uses all)")


class SupSupTrain(_Sequential):
    """SupSup: one supermask per task over fixed random weights; GG and GN evaluation."""

    name = "supsup/train"
    Params = SupSupTrainParams

    def run(self, ctx: RunContext, data: Any, model: Any) -> dict[str, Any]:
        p: SupSupTrainParams = self.params  # type: ignore[assignment]
        data = _check_data(data, self.name)
        if not is_masked(model):
            raise HarnessError("supsup/train needs a masked model",
                               hint="use supsup/masked-mlp or supsup/masked-cnn")
        if getattr(model, "num_tasks", 0) < data.num_tasks:
            raise HarnessError("the model has fewer score tensors than the data has tasks")
        real, outputs = data.num_classes, model.outputs
        primary = p.inference[0]
        if primary.endswith("/g") and outputs <= real:
            raise HarnessError(
                "the G objective reads the superfluous outputs, and this model has none",
                hint=f"set the model's outputs above {real} (official GNu: 500)")
        modes = [m for m in dict.fromkeys(p.inference) if outputs > real or m.endswith("/entropy")]
        alg, obj = primary.split("/")
        T = data.num_tasks
        checkpoints = sorted({k for k in (p.infer_checkpoints or _default_ckpts(T))
                              if 1 <= k < T} | {T})
        tasks = [data.task(t) for t in range(T)]
        curve: list[dict[str, Any]] = []
        ckpt_s = [0.0]

        def select(t: int) -> None:
            clear_masks(model)
            set_task(model, t)

        def after(t: int) -> None:
            set_num_tasks_learned(model, t + 1)
            if t + 1 in checkpoints and t + 1 < T:
                start = time.perf_counter()
                curve.append(self._infer_all(ctx, model, tasks, t + 1, alg, obj, real,
                                             p.checkpoint_batches))
                clear_masks(model)
                ckpt_s[0] += time.perf_counter() - start

        weights = fixed_weights(model)
        if p.scores == "shared":
            share_scores(model)
        if p.train_weights:
            for w in weights:
                w.requires_grad_(True)

        def trainable(t: int) -> list[torch.Tensor]:
            return task_scores(model, t) + (weights if p.train_weights else [])

        out = self._sequence(ctx, data, model, select, trainable, after, fixed=weights)
        t0 = time.perf_counter()
        inference = {}
        for mode in modes:
            algorithm, objective = mode.split("/")
            res = self._infer_all(ctx, model, tasks, T, algorithm, objective, real, None)
            inference[mode] = res
            if mode == primary:
                curve.append(res)
        clear_masks(model)
        out["timings"]["infer_s"] = time.perf_counter() - t0
        out["timings"]["checkpoint_infer_s"] = ckpt_s[0]  # inside sequence_s
        out.update(inference=inference, primary=primary,
                   curve=[{"tasks": c["tasks"], "task_inference_accuracy": c["task_accuracy"]}
                          for c in curve],
                   outputs=outputs, real_outputs=real, infer_batch=p.infer_batch)
        if p.plots:
            prim = inference[out["primary"]]
            plot_per_task(ctx.artifact("accuracy_per_task.png"), out["acc_after_learning"],
                          out["final_gg"], prim["per_task_gn"], title="SupSup")
            plot_curve(ctx.artifact("inference_vs_tasks.png"), out["curve"],
                       f"{primary}, batch {p.infer_batch}")
        return {"continual": out, "model": model}

    def _infer_all(self, ctx: RunContext, model: nn.Module, tasks: list[Any], learned: int,
                   algorithm: str, objective: str, real: int,
                   max_batches: int | None) -> dict[str, Any]:
        p: SupSupTrainParams = self.params  # type: ignore[assignment]
        cache_masks(model, learned)
        set_num_tasks_learned(model, learned)
        per_task, per_gn, right, batches = [], [], 0, 0
        for i in range(learned):
            gen = ctx.derive(f"infer/{learned}/{i}").generator
            r = evaluate_gn(model, tasks[i].x_test, tasks[i].y_test, i, learned,
                            algorithm=algorithm, objective=objective, real=real,
                            batch=p.infer_batch, examples=p.objective_examples, pick=p.pick,
                            unshared_labels=p.unshared_labels, generator=gen,
                            log_base=p.log_base, max_batches=max_batches,
                            total_tasks=len(tasks))
            per_task.append(r["task_accuracy"])
            per_gn.append(r["gn_accuracy"])
            right += int(r["right_batches"])
            batches += int(r["batches"])
        return {"tasks": learned, "task_accuracy": right / batches, "per_task": per_task,
                "per_task_gn": per_gn, "batches": batches}


def _default_ckpts(T: int) -> list[int]:
    if T <= 10:
        return list(range(1, T + 1))
    step = max(1, T // 10)
    return sorted({1, 2, 5, *range(step, T + 1, step)})


class FinetuneParams(SequentialParams):
    pass


class Finetune(_Sequential):
    """Baseline: one dense network fine-tuned on each task in turn (forgets)."""

    name = "supsup/finetune"
    Params = FinetuneParams

    def run(self, ctx: RunContext, data: Any, model: Any) -> dict[str, Any]:
        data = _check_data(data, self.name)
        if not isinstance(model, nn.Module) or is_masked(model):
            raise HarnessError("supsup/finetune needs a dense torch model",
                               hint="use supsup/dense-mlp (or torch/mlp)")
        params = [q for q in model.parameters() if q.requires_grad]
        out = self._sequence(ctx, data, model, lambda t: None, lambda t: params)
        if cast(FinetuneParams, self.params).plots:
            plot_per_task(ctx.artifact("accuracy_per_task.png"), out["acc_after_learning"],
                          out["final_gg"], None, title="sequential fine-tuning")
        return {"continual": out, "model": model}


METHODS: list[type[Method]] = [SupSupTrain, Finetune]
