"""``hnn/pixel-pendulum``: pixel observations of a pendulum, after the official
``experiment-pixels/data.py`` of Greydanus, Dzamba & Yosinski, "Hamiltonian Neural
Networks" (arXiv 1906.01563; greydanus/hamiltonian-nn).

Official recipe (``sample_gym`` / ``make_gym_dataset``): OpenAI Gym's ``Pendulum-v0`` with
zero torque; each of ``trials`` (200) episodes is reset until the angle from the hanging
position lies in ``(0, pi/6)`` in absolute value (the gym reset draws the angle uniformly
in ``[-pi, pi]`` and the angular velocity uniformly in ``[-1, 1]``), then runs
``timesteps`` (103) steps; each step's frame is rendered *before* the step, cropped,
reduced to red minus green (the rod is red, background, axle and arrow are grey levels)
and resized to ``side x side`` (28 x 28) in ``[0, 1]``. An observation is a *pair* of
adjacent frames (so that it carries velocity), ``x_t = (f_t, f_{t+1})`` (``2 * 784`` values);
its target is the next pair ``x_{t+1}``; after the official offsets each episode gives 100
pairs; the *first* 20% of the pairs (whole episodes) is the test set.

What differs here, and why:

- Physics: gym's zero-torque update, written in numpy (``gym_step``: semi-implicit Euler,
  ``dt = 0.05``, ``g = 10``, ``m = l = 1``, speed clipped to 8); a test checks it against
  gymnasium's ``PendulumEnv`` bit for bit. The start is drawn directly from the
  distribution the official rejection loop produces (angle uniform in ``(-pi/6, pi/6)``
  from hanging, velocity uniform in ``[-1, 1]``), from the run context's generator.
- Renderer: gym renders with OpenGL (pyglet) and needs a display; gymnasium's renderer
  needs pygame, which is not installed here. ``render_frames`` draws in numpy what the
  official pipeline keeps of gym's picture: the rod, a capsule of length 1 and radius 0.1
  (gym's ``make_capsule(1, .2)``), of intensity ``(204 - 77) / 255`` (gym's rod colour
  ``(.8, .3, .3)``, red minus green), the black axle (radius 0.05, intensity 0) at the
  pivot, on a background of 0; anti-aliased by 4 x 4 supersampling (the official
  pipeline resizes with ``scipy.misc.imresize``). The geometry is the official crop's:
  the pivot 4.9 pixels below the top, centred, the rod 18.7 pixels long (gym's 500-pixel
  window at 2x, 4.4 world units wide, cropped to rows 440..780 and columns 330..670,
  resized to 28). The action arrow gym draws at the pivot is grey, which red minus green
  removes; it is not drawn.
- The official code keeps ``coords`` one step out of line with the pixels (it records the
  state after each step); here the true state of each pair's first frame is kept, for the
  evaluation only (training never sees it).
- Frames are stored per episode (``(episodes, steps, side * side)``) and pairs are built
  by indexing, instead of materializing the pair arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pydantic import Field

from harness import Dataset, Params, RunContext

DT = 0.05  # gym Pendulum: seconds per step
GRAVITY = 10.0
MAX_SPEED = 8.0
ROD_INTENSITY = (204 - 77) / 255  # gym's rod colour (.8, .3, .3): red minus green
OMEGA0_SQ = 3 * GRAVITY / 2  # angular acceleration -omega0^2 sin(phi) of gym's pendulum


def gym_step(th: np.ndarray, thdot: np.ndarray, u: float = 0.0
             ) -> tuple[np.ndarray, np.ndarray]:
    """One step of gym's pendulum (angle ``th`` from upright, as gym): semi-implicit Euler."""
    newthdot = thdot + (3 * GRAVITY / 2 * np.sin(th) + 3.0 * u) * DT
    newthdot = np.clip(newthdot, -MAX_SPEED, MAX_SPEED)
    return th + newthdot * DT, newthdot


