"""The physical systems of Greydanus, Dzamba & Yosinski, "Hamiltonian Neural Networks"
(NeurIPS 2019, arXiv 1906.01563), as the official code (greydanus/hamiltonian-nn,
``experiment-spring/``, ``experiment-pend/``, ``experiment-2body/``) defines them.

Each system gives its true Hamiltonian, its true time derivative (Hamilton's equations,
``dq/dt = dH/dp``, ``dp/dt = -dH/dq``), the energy the paper's evaluation measures, and a
sampler of the held-out initial states the evaluation rolls out from.

Coordinates are canonical: the first half of a state is ``q``, the second half ``p``.
For two bodies (unit masses, G = 1, momentum = velocity) the order is the official one:
``[x1, x2, y1, y2, px1, px2, py1, py2]``.

Notes against the official code:

- The official derivative uses ``autograd.grad`` of H; here the gradients are written
  out analytically (the same numbers).
- The official pendulum notebook measures "energy" as ``q^2 + p^2`` (it reuses the spring's
  ``energy_loss``), and the paper's Table 1 pendulum numbers come from that;
  :attr:`Pendulum.paper_energy` reproduces it, :meth:`Pendulum.hamiltonian` is the true H.
- The official two-body ``potential_energy`` sums only the last pair (an indentation slip);
  with two bodies there is one pair, so it is the true potential, as here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def split_qp(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    half = x.shape[-1] // 2
    return x[..., :half], x[..., half:]


def symplectic_field(dh_dq: np.ndarray, dh_dp: np.ndarray) -> np.ndarray:
    """Hamilton's equations from the gradient: ``(dH/dp, -dH/dq)``."""
    return np.concatenate([dh_dp, -dh_dq], axis=-1)


@dataclass(frozen=True)
class System:
    """A Hamiltonian system in canonical coordinates (states are ``(..., dim)`` arrays)."""

    name = ""
    dim = 2

    def hamiltonian(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def grad_h(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dH/dq, dH/dp)."""
        raise NotImplementedError

    def field(self, t: float, x: np.ndarray) -> np.ndarray:
        """The true time derivative (works on a single state or a batch)."""
        return symplectic_field(*self.grad_h(np.asarray(x, dtype=np.float64)))

    def paper_energy(self, x: np.ndarray) -> np.ndarray:
        """The quantity whose MSE the paper reports as "energy MSE"."""
        return self.hamiltonian(x)

    def sample_eval_states(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class Spring(System):
    """Ideal mass-spring: ``H = q^2 + p^2`` (the official code's constants)."""

    name = "spring"

    def hamiltonian(self, x: np.ndarray) -> np.ndarray:
        q, p = split_qp(x)
        return (q**2 + p**2).sum(-1)

    def grad_h(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q, p = split_qp(x)
        return 2 * q, 2 * p

    def sample_eval_states(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return eval_states_ring(rng, n)


@dataclass(frozen=True)
class Pendulum(System):
    """Ideal pendulum: ``H = 3 (1 - cos q) + p^2`` (the official code's constants)."""

    name = "pendulum"

    def hamiltonian(self, x: np.ndarray) -> np.ndarray:
        q, p = split_qp(x)
        return (3 * (1 - np.cos(q)) + p**2).sum(-1)

    def grad_h(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q, p = split_qp(x)
        return 3 * np.sin(q), 2 * p

    def paper_energy(self, x: np.ndarray) -> np.ndarray:
        # the official analyze-pend notebook's energy_loss: q^2 + p^2, not the pendulum's H
        return (np.asarray(x) ** 2).sum(-1)

    def sample_eval_states(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return eval_states_ring(rng, n)


def eval_states_ring(rng: np.random.Generator, n: int) -> np.ndarray:
    """The notebooks' held-out starts: each coordinate uniform in (-1, -0.2) U (0.2, 1)."""
    out = []
    for _ in range(n):
        x0 = rng.random(2) * 1.6 - 0.8
        x0 += 0.2 * np.sign(x0)
        out.append(x0)
    return np.stack(out)


@dataclass(frozen=True)
class TwoBody(System):
    """Two unit masses under gravity (G = 1); momentum equals velocity."""

    name = "two-body"
    dim = 8
    orbit_noise: float = 5e-2
    min_radius: float = 0.5
    max_radius: float = 1.5

    @staticmethod
    def _positions(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Body positions ``(..., 2)`` each, from coords ``[x1, x2, y1, y2, ...]``."""
        return np.stack([x[..., 0], x[..., 2]], -1), np.stack([x[..., 1], x[..., 3]], -1)

    def hamiltonian(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        r1, r2 = self._positions(x)
        dist = np.sqrt(((r1 - r2) ** 2).sum(-1))
        kinetic = 0.5 * (x[..., 4:] ** 2).sum(-1)
        return kinetic - 1.0 / dist

    def grad_h(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float64)
        r1, r2 = self._positions(x)
        d = r2 - r1
        dist3 = np.sqrt((d**2).sum(-1, keepdims=True)) ** 3
        acc1 = d / dist3  # acceleration of body 1 (towards body 2); body 2 gets -acc1
        # dH/dq = -acceleration (unit masses); coords order [x1, x2, y1, y2]
        dh_dq = -np.stack([acc1[..., 0], -acc1[..., 0], acc1[..., 1], -acc1[..., 1]], -1)
        return dh_dq, x[..., 4:]

    def random_config(self, rng: np.random.Generator) -> np.ndarray:
        """A near-circular orbit, as the official ``random_config``, in coords."""
        pos = rng.random(2) * (self.max_radius - self.min_radius) + self.min_radius
        r = np.sqrt((pos**2).sum())
        vel = np.flipud(pos) / (2 * r**1.5)
        vel[0] *= -1
        vel = vel * (1 + self.orbit_noise * rng.standard_normal())
        # body 1 at (pos, vel), body 2 mirrored through the origin
        return np.array([pos[0], -pos[0], pos[1], -pos[1], vel[0], -vel[0], vel[1], -vel[1]])

    def sample_eval_states(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.stack([self.random_config(rng) for _ in range(n)])


SYSTEMS: dict[str, type[System]] = {"spring": Spring, "pendulum": Pendulum,
                                    "two-body": TwoBody}


def integrate(fun: object, y0: np.ndarray, t_span: tuple[float, float], t_eval: np.ndarray,
              rtol: float, atol: float = 1e-6) -> np.ndarray:
    """scipy ``solve_ivp`` (RK45, as the official code) -> states ``(len(t_eval), dim)``."""
    from scipy.integrate import solve_ivp  # imported on use: a cached re-run needs none
    sol = solve_ivp(fun=fun, t_span=t_span, y0=y0, t_eval=t_eval, rtol=rtol,  # type: ignore
                    atol=atol)
    if not sol.success or sol.y.shape[1] != len(t_eval):
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return sol.y.T
