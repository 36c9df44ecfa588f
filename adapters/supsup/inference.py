"""Task inference of SupSup (scenario GN): which learned mask fits an unlabelled batch?

Supermasks in Superposition (Wortsman et al., arXiv 2006.14769), section on inferring task
identity with one gradient step over mask weights. Follows the official ``adaptors.py``
(RAIVNLab/supsup):

- weights ``alpha_i = 1 / (tasks learned)`` on the learned masks; the superposed network
  ``W * sum_i alpha_i M_i`` sees the batch; an objective of its output is differentiated
  with respect to the alphas;
- one-shot (``se_oneshot_minimization``): the inferred task is the **argmin** of that
  gradient, i.e. the mask whose weight, when raised, lowers the objective fastest;
- binary (``se_binary_minimization``): keep the tasks whose gradient is at most the
  median (``kth_elt`` with ``log_base`` 2: ``torch.median``, the lower median) of the
  still-valid ones, spread the alphas uniformly over them, recompute, until one is left;
  at most ``log2(T) + 1`` rounds, ``T`` the run's number of tasks (official
  ``args.num_tasks``), a round running while its number is <= that bound;
- objectives: the entropy of the softmax (``H``, averaged over the examples) and the
  official ``G``: log-sum-exp over *all* outputs with the real classes' logits detached, so
  only the superfluous outputs carry gradient (averaged over the examples). With no
  superfluous outputs ``G`` has zero gradient and cannot infer anything.
- the objective reads the first ``examples`` examples of the batch (the official
  ``data_to_repeat``, 1 in the GNu MNIST configs); the whole batch is then classified with
  the inferred task's mask. With ``unshared_labels`` (set in every GNu config) a batch
  whose task was inferred wrongly counts as all wrong.

Deviations: the alphas cover the learned tasks only (the official tensor has a slot per
task of the whole run, unlearned ones with zero gradient, which only matters when
evaluating before all tasks are learned); when the binary search hits its round limit the
official code keeps a stale value from the previous batch, here the smallest remaining
gradient decides.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from .masks import masked_layers, set_alphas, set_task

Objective = Callable[[torch.Tensor, int], torch.Tensor]
Pick = Literal["argmin", "argmax"]


def entropy_objective(logits: torch.Tensor, real: int) -> torch.Tensor:
    """Mean entropy of the softmax over all outputs (the paper's H)."""
    return -(logits.softmax(dim=1) * logits.log_softmax(dim=1)).sum(1).mean()


def g_objective(logits: torch.Tensor, real: int) -> torch.Tensor:
    """The official G: logsumexp of the outputs, the first ``real`` ones detached."""
    real_mask = (torch.arange(logits.size(1), device=logits.device) < real).to(logits.dtype)
    mixed = (logits * real_mask).detach() + logits * (1 - real_mask)
    return mixed.logsumexp(dim=1).mean()


OBJECTIVES: dict[str, Objective] = {"entropy": entropy_objective, "g": g_objective}


def alpha_gradient(model: nn.Module, x: torch.Tensor, alphas: torch.Tensor,
                   objective: Objective, real: int) -> torch.Tensor:
    """d objective / d alphas for the superposed model on ``x``."""
    alphas = alphas.detach().requires_grad_(True)
    set_task(model, -1)
    set_alphas(model, alphas)
    (grad,) = torch.autograd.grad(objective(model(x), real), alphas)
    set_alphas(model, None)
    return grad


def oneshot(model: nn.Module, x: torch.Tensor, learned: int, objective: Objective, real: int,
            pick: Pick = "argmin") -> int:
    """One gradient, one decision: the official one-shot algorithm."""
    grad = alpha_gradient(model, x, torch.full((learned,), 1.0 / learned), objective, real)
    return int(grad.argmin() if pick == "argmin" else grad.argmax())


def superposed_gradients(model: nn.Module, batches: list[torch.Tensor], learned: int,
                         objective: Objective, real: int) -> torch.Tensor:
    """``d objective / d alpha`` at uniform alphas for many batches: (learned x batches).

    With uniform alphas the superposed mask ``S = mean_i M_i`` is the same for every batch,
    and ``d obj / d alpha_i = <d obj / d S, M_i>`` (the chain rule autograd applies in
    ``alpha_gradient``). So each batch needs one backward pass to ``S``, and one matrix
    product ``stacked @ [dS_1 ... dS_B]`` per layer serves all batches, instead of reading
    the stacked masks twice per batch. Only the summation order differs.
    """
    layers = list(masked_layers(model))
    uniform = torch.full((1, learned), 1.0 / learned)
    supers = []
    for layer in layers:
        if layer.stacked is None:
            raise RuntimeError("cache_masks() first")
        s = (uniform @ layer.stacked[:learned]).view_as(layer.weight).requires_grad_(True)
        layer.superposed = s
        supers.append(s)
    set_task(model, -1)
    try:
        per_layer: list[list[torch.Tensor]] = [[] for _ in layers]
        for x in batches:
            grads = torch.autograd.grad(objective(model(x), real), supers)
            for store, g in zip(per_layer, grads, strict=True):
                store.append(g.flatten())
    finally:
        for layer in layers:
            layer.superposed = None
    total = torch.zeros(learned, len(batches))
    for layer, store in zip(layers, per_layer, strict=True):
        total += layer.stacked[:learned] @ torch.stack(store, dim=1)  # type: ignore[index]
    return total


def oneshot_batched(model: nn.Module, batches: list[torch.Tensor], learned: int,
                    objective: Objective, real: int, pick: Pick = "argmin") -> list[int]:
    """``oneshot`` for many batches at once (see ``superposed_gradients``)."""
    total = superposed_gradients(model, batches, learned, objective, real)
    best = total.argmin(0) if pick == "argmin" else total.argmax(0)
    return [int(b) for b in best]


def kth_elt(x: torch.Tensor, base: int) -> torch.Tensor:
    """The official ``kth_elt``: the lower median for base 2, else the (n-1)//base-th."""
    if base == 2:
        return x.median()
    values = x.flatten().sort().values
    return values[(values.numel() - 1) // base]


def binary(model: nn.Module, x: torch.Tensor, learned: int, objective: Objective, real: int,
           pick: Pick = "argmin", log_base: int = 2, total_tasks: int | None = None) -> int:
    """The official binary algorithm: halve the candidate set by the gradient's median.

    Round limit as the official loop: a round runs while its number is at most
    ``log2(total_tasks) + 1``, ``total_tasks`` being the run's number of tasks
    (``args.num_tasks``), not the tasks learned so far (default: ``learned``)."""
    good = torch.ones(learned, dtype=torch.bool)
    alphas = torch.full((learned,), 1.0 / learned)
    max_rounds = math.log2(total_tasks or learned) + 1
    rounds = 0
    grad = torch.zeros(learned)
    while good.sum() > 1 and rounds + 1 <= max_rounds:
        rounds += 1
        grad = alpha_gradient(model, x, alphas, objective, real)
        if pick == "argmax":
            grad = -grad
        good = good & (grad <= kth_elt(grad[good], log_base))
        alphas = torch.zeros(learned)
        alphas[good] = 1.0 / good.sum().item()
    if good.sum() == 1:
        return int(good.nonzero()[0].item())
    candidates = good.nonzero().flatten()
    return int(candidates[grad[candidates].argmin()].item())


ALGORITHMS = {"oneshot": oneshot, "binary": binary}


def infer(model: nn.Module, x: torch.Tensor, learned: int, algorithm: str, objective: str,
          real: int, pick: Pick = "argmin", log_base: int = 2,
          total_tasks: int | None = None) -> int:
    obj = OBJECTIVES[objective]
    if learned == 1:
        return 0
    if algorithm == "binary":
        return binary(model, x, learned, obj, real, pick, log_base, total_tasks)
    return oneshot(model, x, learned, obj, real, pick)


def evaluate_gn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: int, learned: int,
                *, algorithm: str, objective: str, real: int, batch: int, examples: int | None,
                pick: Pick, unshared_labels: bool, generator: torch.Generator,
                log_base: int = 2, max_batches: int | None = None,
                total_tasks: int | None = None) -> dict[str, float | int]:
    """Infer the task of each shuffled test batch of ``task``, then classify with it.

    Returns the fraction of batches whose task was right, the GN accuracy (correct
    examples / examples seen) and the counts. Needs the masks cached (``cache_masks``).
    """
    order = torch.randperm(len(x), generator=generator)
    starts = list(range(0, len(x), batch))
    if max_batches is not None:
        starts = starts[:max_batches]
    batches = [order[s:s + batch] for s in starts]
    views = [x[idx][:examples] if examples else x[idx] for idx in batches]
    if algorithm == "oneshot" and learned > 1:
        guesses = oneshot_batched(model, views, learned, OBJECTIVES[objective], real, pick)
    else:
        guesses = [infer(model, v, learned, algorithm, objective, real, pick, log_base,
                         total_tasks) for v in views]
    right_task = correct = seen = 0
    for idx, guess in zip(batches, guesses, strict=True):
        xb, yb = x[idx], y[idx]
        seen += len(idx)
        right_task += guess == task
        if guess != task and unshared_labels:
            continue
        set_task(model, guess)
        with torch.no_grad():
            correct += int((model(xb).argmax(1) == yb).sum())
    return {"task_accuracy": right_task / len(starts), "gn_accuracy": correct / seen,
            "batches": len(starts), "right_batches": right_task}
