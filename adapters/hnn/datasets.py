"""Datasets of Greydanus, Dzamba & Yosinski, "Hamiltonian Neural Networks" (arXiv
1906.01563), generated in code as the official data scripts do (greydanus/hamiltonian-nn,
``experiment-spring/data.py``, ``experiment-pend/data.py``, ``experiment-2body/data.py``).

Spring and pendulum (``get_dataset``/``get_trajectory``): each trajectory starts at a
uniform direction in ``[-1, 1]^2`` scaled to a random radius (spring ``[0.1, 1.0)``,
pendulum ``[1.3, 2.3)``), is integrated by ``solve_ivp`` (RK45, ``rtol=1e-10``) over
``t_span = [0, 3]`` at ``int(timescale * 3)`` evenly spaced times (timescale 10 for the
spring, 15 for the pendulum). The targets are the true time derivatives at the *clean*
states; Gaussian noise (std 0.1) is then added to the observed ``q`` and ``p`` only.
50 trajectories; the first half of the concatenated points is the training set and the
second half the test set (whole trajectories, 25 and 25).

Two bodies (``sample_orbits``/``make_orbits_dataset``): 1,000 near-circular orbits from
``random_config`` (radius in ``[0.5, 1.5)``, velocity noise 5%), integrated over
``[0, 20]`` at 50 times with ``rtol=1e-9``; targets are the true derivatives; no noise.
The *first* 20% of the points is the test set.

Deviations: randomness comes from the run context's numpy Generator (the official code
seeds NumPy's global generator with a fixed seed 0), so the draws differ while their
distributions and order are the official ones. The held-out initial states of the
evaluation rollouts (see ``rollout.py``) are drawn here, from an independent stream, so
that every model on the same dataset and seed is rolled out from the same states.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pydantic import Field

from harness import Dataset, Params, RunContext

from .systems import Pendulum, Spring, System, TwoBody, integrate


@dataclass
class DynamicsData:
    """Observed states and their time derivatives (train/test), plus the evaluation setup.

    ``protocol`` holds the paper's rollout evaluation for this task: ``t_span``,
    ``points`` (evenly spaced evaluation times), ``rtol``, ``atol`` and ``time_rescale``
    (model time is stretched by this factor, as the official spring notebook does to
    compensate the slow-down that input noise teaches).
    """

    x_train: torch.Tensor
    dx_train: torch.Tensor
    x_test: torch.Tensor
    dx_test: torch.Tensor
    system: System
    eval_states: np.ndarray
    protocol: dict[str, Any]
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.x_train.shape[1])


class _PhaseParams(Params):
    trajectories: int = Field(50, ge=2, description="trajectories (official `samples`)")
    t_span: tuple[float, float] = Field((0.0, 3.0), description="time span of a trajectory")
    noise_std: float = Field(0.1, ge=0, description="Gaussian noise on observed q and p")
    train_fraction: float = Field(0.5, gt=0, lt=1,
                                  description="leading share of points used for training "
                                  "(official `test_split`, which is the split index)")
    eval_rollouts: int = Field(15, ge=1, description="held-out initial states rolled out")
    eval_t_span: tuple[float, float] = Field((0.0, 20.0), description="rollout time span")
    eval_points: int = Field(100, ge=2, description="evaluation times along a rollout")


def _to_data(x: np.ndarray, dx: np.ndarray, split: int, test_first: bool, system: System,
             eval_states: np.ndarray, protocol: dict[str, Any], name: str,
             meta: dict[str, Any]) -> DynamicsData:
    t = torch.tensor(x, dtype=torch.float32)
    dt = torch.tensor(dx, dtype=torch.float32)
    if test_first:
        tr, te = slice(split, None), slice(None, split)
    else:
        tr, te = slice(None, split), slice(split, None)
    return DynamicsData(t[tr].clone(), dt[tr].clone(), t[te].clone(), dt[te].clone(), system,
                        eval_states, protocol, name, meta)


class _PhaseDataset(Dataset):
    system: System = Spring()

    def trajectory(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One noisy trajectory: observed states ``(n, 2)`` and clean derivatives."""
        p: Any = self.params
        t0, t1 = p.t_span
        t_eval = np.linspace(t0, t1, int(p.timescale * (t1 - t0)))
        y0 = rng.random(2) * 2 - 1
        r_lo, r_hi = p.radius_min, p.radius_max
        radius = rng.random() * (r_hi - r_lo) + r_lo
        y0 = y0 / np.sqrt((y0**2).sum()) * radius
        states = integrate(self.system.field, y0, (t0, t1), t_eval, rtol=1e-10)
        dstates = self.system.field(0.0, states)
        q = states[:, 0] + rng.standard_normal(len(t_eval)) * p.noise_std
        pp = states[:, 1] + rng.standard_normal(len(t_eval)) * p.noise_std
        return np.stack([q, pp], 1), dstates

    def load(self, ctx: RunContext) -> DynamicsData:
        p: Any = self.params
        rng = ctx.rng
        xs, dxs = zip(*(self.trajectory(rng) for _ in range(p.trajectories)), strict=True)
        x, dx = np.concatenate(xs), np.concatenate(dxs)
        split = int(len(x) * p.train_fraction)
        eval_states = self.system.sample_eval_states(ctx.derive("eval-states").rng,
                                                     p.eval_rollouts)
        protocol = {"t_span": list(p.eval_t_span), "points": p.eval_points, "rtol": 1e-12,
                    "atol": 1e-6, "time_rescale": self.time_rescale()}
        meta = {"points_per_trajectory": len(xs[0]), "n_train": split,
                "n_test": len(x) - split}
        return _to_data(x, dx, split, False, self.system, eval_states, protocol,
                        self.system.name, meta)

    def time_rescale(self) -> float:
        return 1.0