def pendulum_energy(phi: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """Energy per unit inertia of gym's pendulum: ``omega^2 / 2 + 15 (1 - cos phi)``."""
    return 0.5 * omega**2 + OMEGA0_SQ * (1 - np.cos(phi))


def simulate(phi0: np.ndarray, omega0: np.ndarray, steps: int) -> np.ndarray:
    """States ``(episodes, steps, 2)``: angle from hanging and angular velocity, zero torque."""
    th, thdot = np.asarray(phi0, dtype=np.float64) + np.pi, np.asarray(omega0, np.float64)
    out = np.empty((len(th), steps, 2))
    for t in range(steps):
        out[:, t, 0] = np.mod(th, 2 * np.pi) - np.pi  # angle from hanging, in [-pi, pi)
        out[:, t, 1] = thdot
        th, thdot = gym_step(th, thdot)
    return out


@dataclass(frozen=True)
class Geometry:
    """Where the official crop puts the pendulum in a ``side x side`` frame (pixels)."""

    side: int = 28
    supersample: int = 4

    @property
    def scale(self) -> float:  # pixels per world unit: 227.3 in the 1000-px window, cropped
        return 1000 / 4.4 * self.side / 340

    @property
    def pivot(self) -> tuple[float, float]:  # (row, col)
        return 60 * self.side / 340, 170 * self.side / 340


def render_frames(phi: np.ndarray, geom: Geometry = Geometry()) -> np.ndarray:
    """Frames ``(n, side * side)`` of the pendulum at angles ``phi`` (0 = hanging)."""
    s, k = geom.side, geom.supersample
    sub = (np.arange(s * k) + 0.5) / k  # subpixel centres, pixel units
    rows, cols = np.meshgrid(sub, sub, indexing="ij")
    r0, c0 = geom.pivot
    length, radius, axle = geom.scale * 1.0, geom.scale * 0.1, geom.scale * 0.05
    dr, dc = (rows - r0).reshape(-1), (cols - c0).reshape(-1)
    pivot_d2 = dr**2 + dc**2
    phi = np.asarray(phi, dtype=np.float64).reshape(-1)
    out = np.empty((len(phi), s * s), dtype=np.float32)
    for start in range(0, len(phi), 256):
        a = phi[start:start + 256, None]
        ur, uc = np.cos(a), np.sin(a)  # rod direction (down, right)
        along = np.clip(dr[None] * ur + dc[None] * uc, 0.0, length)
        d2 = (dr[None] - along * ur) ** 2 + (dc[None] - along * uc) ** 2
        img = np.where(d2 <= radius**2, ROD_INTENSITY, 0.0)
        img = np.where(pivot_d2[None] <= axle**2, 0.0, img)
        img = img.reshape(-1, s, k, s, k).mean((2, 4))
        out[start:start + 256] = img.reshape(-1, s * s)
    return out


def read_angle(frames: np.ndarray, geom: Geometry = Geometry()) -> np.ndarray:
    """The angle from hanging that frames show: the direction of the intensity-weighted
    centroid seen from the pivot (negative intensities are ignored)."""
    s = geom.side
    img = np.clip(np.asarray(frames, dtype=np.float64).reshape(-1, s, s), 0, None)
    r0, c0 = geom.pivot
    rr, cc = np.meshgrid(np.arange(s) + 0.5 - r0, np.arange(s) + 0.5 - c0, indexing="ij")
    mass = img.sum((1, 2)) + 1e-12
    return np.arctan2((img * cc).sum((1, 2)) / mass, (img * rr).sum((1, 2)) / mass)


@dataclass
class PixelData:
    """Frames per episode; pairs ``(f_t, f_{t+1})`` and their successors, by index."""

    frames: torch.Tensor  # (episodes, steps, side*side)
    states: np.ndarray  # (episodes, steps, 2): true (phi, omega) of each frame
    test_episodes: int
    eval_frames: torch.Tensor  # held-out rollouts' frames (k, eval_steps, side*side)
    eval_states: np.ndarray
    geometry: Geometry
    name: str = "pixel-pendulum"
    meta: dict[str, Any] = field(default_factory=dict)

    def pair_index(self, test: bool) -> torch.Tensor:
        """(episode, t) of every pair, as the official offsets keep them (t = 1..steps-3)."""
        n_ep, steps = self.frames.shape[:2]
        eps = range(self.test_episodes) if test else range(self.test_episodes, n_ep)
        return torch.tensor([(e, t) for e in eps for t in range(1, steps - 2)])

    def pairs(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e, t = index[:, 0], index[:, 1]
        f = self.frames
        x = torch.cat([f[e, t], f[e, t + 1]], 1)
        return x, torch.cat([f[e, t + 1], f[e, t + 2]], 1)


class PixelPendulum(Dataset):
    """Pixel observations of gym's pendulum: pairs of 28 x 28 frames (numpy renderer)."""

    name = "hnn/pixel-pendulum"

    class Params(Params):
        trials: int = Field(200, ge=2, description="episodes (official `trials`)")
        timesteps: int = Field(103, ge=5, description="frames per episode (official)")
        side: int = Field(28, ge=8, description="frame side in pixels (official `side`)")
        max_angle: float = Field(np.pi / 6, gt=0, description="largest start angle from "
                                 "hanging (official `max_angle`)")
        test_split: float = Field(0.2, gt=0, lt=1, description="leading share of the "
                                  "episodes held out (official `test_split`)")
        eval_rollouts: int = Field(5, ge=1, description="held-out episodes rolled out")
        eval_steps: int = Field(200, ge=3, description="frames of each evaluation episode")

    def load(self, ctx: RunContext) -> PixelData:
        p: PixelPendulum.Params = self.params  # type: ignore[assignment]
        geom = Geometry(p.side)

        def episodes(rng: np.random.Generator, n: int, steps: int) -> np.ndarray:
            phi0 = (rng.random(n) * 2 - 1) * p.max_angle
            omega0 = rng.random(n) * 2 - 1
            return simulate(phi0, omega0, steps)

        states = episodes(ctx.rng, p.trials, p.timesteps)
        frames = render_frames(states[..., 0].reshape(-1), geom)
        ev = episodes(ctx.derive("eval-states").rng, p.eval_rollouts, p.eval_steps)
        ev_frames = render_frames(ev[..., 0].reshape(-1), geom)
        test_eps = max(1, int(p.trials * p.test_split))
        return PixelData(
            torch.from_numpy(frames).view(p.trials, p.timesteps, -1), states, test_eps,
            torch.from_numpy(ev_frames).view(p.eval_rollouts, p.eval_steps, -1), ev, geom,
            meta={"pairs_per_episode": p.timesteps - 3, "test_episodes": test_eps})
