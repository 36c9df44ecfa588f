"""``hnn/reversibility``: the abstract's "perfectly reversible in time" (Greydanus, Dzamba &
Yosinski, "Hamiltonian Neural Networks", arXiv 1906.01563), measured.

The paper's argument (its "useful properties" section) is Liouville's theorem: the flow of
a Hamiltonian field preserves phase-space volume (the field is divergence-free), so the map
from a state at one time to the state at another is a bijection that loses no information,
and the dynamics can be run backwards. The official code has no experiment for it; this
metric measures it two ways, from the dataset's held-out evaluation starts:

- ``round_trip_error``: integrate the learned field forward over ``[0, T]`` with the
  classical fixed-step RK4 (the official ``utils.rk4`` scheme), then backward (step
  ``-dt``) from the end point, and take the mean over starts of ``|x_back(0) - x(0)|``.
  Any smooth field is invertible in exact arithmetic; what a round trip shows is how much
  the integration error of the forward leg is amplified on the way back, which a
  phase-space-contracting (dissipative) field does and a divergence-free one does not.
- ``volume_change``: mean over starts of ``|log det(dx(T)/dx(0))|`` of the learned flow,
  i.e. ``|integral of div f(x(t)) dt|`` along the forward leg (Liouville: 0 for an HNN, up
  to float32 round-off in the divergence; the trapezoid rule on the RK4 states).

Both are computed on the model's own rollouts (no ground truth is needed). A control with
a plain gradient field (``field_type: conservative``) climbs its learned scalar and
compresses phase space, so both numbers blow up.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from harness import CellResult, Metric, Params, RunContext

from .models import DynamicsModel


def rk4_path(model: DynamicsModel, x0: torch.Tensor, dt: float, steps: int) -> torch.Tensor:
    """States ``(steps + 1, n, dim)`` of the fixed-step RK4 integration (float64 state,
    float32 model)."""
    def f(x: torch.Tensor) -> torch.Tensor:
        return model.time_derivative(x.float(), create_graph=False).double()

    x = x0.double()
    path = [x]
    for _ in range(steps):
        k1 = f(x)
        k2 = f(x + dt / 2 * k1)
        k3 = f(x + dt / 2 * k2)
        k4 = f(x + dt * k3)
        x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        path.append(x)
    return torch.stack(path)


def divergence(model: DynamicsModel, x: torch.Tensor) -> torch.Tensor:
    """``div f`` at each row of ``x`` (the trace of the field's Jacobian, by autograd)."""
    x = x.float().detach().requires_grad_(True)
    with torch.enable_grad():
        field = model.time_derivative(x, create_graph=True)
        total = torch.zeros(x.shape[0])
        for i in range(x.shape[1]):
            (g,) = torch.autograd.grad(field[:, i].sum(), x, retain_graph=True,
                                       allow_unused=True)
            if g is not None:
                total = total + g[:, i]
    return total.detach().double()


def reversibility(model: DynamicsModel, x0: np.ndarray, t_end: float, dt: float
                  ) -> dict[str, float]:
    steps = max(1, round(t_end / dt))
    start = torch.as_tensor(np.asarray(x0, dtype=np.float64))
    forward = rk4_path(model, start, dt, steps)
    back = rk4_path(model, forward[-1], -dt, steps)[-1]
    err = (back - start).norm(dim=1)
    div = divergence(model, forward.reshape(-1, start.shape[1])).reshape(steps + 1, -1)
    log_det = dt * (div[1:] + div[:-1]).sum(0) / 2
    return {"round_trip_error": float(err.mean()), "round_trip_error_max": float(err.max()),
            "volume_change": float(log_det.abs().mean())}


class Reversibility(Metric):
    """Forward-then-backward round trip and phase-space volume change of the learned flow."""

    name = "hnn/reversibility"
    outputs = ("round_trip_error", "round_trip_error_max", "volume_change")

    class Params(Params):
        t_end: float | None = Field(None, gt=0, description="length of each leg; default: "
                                    "the end of the dataset's rollout span")
        dt: float = Field(0.1, gt=0, description="RK4 step (the official utils.rk4 scheme)")

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        from .rollout import _data_model

        p: Reversibility.Params = self.params  # type: ignore[assignment]
        data, model = _data_model(result, self.name)
        t_end = p.t_end if p.t_end is not None else float(data.protocol["t_span"][1])
        model.eval()
        return reversibility(model, data.eval_states, t_end, p.dt)
