"""First-Order Preconditioning (FOP) as a ``torch.optim.Optimizer``.

Paper: T. Moskovitz, R. Wang, J. Lan, S. Kapoor, T. Miconi, J. Yosinski, A. Rawal,
"First-Order Preconditioning via Hypergradient Descent", arXiv:1910.08461 (2019).
No official code was published; this is derived from the paper and from the code of the
method it generalizes, Baydin et al.'s hypergradient descent (gbaydin/hypergradient-descent,
see :mod:`harness_adapters.fop.hd`). ``docs/fop.md`` has the full derivation.

The algorithm (one call of :meth:`FOP.step`, for every parameter block)
-----------------------------------------------------------------------
Each parameter is viewed as a matrix ``W`` of shape ``(rows, cols)`` and preconditioned on
its right by ``P = M M^T`` (``cols x cols``, positive semidefinite by construction)::

    conv weight  (C_out, C_in, k1, k2)  ->  (C_out*C_in, k1*k2)   P: spatial, shared by channels
    dense weight (out, in)              ->  (out, in)              P: input side  [dense_side]
                                        or  (in, out) transposed   P: output side
    vector       (n,)                   ->  (1, n)                 P: full n x n  [vectors]

At step ``t`` the gradient ``G_t = dJ/dW`` at the current point has just been computed.

1. Hypergradient (the paper's rule): the previous step was ``W_t = W_{t-1} - eps U_{t-1} P``
   with ``P = M M^T``, so ``dJ(W_t)/dP = -eps U_{t-1}^T G_t`` and, through ``P = M M^T``,
   ``H = dJ(W_t)/dM = -eps (U_{t-1}^T G_t + G_t^T U_{t-1}) M``. For a vector this is the
   paper's ``-eps (g_t g_{t-1}^T + g_{t-1} g_t^T) M``.
2. Meta step: ``M <- M - rho H`` (plain gradient descent on ``M``, meta learning rate ``rho``).
3. Base direction ``U_t`` from ``G_t`` (+ weight decay): SGD ``U = G``; momentum
   ``b = mu b + (1 - dampening) G`` (``b = G`` on the first step), ``U = b`` or, Nesterov,
   ``U = G + mu b``. Exactly ``torch.optim.SGD``'s and SGD-HD's buffer rules.
4. Update ``W <- W - eps U_t M M^T`` (computed as ``(U M) M^T``; ``P`` is never formed).
5. Remember ``U_t`` for the next hypergradient.

``structure="scalar"`` restricts ``P`` to ``c I`` for the whole model (one ``c``), learned by
its own hypergradient ``dJ/dc = -eps <G_t, U_{t-1}>`` (``c <- c - rho dJ/dc``): exactly
Baydin's SGD-HD with ``alpha = eps c`` and ``beta = rho eps^2``.

Choices the paper leaves open (each a parameter; defaults marked)
-----------------------------------------------------------------
- Base optimizer: the paper writes the rule for SGD and states FOP combines with other
  optimizers. Here ``P`` preconditions the base optimizer's final *direction* (the momentum
  buffer), and the hypergradient uses the previous direction ``U_{t-1}``, as SGD-HD's code
  does (``grad_prev`` is the post-momentum direction). Preconditioning the raw gradient
  before the momentum buffer is the other reading; it would break the ``P = cI`` == SGD-HD
  identity for momentum.
- Order within a step: the meta step uses the current gradient and comes *before* the
  parameter step, which already uses the updated ``M`` (as SGD-HD updates ``lr`` first).
- ``M_0 = sqrt(init_scale) I`` (default ``init_scale=1``: FOP starts as its base optimizer).
- Dense layers (``dense_side``): the paper's "matrix on one side"; default ``input``
  (``in x in``, the side K-FAC's activation factor lives on); ``output`` or ``none``.
- Vectors (biases, a bare parameter vector): a full ``n x n`` ``P`` (default ``full``) or none.
- Blocks with ``cols > max_dim`` get no preconditioner (plain base optimizer).
- No normalization, clipping or damping of the hypergradient, no momentum on ``M``.
- ``hypergradient_sign=-1`` ascends the hypergradient: an ablation that exists only to show
  the benchmark's claims can fail.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch

Structure = Literal["layerwise", "scalar"]


@dataclass(frozen=True)
class Layout:
    """How a parameter tensor is viewed as a ``(rows, cols)`` block (``P`` acts on cols)."""

    shape: tuple[int, ...]
    rows: int
    cols: int
    transpose: bool = False

    def to_block(self, t: torch.Tensor) -> torch.Tensor:
        if self.transpose:
            return t.t()
        return t.reshape(self.rows, self.cols)

    def from_block(self, b: torch.Tensor) -> torch.Tensor:
        if self.transpose:
            return b.t()
        return b.reshape(self.shape)


def layout_for(shape: tuple[int, ...], dense_side: str = "input", vectors: str = "full",
               max_dim: int = 1024) -> Layout | None:
    """The block view of a parameter of ``shape``, or None when it gets no preconditioner."""
    if len(shape) >= 3:  # conv: (C_out, C_in, *spatial) -> spatial preconditioner
        lay = Layout(shape, shape[0] * shape[1], math.prod(shape[2:]))
    elif len(shape) == 2:
        if dense_side == "none":
            return None
        lay = (Layout(shape, shape[0], shape[1]) if dense_side == "input"
               else Layout(shape, shape[1], shape[0], transpose=True))
    elif len(shape) == 1 and vectors == "full":
        lay = Layout(shape, 1, shape[0])
    else:
        return None
    return lay if lay.cols <= max_dim else None


def hypergradient(g: torch.Tensor, u_prev: torch.Tensor, m: torch.Tensor,
                  lr: float) -> torch.Tensor:
    """``dJ(W_t)/dM`` for ``W_t = W_{t-1} - lr U_{t-1} M M^T``: ``-lr (U^T G + G^T U) M``.

    ``g`` is ``dJ/dW`` at ``W_t`` and ``u_prev`` the direction ``U_{t-1}``, both
    ``(rows, cols)`` blocks; ``m`` is ``M`` (``cols x cols``). The cheaper association is
    picked: forming ``U^T G`` costs ``rows cols^2``, the factored form ``4 rows cols^2``.
    """
    rows, cols = g.shape
    if rows >= cols // 2:
        a = u_prev.t() @ g
        return (a + a.t()) @ m * (-lr)
    return (u_prev.t() @ (g @ m) + g.t() @ (u_prev @ m)) * (-lr)


class FOP(torch.optim.Optimizer):
    """First-order preconditioning over SGD or momentum (see the module docstring)."""

    def __init__(self, params: Iterable[Any], lr: float, meta_lr: float, momentum: float = 0.0,
                 dampening: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
                 structure: Structure = "layerwise", dense_side: str = "input",
                 vectors: str = "full", max_dim: int = 1024, init_scale: float = 1.0,
                 hypergradient_sign: int = 1) -> None:
        if lr <= 0 or meta_lr < 0 or init_scale <= 0:
            raise ValueError("need lr > 0, meta_lr >= 0 and init_scale > 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening 0")
        if structure not in ("layerwise", "scalar") or dense_side not in (
                "input", "output", "none") or vectors not in ("full", "none"):
            raise ValueError(f"bad structure/dense_side/vectors: {structure}, {dense_side}, "
                             f"{vectors}")
        if hypergradient_sign not in (1, -1):
            raise ValueError("hypergradient_sign is 1 or -1")
        defaults = dict(lr=lr, meta_lr=meta_lr, momentum=momentum, dampening=dampening,
                        nesterov=nesterov, weight_decay=weight_decay)
        super().__init__(params, defaults)
        if structure == "scalar" and len(self.param_groups) != 1:
            raise ValueError("structure='scalar' learns one c for all parameters: give one "
                             "parameter group")
        self.structure = structure
        self.dense_side, self.vectors, self.max_dim = dense_side, vectors, max_dim
        self.init_scale = init_scale
        self.sign = hypergradient_sign
        self.param_names: dict[int, str] = {}
        self.scalar_state: dict[str, Any] = {"c": float(init_scale)}

    # -- the base optimizer's direction ------------------------------------------------
    @staticmethod
    def _direction(state: dict[str, Any], g: torch.Tensor, group: dict[str, Any]
                   ) -> torch.Tensor:
        mu = group["momentum"]
        if mu == 0:
            return g
        if "momentum_buffer" not in state:
            buf = state["momentum_buffer"] = g.clone()
        else:
            buf = state["momentum_buffer"]
            buf.mul_(mu).add_(g, alpha=1 - group["dampening"])
        return g.add(buf, alpha=mu) if group["nesterov"] else buf

    def _grads(self) -> list[tuple[dict[str, Any], torch.nn.Parameter, torch.Tensor]]:
        out = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("FOP does not support sparse gradients")
                g = p.grad.detach()
                if group["weight_decay"] != 0:
                    g = g.add(p.detach(), alpha=group["weight_decay"])
                out.append((group, p, g))
        return out

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grads = self._grads()
        if self.structure == "scalar":
            self._step_scalar(grads)
        else:
            for group, p, g in grads:
                self._step_block(group, p, g)
        return loss

    def _step_block(self, group: dict[str, Any], p: torch.nn.Parameter,
                    g: torch.Tensor) -> None:
        state = self.state[p]
        if "layout" not in state:
            state["layout"] = layout_for(tuple(p.shape), self.dense_side, self.vectors,
                                         self.max_dim)
            lay = state["layout"]
            if lay is not None:
                eye = torch.eye(lay.cols, dtype=p.dtype, device=p.device)
                state["M"] = eye * math.sqrt(self.init_scale)
            state["steps"] = 0
        lay: Layout | None = state["layout"]
        lr = group["lr"]
        if lay is not None and "prev" in state:
            h = hypergradient(lay.to_block(g), state["prev"], state["M"], lr)
            state["hypergradient"] = h
            state["M"].sub_(h, alpha=group["meta_lr"] * self.sign)
        u = self._direction(state, g, group)
        if lay is None:
            p.add_(u, alpha=-lr)
        else:
            ub = lay.to_block(u)
            m = state["M"]
            p.add_(lay.from_block((ub @ m) @ m.t()), alpha=-lr)
            state["prev"] = ub.clone()  # u may alias p.grad or the momentum buffer
        state["steps"] += 1

    def _step_scalar(self, grads: list[tuple[dict[str, Any], torch.nn.Parameter,
                                              torch.Tensor]]) -> None:
        group = self.param_groups[0]
        lr, st = group["lr"], self.scalar_state
        flat = torch.cat([g.reshape(-1) for _, _, g in grads])
        if "prev" in st:
            hyper = -lr * float(torch.dot(flat, st["prev"]))  # dJ/dc
            st["hypergradient"] = hyper
            st["c"] = st["c"] - group["meta_lr"] * self.sign * hyper
        dirs = [self._direction(self.state[p], g, group) for _, p, g in grads]
        step = lr * st["c"]
        for (_, p, _), u in zip(grads, dirs, strict=True):
            p.add_(u, alpha=-step)
        st["prev"] = torch.cat([u.reshape(-1) for u in dirs])
        st["steps"] = st.get("steps", 0) + 1

    # -- inspection --------------------------------------------------------------------
    def preconditioners(self) -> dict[str, torch.Tensor]:
        """Name (or index) -> the current ``P = M M^T`` of every preconditioned block."""
        out: dict[str, torch.Tensor] = {}
        if self.structure == "scalar":
            p0 = self.param_groups[0]["params"][0]
            out["global (c I)"] = torch.tensor([[self.scalar_state["c"]]], dtype=p0.dtype)
            return out
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state.get(p, {})
                if st.get("layout") is not None:
                    m = st["M"]
                    out[self.param_names.get(id(p), f"param{i}")] = (m @ m.t()).detach()
                i += 1
        return out


def effective_lr(optimizer: torch.optim.Optimizer) -> float:
    """The first group's learning rate (times ``c`` for FOP's scalar structure)."""
    lr = float(optimizer.param_groups[0]["lr"])
    if isinstance(optimizer, FOP) and optimizer.structure == "scalar":
        lr *= optimizer.scalar_state["c"]
    return lr


def spectra(optimizer: torch.optim.Optimizer) -> dict[str, list[float]]:
    """Eigenvalues (ascending) of each learned preconditioner; {} for other optimizers."""
    if not isinstance(optimizer, FOP):
        return {}
    return {name: torch.linalg.eigvalsh(p.double()).tolist()
            for name, p in optimizer.preconditioners().items()}