class SpringData(_PhaseDataset):
    """Ideal mass-spring (H = q^2 + p^2): noisy trajectories and true derivatives."""

    name = "hnn/spring"
    system = Spring()

    class Params(_PhaseParams):
        timescale: float = Field(10, gt=0, description="observations per unit time")
        radius_min: float = Field(0.1, gt=0)
        radius_max: float = Field(1.0, gt=0)
        rescale_time: bool = Field(True, description="stretch model time by 1 + 0.9 noise_std "
                                   "in the rollouts, as the official spring notebook does")

    def time_rescale(self) -> float:
        p: SpringData.Params = self.params  # type: ignore[assignment]
        return 1 + 0.9 * p.noise_std if p.rescale_time else 1.0


class PendulumData(_PhaseDataset):
    """Ideal pendulum (H = 3(1 - cos q) + p^2): noisy trajectories and true derivatives."""

    name = "hnn/pendulum"
    system = Pendulum()

    class Params(_PhaseParams):
        timescale: float = Field(15, gt=0, description="observations per unit time")
        radius_min: float = Field(1.3, gt=0)
        radius_max: float = Field(2.3, gt=0)


class TwoBodyData(Dataset):
    """Two-body gravitational orbits (near-circular), states and true derivatives."""

    name = "hnn/two-body"

    class Params(Params):
        trials: int = Field(1000, ge=2, description="orbits")
        timesteps: int = Field(50, ge=2, description="points per orbit")
        t_span: tuple[float, float] = (0.0, 20.0)
        orbit_noise: float = Field(5e-2, ge=0)
        min_radius: float = Field(0.5, gt=0)
        max_radius: float = Field(1.5, gt=0)
        test_fraction: float = Field(0.2, gt=0, lt=1, description="leading share held out")
        eval_rollouts: int = Field(15, ge=1)
        eval_t_span: tuple[float, float] = (0.0, 25.0)
        eval_points: int = Field(500, ge=2)

    def load(self, ctx: RunContext) -> DynamicsData:
        p: TwoBodyData.Params = self.params  # type: ignore[assignment]
        system = TwoBody(p.orbit_noise, p.min_radius, p.max_radius)
        rng = ctx.rng
        t_eval = np.linspace(p.t_span[0], p.t_span[1], p.timesteps)
        xs, dxs = [], []
        for _ in range(p.trials):
            orbit = integrate(system.field, system.random_config(rng), p.t_span, t_eval,
                              rtol=1e-9)
            xs.append(orbit)
            dxs.append(system.field(0.0, orbit))
        x, dx = np.concatenate(xs), np.concatenate(dxs)
        split = int(len(x) * p.test_fraction)
        eval_states = system.sample_eval_states(ctx.derive("eval-states").rng, p.eval_rollouts)
        protocol = {"t_span": list(p.eval_t_span), "points": p.eval_points, "rtol": 1e-9,
                    "atol": 1e-6, "time_rescale": 1.0}
        meta = {"n_train": len(x) - split, "n_test": split}
        return _to_data(x, dx, split, True, system, eval_states, protocol, system.name, meta)


DATASETS: list[type[Dataset]] = [SpringData, PendulumData, TwoBodyData]
