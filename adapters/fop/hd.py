"""SGD-HD: hypergradient descent on the learning rate of SGD (optionally momentum/Nesterov).

Paper: A. G. Baydin, R. Cornish, D. Martinez Rubio, M. Schmidt, F. Wood, "Online Learning
Rate Adaptation with Hypergradient Descent", ICLR 2018 (arXiv:1703.04782). Reference code:
gbaydin/hypergradient-descent, ``hypergrad/sgd_hd.py``. This is an independent
re-implementation of that file's ``SGDHD.step``; per step:

1. ``g`` = all gradients flattened into one vector, weight decay added (``g + wd * theta``);
2. ``h = <g, d_prev>``, where ``d_prev`` is the *previous update direction* (after momentum /
   Nesterov, before the learning rate; zeros on the first step, so the first ``h`` is 0);
3. ``lr <- lr + beta * h`` (a plus: ``dJ(theta_t)/d lr = -<g, d_prev>`` and this descends it),
   *before* the parameter step, which uses the new ``lr``;
4. direction ``d``: SGD ``d = g``; momentum ``b = mu b + (1 - dampening) g`` (``b = g`` on the
   first step, no dampening), ``d = b``, or Nesterov ``d = g + mu b``;
5. ``theta <- theta - lr d`` and ``d_prev <- d``.

One learning rate for all parameters (one parameter group only, as in the original).

Deviations from the official code, none of which changes the update in exact arithmetic:
- the learning rate is kept as a Python float (double precision); the original turns it
  into a 0-dim tensor of the gradients' dtype after the first step (float32 rounding of
  ``lr`` when training in float32);
- weight decay is added to a copy of the gradient; the original adds it to ``p.grad`` in
  place (a side effect on the gradients other code may read after ``step``);
- sparse gradients are refused instead of densified.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class SGDHD(torch.optim.Optimizer):
    """SGD with its (global) learning rate adapted by hypergradient descent."""

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 hypergrad_lr: float = 1e-6) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, hypergrad_lr=hypergrad_lr)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("SGD-HD learns one learning rate: give one parameter group")
        self._params: list[torch.Tensor] = self.param_groups[0]["params"]

    def _flat_grad(self, weight_decay: float) -> torch.Tensor:
        views = []
        for p in self._params:
            if p.grad is None:
                views.append(torch.zeros_like(p).reshape(-1))
                continue
            if p.grad.is_sparse:
                raise RuntimeError("SGD-HD here does not support sparse gradients")
            v = p.grad.detach().reshape(-1)
            if weight_decay != 0:
                v = v.add(p.detach().reshape(-1), alpha=weight_decay)
            views.append(v)
        return torch.cat(views)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        mu, damp = group["momentum"], group["dampening"]
        grad = self._flat_grad(group["weight_decay"])
        state = self.state[self._params[0]]  # global state, kept on the first parameter
        if "grad_prev" not in state:
            state["grad_prev"] = torch.zeros_like(grad)
        h = float(torch.dot(grad, state["grad_prev"]))
        state["hypergradient"] = -h  # dJ/d lr, for inspection
        group["lr"] = group["lr"] + group["hypergrad_lr"] * h
        if mu != 0:
            if "momentum_buffer" not in state:
                buf = state["momentum_buffer"] = grad.clone()
            else:
                buf = state["momentum_buffer"]
                buf.mul_(mu).add_(grad, alpha=1 - damp)
            direction = grad.add(buf, alpha=mu) if group["nesterov"] else buf.clone()
        else:
            direction = grad
        state["grad_prev"] = direction
        offset = 0
        for p in self._params:
            n = p.numel()
            p.add_(direction[offset:offset + n].view_as(p), alpha=-group["lr"])
            offset += n
        return loss
