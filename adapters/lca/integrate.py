"""The numerical core of Loss Change Allocation: the full-data loss and its gradient at any
parameter vector, and the adaptive Simpson integral of the gradient along one step.

Lan, Liu, Zhou, Dingwall & Yosinski, "LCA: Loss Change Allocation for Neural Network
Training", NeurIPS 2019, arXiv:1909.01440. See ``adapters/lca/observer.py`` for the
method, its options and every deviation from the official TensorFlow code
(uber-research/loss-change-allocation).

Parameters travel as one flat float64 vector (the official code also works on flat
vectors): the loss and gradients are computed in the model's own dtype (float32 there, as
TensorFlow did) or in float64 on request, and every sum is kept in float64.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def simpson_coefficients(splits: int) -> list[int]:
    """Composite Simpson weights over ``splits`` equal pieces: 1,4,1 / 1,4,2,4,1 / ...

    The mean gradient along the segment is ``sum(c_j g_j) / sum(c)`` with
    ``sum(c) == 3 * splits``. Only even ``splits`` make sense (the official code uses
    powers of two from 2 to 32).
    """
    if splits < 2 or splits % 2:
        raise ValueError(f"Simpson's rule needs an even number of splits, got {splits}")
    return [1 if j in (0, splits) else (4 if j % 2 else 2) for j in range(splits + 1)]


class Layout:
    """Names, shapes and offsets of the analysed parameter tensors inside the flat vector."""

    def __init__(self, params: dict[str, torch.Tensor]) -> None:
        self.names = list(params)
        self.shapes = [tuple(t.shape) for t in params.values()]
        self.sizes = [t.numel() for t in params.values()]
        self.dtypes = [t.dtype for t in params.values()]
        self.total = sum(self.sizes)
        bounds = [0]
        for s in self.sizes:
            bounds.append(bounds[-1] + s)
        self.bounds = bounds
        # segment id of every flat entry, for per-layer sums with one scatter
        self.segment = torch.repeat_interleave(torch.arange(len(self.sizes)),
                                               torch.tensor(self.sizes))

    def flatten(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([params[n].detach().reshape(-1).to(torch.float64) for n in self.names])

    def unflatten(self, flat: torch.Tensor, dtype: torch.dtype | None = None
                  ) -> dict[str, torch.Tensor]:
        out = {}
        for i, name in enumerate(self.names):
            part = flat[self.bounds[i]:self.bounds[i + 1]].reshape(self.shapes[i])
            out[name] = part.to(dtype or self.dtypes[i], copy=True)
        return out

    def layer_sums(self, values: torch.Tensor) -> torch.Tensor:
        seg = self.segment.to(values.device)
        return torch.zeros(len(self.sizes), dtype=values.dtype,
                           device=values.device).index_add_(0, seg, values)


@contextmanager
def analysis_mode(model: torch.nn.Module, batchnorm: str) -> Iterator[None]:
    """Dropout and other train-only behaviour off; BatchNorm on batch statistics
    (``batchnorm="batch"``, as the official code: TF learning_phase 0 with
    batchnorm_learning_phase 1) or on its running statistics (``"running"``).
    Every module's own train/eval flag is restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    if batchnorm == "batch":
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.train()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


class FullDataLoss:
    """Mean loss over a whole dataset and its gradient, at any flat parameter vector.

    Evaluated with ``torch.func.functional_call`` in chunks: the model's parameters,
    buffers and gradients are never touched (buffers are passed as copies, so BatchNorm in
    batch-statistics mode does not update its running averages).
    """

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn, x: torch.Tensor,
                 y: torch.Tensor, layout: Layout, chunk_size: int, batchnorm: str,
                 dtype: torch.dtype | None = None) -> None:
        self.model, self.loss_fn, self.layout = model, loss_fn, layout
        self.x = x if dtype is None or not x.is_floating_point() else x.to(dtype)
        self.y = y
        self.n = len(x)
        self.chunk = chunk_size if chunk_size > 0 else self.n
        self.batchnorm, self.dtype = batchnorm, dtype
        self.evaluations = 0

    def __call__(self, flat: torch.Tensor, with_grad: bool = True
                 ) -> tuple[float, torch.Tensor | None]:
        self.evaluations += 1
        params = self.layout.unflatten(flat, self.dtype)
        leaves = {k: v.requires_grad_(with_grad) for k, v in params.items()}
        buffers = {k: b.detach().clone() if self.dtype is None or not b.is_floating_point()
                   else b.detach().to(self.dtype)
                   for k, b in self.model.named_buffers()}
        total = torch.zeros((), dtype=torch.float64, device=flat.device)
        grad = torch.zeros_like(flat) if with_grad else None
        with analysis_mode(self.model, self.batchnorm), torch.set_grad_enabled(with_grad):
            for start in range(0, self.n, self.chunk):
                xb, yb = self.x[start:start + self.chunk], self.y[start:start + self.chunk]
                out = functional_call(self.model, {**leaves, **buffers}, (xb,))
                loss_sum = self.loss_fn(out, yb).sum()
                total += loss_sum.detach().to(torch.float64)
                if with_grad:
                    gs = torch.autograd.grad(loss_sum, list(leaves.values()), allow_unused=True)
                    assert grad is not None
                    grad += torch.cat([(torch.zeros_like(v) if g is None else g)
                                       .reshape(-1).to(torch.float64)
                                       for g, v in zip(gs, leaves.values(), strict=True)])
        if grad is not None:
            grad /= self.n
        return float(total.item()) / self.n, grad


