"""``supsup/hopsupsup``: SupSup whose masks are recovered from a fixed-size Hopfield network.

Supermasks in Superposition (Wortsman et al., arXiv 2006.14769), the HopSupSup extension:
the supermasks are stored "as attractors in a fixed-sized Hopfield network" and recovered
at test time. Follows the official ``experiments/GNu/SplitMNIST/hopsupsup.py``,
``main.py`` and ``adaptors.hopfield_recovery`` (RAIVNLab/supsup):

- training (``main.py``, default trainer): task after task, a fresh optimizer over that
  task's unit-mask scores only (official: SGD, lr 0.1, momentum 0.9, weight decay 1e-4,
  one epoch, batch 128); cross-entropy over the 10 outputs; the weights never change.
  Then the task's mask is written into each layer's Hopfield weights (``hopfield.py``);
- recovery of task ``i`` (``hopfield_recovery``, after the last task): each layer's
  ``score`` starts at the mean of the stored patterns; one pass over task ``i``'s
  unlabelled test batches (official batch 64), SGD at lr 500 (momentum 0.9, weight decay
  1e-4) on ``(1 - b/N) * entropy(output) + gamma * (b/N) * sum_layers(-s^T W s / 2)``
  with ``s = 2 * (score >= 0) - 1`` (straight-through) and ``b`` the batch number
  (1..N): the data choose the basin early, the Hopfield energy pulls the state into the
  attractor late (official ``gamma`` 1.5e-3);
- the recovered mask (``score >= 0``) then classifies the task's test set.

Deviations: the digits give about 90 test images per class pair, 2 batches of 64, where
MNIST gives about 31; ``recovery_batch`` and ``recovery_passes`` (passes over the test
set, the schedule's ``N`` counting every batch of every pass) give the recovery a
comparable number of steps; the defaults are the official one pass of 64. Accuracy (with
the stored and with the recovered masks alike) uses BatchNorm statistics of the task's
whole test split in one batch, instead of batches of 64. Recovery reads only the Hopfield
memory: the stored scores are used for the GG comparison and the mask distances only.

Ablations for the spec's controls: the model's ``memory: empty`` (nothing stored) and
``memory: patterns`` (patterns kept: memory grows), and this method's
``recovery_data: none`` (the entropy term dropped: recovery without the task's data, the
Hopfield dynamics alone from the start point).
"""

from __future__ import annotations

import time
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from harness import Component, HarnessError, Method, RunContext, component_field

from .hopfield import HopNet, hop_layers, pattern, set_hop_task
from .inference import entropy_objective
from .masks import get_subnet
from .plots import plot_per_task
from .train import SequentialParams, _accuracy, _check_data, _Sequential


