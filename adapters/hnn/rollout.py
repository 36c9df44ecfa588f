"""Metrics of Greydanus, Dzamba & Yosinski, "Hamiltonian Neural Networks" (arXiv
1906.01563), as the official analysis notebooks (``analyze-spring.ipynb``,
``analyze-pend.ipynb``, ``analyze-2body.ipynb``) compute them.

``hnn/derivative-loss``: the L2 loss of the learned field against the true derivatives on
the train and test splits, with its standard error (the official "Final train/test loss").

``hnn/rollout``: from each held-out initial state (15 of them; spring and pendulum: each
coordinate uniform in ``(-1, -0.2) U (0.2, 1)``; two bodies: ``random_config``), integrate
the true field and the learned field with scipy's ``solve_ivp`` (RK45) over the paper's
time span (spring/pendulum ``[0, 20]`` at 100 times, ``rtol=1e-12``; two bodies ``[0, 25]``
at 500 times, ``rtol=1e-9``; ``atol`` is scipy's default 1e-6 as in the notebooks), then

- ``energy_mse``: mean over trajectories and times of ``(E(true) - E(model))^2`` with the
  energy the paper measures (spring ``q^2 + p^2``; pendulum ``q^2 + p^2`` too, as the
  official pendulum notebook and hence Table 1 do; two bodies the total energy);
- ``hamiltonian_mse``: the same with the system's true Hamiltonian (differs for the pendulum);
- ``state_mse``: mean squared distance between the true and the model's states;
- ``energy_drift``: mean ``|H(x_t) - H(x_0)|`` of the true H along the model's own rollout;
- ``learned_h_drift`` (HNN only): mean ``|H_theta(x_t) - H_theta(x_0)|`` of the model's own
  learned Hamiltonian along its own rollout (the conserved quantity; integrator error only).

The spring notebook stretches model time by ``1 + 0.9 * noise_std`` ("to compensate for
noise effects, as described in the appendix"); the dataset's protocol carries that factor.

Deviations: (1) the notebook's time stretch mutates its ``t_span`` list and ``t_eval`` array
in place, so successive spring trajectories were integrated over ever longer spans (up to
about 4x); here every trajectory uses the stated span. (2) By default the learned field is
integrated for all initial states at once (one batched network call per solver stage,
``batched: true``) with the tolerances divided by ``sqrt(#states)``, so that the joint RMS
error control is at least as strict per trajectory; ``batched: false`` integrates each
state separately exactly as the notebooks do (slower, same numbers to ~1e-6).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import Field

from harness import CellResult, HarnessError, Metric, Params, RunContext

from .datasets import DynamicsData
from .models import DynamicsModel
from .systems import integrate
from .train import derivative_loss


def _data_model(result: CellResult, who: str) -> tuple[DynamicsData, DynamicsModel]:
    data, model = result.data, result.outputs.get("model", result.model)
    if not isinstance(data, DynamicsData) or not isinstance(model, DynamicsModel):
        raise HarnessError(f"{who} needs an hnn dataset (hnn/spring, hnn/pendulum, "
                           "hnn/two-body) and an hnn model (hnn/mlp, hnn/hnn)",
                           hint="use it with the hnn adapters only")
    return data, model


class DerivativeLoss(Metric):
    """L2 loss of the learned field vs the true time derivatives (train and test)."""

    name = "hnn/derivative-loss"
    outputs = ("train_loss", "train_loss_se", "test_loss", "test_loss_se")

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        data, model = _data_model(result, self.name)
        train, train_se = derivative_loss(model, data.x_train, data.dx_train)
        test, test_se = derivative_loss(model, data.x_test, data.dx_test)
        return {"train_loss": train, "train_loss_se": train_se,
                "test_loss": test, "test_loss_se": test_se}


def model_field(model: DynamicsModel, dim: int) -> Any:
    """A ``solve_ivp`` right-hand side for the learned field on ``k`` stacked states."""
    def fun(t: float, y: np.ndarray) -> np.ndarray:
        x = torch.tensor(y, dtype=torch.float32).view(-1, dim)
        return model.time_derivative(x, create_graph=False).numpy().reshape(-1).astype(
            np.float64)
    return fun


def rollouts(model: DynamicsModel, data: DynamicsData, t_span: tuple[float, float],
             points: int, rtol: float, atol: float, time_rescale: float = 1.0,
             batched: bool = True) -> dict[str, np.ndarray]:
    """True and learned trajectories ``(n, points, dim)`` from ``data.eval_states``."""
    t_eval = np.linspace(t_span[0], t_span[1], points)
    x0s = np.asarray(data.eval_states, dtype=np.float64)
    n, dim = x0s.shape
    true = np.stack([integrate(data.system.field, x0, t_span, t_eval, rtol, atol)
                     for x0 in x0s])
    m_span = (t_span[0] * time_rescale, t_span[1] * time_rescale)
    m_eval = t_eval * time_rescale
    model.eval()
    fun = model_field(model, dim)
    if batched:
        scale = 1.0 / np.sqrt(n)
        flat = integrate(fun, x0s.reshape(-1), m_span, m_eval, rtol * scale, atol * scale)
        learned = flat.reshape(points, n, dim).transpose(1, 0, 2)
    else:
        learned = np.stack([integrate(fun, x0, m_span, m_eval, rtol, atol) for x0 in x0s])
    return {"t": t_eval, "true": true, "model": learned}


class Rollout(Metric):
    """Energy and state MSE along rollouts of the learned field from held-out states."""

    name = "hnn/rollout"
    outputs = ("energy_mse", "hamiltonian_mse", "state_mse", "energy_drift", "learned_h_drift")

    class Params(Params):
        t_span: tuple[float, float] | None = Field(None, description="default: the dataset's")
        points: int | None = Field(None, ge=2, description="default: the dataset's")
        rtol: float | None = Field(None, gt=0, description="default: the dataset's")
        atol: float | None = Field(None, gt=0, description="default: scipy's 1e-6")
        time_rescale: float | None = Field(None, gt=0, description="default: the dataset's")
        batched: bool = Field(True, description="integrate all states as one system")
        plots: bool = Field(True, description="phase portrait and energy plots as artifacts")
        plot_trajectories: int = Field(3, ge=1)

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        p: Rollout.Params = self.params  # type: ignore[assignment]
        data, model = _data_model(result, self.name)
        proto = dict(data.protocol)
        for key in ("t_span", "points", "rtol", "atol", "time_rescale"):
            if getattr(p, key) is not None:
                proto[key] = getattr(p, key)
        with ctx.progress.task("rollouts", 1) as tick:
            paths = rollouts(model, data, tuple(proto["t_span"]), int(proto["points"]),
                             float(proto["rtol"]), float(proto["atol"]),
                             float(proto["time_rescale"]), p.batched)
            tick(1)
        system = data.system
        true, learned = paths["true"], paths["model"]
        e_true, e_model = system.paper_energy(true), system.paper_energy(learned)
        h_true, h_model = system.hamiltonian(true), system.hamiltonian(learned)
        out = {
            "energy_mse": float(np.mean((e_true - e_model) ** 2)),
            "hamiltonian_mse": float(np.mean((h_true - h_model) ** 2)),
            "state_mse": float(np.mean((true - learned) ** 2)),
            "energy_drift": float(np.mean(np.abs(h_model - h_model[:, :1]))),
        }
        n, steps, dim = learned.shape
        h_theta = model.learned_hamiltonian(torch.tensor(learned.reshape(-1, dim),
                                                         dtype=torch.float32))
        if h_theta is not None:
            h_theta_np = h_theta.numpy().astype(np.float64).reshape(n, steps)
            out["learned_h_drift"] = float(np.mean(np.abs(h_theta_np - h_theta_np[:, :1])))
        if p.plots:
            record = {**paths, "e_true": e_true, "e_model": e_model,
                      "label": ctx.label or "model",
                      "kind": "baseline" if model.baseline else f"hnn:{model.field_type}"}
            from .plots import save_rollout_plots  # matplotlib on use only
            save_rollout_plots(ctx, data, model, record, p.plot_trajectories)
        return out


from .reversibility import Reversibility  # noqa: E402

METRICS: list[type[Metric]] = [DerivativeLoss, Rollout, Reversibility]