Evaluate = Callable[[torch.Tensor, bool], list[tuple[float, torch.Tensor | None]]]
"""theta -> [(loss, gradient)] for every objective (train, and test when asked)."""


@dataclass
class Point:
    """Losses and gradients of every objective at one parameter vector."""

    losses: list[float]
    grads: list[torch.Tensor]


@dataclass
class Segment:
    """The integral of the gradient along one optimizer step, per objective."""

    mean_grads: list[torch.Tensor]   # k: the Simpson (or first-order) mean gradient
    residuals: list[float]           # (L1 - L0) - k . delta, per objective
    splits: int                      # 0 for first order
    evaluations: int                 # interior points evaluated for this segment


def point(evaluate: Evaluate, theta: torch.Tensor) -> Point:
    res = evaluate(theta, True)
    return Point([r[0] for r in res], [r[1] for r in res])  # type: ignore[misc]


def _interior_grads(evaluate: Evaluate, theta0: torch.Tensor, theta1: torch.Tensor,
                    fractions: Sequence[int], splits: int) -> list[torch.Tensor] | None:
    """Sum of gradients at theta0 + (j / splits) (theta1 - theta0) over j in fractions."""
    acc: list[torch.Tensor] | None = None
    for j in fractions:
        nxt = j / splits
        theta = (1.0 - nxt) * theta0 + nxt * theta1   # the official interpolation
        grads = [g for _, g in evaluate(theta, True)]
        acc = [g.clone() for g in grads] if acc is None else [  # type: ignore[union-attr]
            a + g for a, g in zip(acc, grads, strict=True)]
    return acc


def integrate_step(evaluate: Evaluate, theta0: torch.Tensor, theta1: torch.Tensor,
                   p0: Point, p1: Point, *, splits: int = 2, max_splits: int = 32,
                   tolerance: float = 1e-3, first_order: bool = False) -> Segment:
    """Mean gradient along the straight segment theta0 -> theta1 (adaptive Simpson).

    Starts from ``splits`` pieces and doubles them while the largest residual over the
    objectives exceeds ``tolerance`` and the pieces number fewer than ``max_splits``,
    reusing every gradient already computed. The Simpson sum is kept as three running
    sums (end points, odd points, interior even points) instead of all the gradients:
    k = (ends + 4 odd + 2 even) / (3 n), identical to the official coefficient vector.
    """
    delta = theta1 - theta0
    dloss = [b - a for a, b in zip(p0.losses, p1.losses, strict=True)]

    def residuals(ks: list[torch.Tensor]) -> list[float]:
        return [dl - float(torch.dot(k, delta).item()) for dl, k in zip(dloss, ks, strict=True)]

    if first_order:
        ks = list(p0.grads)
        return Segment(ks, residuals(ks), 0, 0)
    simpson_coefficients(splits)  # validates
    ends = [a + b for a, b in zip(p0.grads, p1.grads, strict=True)]
    zero = [torch.zeros_like(g) for g in ends]
    odd = _interior_grads(evaluate, theta0, theta1, range(1, splits, 2), splits) or zero
    even = _interior_grads(evaluate, theta0, theta1, range(2, splits, 2), splits) or zero
    evaluations = splits - 1
    n = splits

    def mean(n: int) -> list[torch.Tensor]:
        return [(e + 4.0 * o + 2.0 * v) / (3.0 * n) for e, o, v in zip(ends, odd, even,
                                                                          strict=True)]

    ks = mean(n)
    res = residuals(ks)
    while max(abs(r) for r in res) > tolerance and n < max_splits:
        n *= 2
        even = [v + o for v, o in zip(even, odd, strict=True)]
        odd = _interior_grads(evaluate, theta0, theta1, range(1, n, 2), n) or zero
        evaluations += n // 2
        ks = mean(n)
        res = residuals(ks)
    return Segment(ks, res, n, evaluations)
