"""Loss-based example-selection policies for ``torch/train-classifier``'s selection hook.

Selective Backprop: Jiang, Wong, Zhou, Andersen, Dean, Ganger, Joshi, Kaminsky, Kozuch,
Lipton, Pillai, "Accelerating Deep Learning by Focusing on the Biggest Losers",
arXiv:1910.00762 (2019). Studied under noise by Hu, Hu, Liu, Hooker & Yosinski,
"When does loss-based prioritization fail?", arXiv:2107.07741 (2021).

Algorithm (as in the authors' code, angelajiang/SelectiveBackprop, ``lib/calculators.py``
``BatchedRelativeProbabilityCalculator``, ``lib/hist.py``, ``lib/selectors.py``):

1. priming: for the first epoch's worth of candidates (``num_images_to_prime`` equals the
   training-set size) every candidate is backpropagated and no loss history is kept (the
   selection forward pass still runs, as in the authors' ``MemoizedTrainer``, and is
   counted in ``forward_examples``);
2. afterwards, for each batch of candidates, a no-grad forward pass gives per-example
   losses; these losses are first appended to a FIFO history of the most recent 1024
   losses, then each candidate's percentile is the share of history entries *strictly*
   smaller than its loss; it is kept with probability ``max(floor, percentile**beta)``
   (``floor`` is ``sampling_min``, 0 in the authors' setup) by an independent draw;
3. kept examples queue up and each ``batch_size`` of them makes one optimizer step on the
   mean loss of the kept examples (the generic training loop does this part).

With uniformly spread percentiles, ``E[p**beta] = 1 / (beta + 1)``: beta=2 keeps about a
third of the candidates. ``calculator: random`` reproduces the authors' control
(``BatchedRandomProbabilityCalculator``): the percentile is replaced by a uniform draw, so
the keep rate is the same but the losses are ignored. ``calculator: inverted`` (an
ablation of this harness, a sign bug) ranks by ``1 - percentile``: the same keep rate,
spent on the lowest losses. Its selection forward pass still
runs and is counted: the authors' trainer computes every candidate batch's losses before
the calculator is asked, whichever calculator it is.

Deviations from the authors' code:

- the selection forward pass is the training loop's ``losses_of``, which runs the model in
  its training mode; the authors switch to ``eval()`` first. Identical for models without
  dropout or batch norm (the MLPs of ``specs/loss-prioritization.yaml``);
- the generic loop draws candidates from a continuous stream of per-epoch permutations
  and does not flush a partial batch of kept examples at an epoch's end;
- random draws come from the run context's generator, not numpy's global state.

``selection/top-loss`` is the deterministic counterpart (the authors' ``TopKSelector``
ranks by the same monotone transform of the loss): after priming, keep the ``keep``
fraction of each candidate batch with the highest loss; fractional counts carry over
between batches so the long-run keep rate is exactly ``keep``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from harness import Params, RunContext
from harness.training import SelectionPolicy


class _Primed(SelectionPolicy):
    """Shared priming: keep every candidate until ``prime_epochs`` epochs have been seen."""

    needs_losses = True

    def start(self, ctx: RunContext, n_train: int) -> None:
        super().start(ctx, n_train)
        self.rng = ctx.rng
        self.prime_left = int(round(self.params.prime_epochs * n_train))
        self.n_candidates = 0
        self.n_kept = 0
        self.n_primed = 0

    def select(self, candidates: torch.Tensor,
               losses_of: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        self.n_candidates += len(candidates)
        if self.prime_left > 0:
            # the authors' trainer runs the selection forward pass on every candidate
            # batch, priming included, and the primed selector ignores its result
            losses_of(candidates)
            self.prime_left -= len(candidates)
            self.n_primed += len(candidates)
            self.n_kept += len(candidates)
            return candidates
        keep = self.choose(candidates, losses_of)
        self.n_kept += int(keep.sum())
        return candidates[torch.from_numpy(keep)]

    def choose(self, candidates: torch.Tensor,
               losses_of: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        selective = self.n_candidates - self.n_primed
        return {"candidates": self.n_candidates, "kept": self.n_kept,
                "primed": self.n_primed,
                "keep_rate": self.n_kept / max(1, self.n_candidates),
                "keep_rate_after_priming": (self.n_kept - self.n_primed) / selective
                if selective else None}


class LossHistory:
    """The most recent ``size`` losses (FIFO) and the percentile of a score among them."""

    def __init__(self, size: int) -> None:
        self.buf = np.empty(size, dtype=np.float64)
        self.size = size
        self.pos = 0
        self.count = 0

    def extend(self, values: np.ndarray) -> None:
        values = values[-self.size:]
        n = len(values)
        self.buf[(self.pos + np.arange(n)) % self.size] = values
        self.pos = (self.pos + n) % self.size
        self.count = min(self.count + n, self.size)

    def percentile(self, scores: np.ndarray) -> np.ndarray:
        """Share (0..1) of remembered losses strictly below each score."""
        hist = self.buf[:self.count]
        return (hist[None, :] < scores[:, None]).sum(axis=1) / max(1, self.count)


class SelectiveBackprop(_Primed):
    """Selective Backprop (Jiang et al. 2019): keep w.p. percentile(loss)^beta."""

    name = "selection/selective-backprop"
    version = "1"

    class Params(Params):
        beta: float = Field(2.0, gt=0, description="selectivity: keep w.p. percentile**beta "
                            "(the authors' prob_pow, whose default in their train.py is 3: "
                            "about a quarter kept); beta=2, this harness's default, keeps "
                            "about a third")
        history: int = Field(1024, ge=1, description="recent losses the percentile is taken "
                             "among (the authors' max_history_len)")
        floor: float = Field(0.0, ge=0, le=1, description="minimum keep probability "
                             "(the authors' sampling_min)")
        prime_epochs: float = Field(1.0, ge=0, description="epochs of candidates backpropagated "
                                    "in full before selecting (the authors prime one epoch)")
        calculator: Literal["relative", "random", "inverted"] = Field(
            "relative", description="relative: loss percentile; ablations: random, a "
            "uniform draw in place of the percentile (the authors' loss-blind control); "
            "inverted, 1 - percentile (the priority's sign flipped: low losses kept)")

    def start(self, ctx: RunContext, n_train: int) -> None:
        super().start(ctx, n_train)
        self.hist = LossHistory(self.params.history)
        self.prob_sum = 0.0

    def choose(self, candidates: torch.Tensor,
               losses_of: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        p = self.params
        if p.calculator == "random":
            # the forward pass still runs (and is counted): the authors' trainer computes
            # the losses before any calculator sees the batch; this one ignores them
            losses_of(candidates)
            pct = self.rng.random(len(candidates))
        else:
            losses = losses_of(candidates).detach().double().cpu().numpy()
            self.hist.extend(losses)  # the batch joins the history before it is ranked
            pct = self.hist.percentile(losses)
            if p.calculator == "inverted":
                pct = 1.0 - pct
        prob = np.maximum(p.floor, pct ** p.beta)
        self.prob_sum += float(prob.sum())
        return self.rng.random(len(candidates)) < prob

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        selective = self.n_candidates - self.n_primed
        out["mean_keep_probability"] = self.prob_sum / selective if selective else None
        return out


class TopLoss(_Primed):
    """Deterministic loss prioritization: backprop the highest-loss fraction of each batch."""

    name = "selection/top-loss"
    version = "1"

    class Params(Params):
        keep: float = Field(1 / 3, gt=0, le=1, description="fraction of candidates kept")
        prime_epochs: float = Field(1.0, ge=0, description="epochs of candidates backpropagated "
                                    "in full before selecting")

    def start(self, ctx: RunContext, n_train: int) -> None:
        super().start(ctx, n_train)
        self.carry = 0.0

    def choose(self, candidates: torch.Tensor,
               losses_of: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        want = self.params.keep * len(candidates) + self.carry
        k = min(len(candidates), math.floor(want + 1e-9))
        self.carry = want - k
        losses = losses_of(candidates).detach().cpu()
        keep = np.zeros(len(candidates), dtype=bool)
        if k > 0:
            keep[torch.topk(losses, k).indices.numpy()] = True
        return keep


SELECTION = [SelectiveBackprop, TopLoss]