class HopSupSupParams(SequentialParams):
    optimizer: Component = component_field(
        "optimizer", {"use": "torch/sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
        "optimizer of each task's mask scores (official: SGD lr 0.1, momentum 0.9, wd 1e-4)")
    steps: int = Field(94, ge=1, description="optimizer steps per task (official: one "
                       "epoch of a SplitMNIST pair, about 94 batches of 128)")
    gamma: float = Field(1.5e-3, ge=0, description="weight of the Hopfield energy "
                         "(official args.gamma 1.5e-3)")
    recovery_lr: float = Field(500.0, gt=0, description="recovery SGD lr (official 500)")
    recovery_momentum: float = Field(0.9, ge=0, lt=1, description="official args.momentum")
    recovery_weight_decay: float = Field(1e-4, ge=0, description="official args.wd")
    recovery_batch: int = Field(64, ge=2, description="unlabelled test images per "
                                "recovery step (official test_batch_size 64)")
    recovery_passes: int = Field(1, ge=1, description="passes over the task's test set "
                                 "during recovery (official: 1)")
    recovery_data: Literal["test", "none"] = Field(
        "test", description="test: the entropy of the task's unlabelled test batches "
        "chooses the basin (official); none: ABLATION, the entropy term is dropped")


def _recovery_batches(n: int, size: int, passes: int, generator: torch.Generator
                      ) -> list[torch.Tensor]:
    """Shuffled batches (official: the shuffled test loader), a trailing batch of one
    merged into the one before (BatchNorm needs two)."""
    out: list[torch.Tensor] = []
    for _ in range(passes):
        perm = torch.randperm(n, generator=generator)
        chunk = list(perm.split(size))
        if len(chunk) > 1 and len(chunk[-1]) < 2:
            chunk[-2] = torch.cat([chunk[-2], chunk.pop()])
        out += chunk
    return out


class HopSupSup(_Sequential):
    """SupSup with unit masks stored in, and recovered from, a fixed-size Hopfield net."""

    name = "supsup/hopsupsup"
    Params = HopSupSupParams

    def run(self, ctx: RunContext, data: Any, model: Any) -> dict[str, Any]:
        p: HopSupSupParams = self.params  # type: ignore[assignment]
        data = _check_data(data, self.name)
        if not isinstance(model, HopNet):
            raise HarnessError("supsup/hopsupsup needs a supsup/hop-mlp model",
                               hint="models: {hop: {use: supsup/hop-mlp}}")
        if model.num_tasks < data.num_tasks:
            raise HarnessError("the model has fewer score tensors than the data has tasks")
        layers = hop_layers(model)
        weights = [q for q in model.parameters() if q.ndim == 2]

        def select(t: int) -> None:
            set_hop_task(model, t)

        def trainable(t: int) -> list[torch.Tensor]:
            return [layer.scores[t] for layer in layers]

        floats_by_tasks: list[int] = []

        def store(t: int) -> None:
            for layer in layers:
                layer.memory.store(pattern(get_subnet(layer.scores[t].detach(),
                                                      "threshold", 1.0)))
            floats_by_tasks.append(sum(layer.memory.state_floats() for layer in layers))

        out = self._sequence(ctx, data, model, select, trainable, store, fixed=weights)
        t0 = time.perf_counter()
        recovered_acc, distance, exact, nearest, traces = [], [], [], [], []
        stored = [[get_subnet(layer.scores[t].detach(), "threshold", 1.0)
                   for layer in layers] for t in range(data.num_tasks)]
        for i in range(data.num_tasks):
            task = data.task(i)
            masks, trace = self.recover(ctx, model, task.x_test, i, stored[i])
            traces.append(trace)
            set_hop_task(model, -1)
            recovered_acc.append(_accuracy(model, task.x_test, task.y_test))
            d = [float((m != s).double().mean()) for m, s in zip(masks, stored[i], strict=True)]
            distance.append(sum(d) / len(d))
            exact.append(all(torch.equal(m, s) for m, s in zip(masks, stored[i], strict=True)))
            gaps = [sum(int((m != s).sum()) for m, s in zip(masks, stored[j], strict=True))
                    for j in range(data.num_tasks)]
            nearest.append(int(min(range(len(gaps)), key=gaps.__getitem__)))
        set_hop_task(model, 0)
        out["timings"]["recovery_s"] = time.perf_counter() - t0
        hop = {"recovered_accuracy": recovered_acc, "mask_distance": distance,
               "exact": exact, "nearest": nearest,
               "state_floats": floats_by_tasks[-1], "state_floats_by_tasks": floats_by_tasks,
               "per_task_mask_floats": sum(layer.d for layer in layers),
               "num_tasks": data.num_tasks, "traces": traces}
        if p.plots:
            plot_per_task(ctx.artifact("accuracy_per_task.png"), out["final_gg"],
                          out["final_gg"], recovered_acc,
                          title="HopSupSup: stored masks (GG) and recovered from Hopfield")
        return {"continual": out, "hopfield": hop, "model": model}

    def recover(self, ctx: RunContext, model: nn.Module, x: torch.Tensor, task: int,
                log_against: list[torch.Tensor] | None = None
                ) -> tuple[list[torch.Tensor], dict[str, list[float]]]:
        """The official ``hopfield_recovery`` on the unlabelled images ``x``; returns the
        recovered binary mask of every layer (left in each layer's ``score``) and a trace
        per step of the entropy, the energy and, for logging only (as the official
        ``distance`` scalars), the distance to the masks ``log_against``."""
        p: HopSupSupParams = self.params  # type: ignore[assignment]
        layers = hop_layers(model)
        scores = []
        for layer in layers:
            layer.score = nn.Parameter(layer.memory.start().clone())
            scores.append(layer.score)
        weights = [layer.memory.weights() for layer in layers]
        opt = torch.optim.SGD(scores, lr=p.recovery_lr, momentum=p.recovery_momentum,
                              weight_decay=p.recovery_weight_decay)
        set_hop_task(model, -1)
        model.train()
        batches = _recovery_batches(len(x), p.recovery_batch, p.recovery_passes,
                                    ctx.derive(f"recovery/{task}").generator)
        n = len(batches)
        trace: dict[str, list[float]] = {"entropy": [], "energy": [], "distance": []}
        for b, idx in enumerate(batches, start=1):
            opt.zero_grad()
            energy = torch.zeros(())
            for score, W in zip(scores, weights, strict=True):
                s = 2 * get_subnet(score, "threshold", 1.0) - 1
                energy = energy - 0.5 * s @ (W @ s)
            loss = p.gamma * (b / n) * energy
            entropy = entropy_objective(model(x[idx]), 0)
            if p.recovery_data == "test":
                loss = loss + (1 - b / n) * entropy
            trace["entropy"].append(float(entropy.detach()))
            trace["energy"].append(float(energy.detach()))
            if log_against is not None:
                trace["distance"].append(float(sum(
                    int((get_subnet(sc.detach(), "threshold", 1.0) != m).sum())
                    for sc, m in zip(scores, log_against, strict=True))))
            if loss.requires_grad:
                loss.backward()
                opt.step()
        for layer in layers:
            layer.score.requires_grad_(False)
        return [get_subnet(layer.score.detach(), "threshold", 1.0) for layer in layers], trace


METHODS: list[type[Method]] = [HopSupSup]
