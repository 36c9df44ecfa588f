"""``qss/gym-observed``: a gymnasium environment that carries state-only observations.

The deep learning-from-observation experiment of Edwards et al. (arXiv:2002.09505;
official ``D3G/learn_from_observation.py``) gives the agent a buffer of a demonstrator's
transitions without their actions, ``(s, r, s', not_done)``, before it interacts. The
official demonstrator is a TD3 policy trained beforehand on MuJoCo's InvertedPendulum-v2
or Reacher-v2 (the repository ships its weights), which takes a uniformly random action
with probability ``--randomness``; it runs for 1e6 steps.

Here the environment is Pendulum-v1 (no MuJoCo) and the demonstrator is a *scripted*
controller, not a trained TD3 policy: an energy-shaping swing-up (torque
``clip(k (E* - E) thetadot, +-max)`` with ``E = thetadot^2 / 2 + (3 g / 2 l) cos theta``
the pendulum's energy per unit inertia and ``E*`` its value at rest upright) and a PD
controller once ``cos theta > 0.85``, which takes a uniformly random action with
probability ``observer_randomness`` (the official ``--randomness``). Why scripted: it costs
nothing to produce (a TD3 demonstrator would need minutes of training per dataset seed
before any cell runs), it is deterministic given the seed, and its quality is set by one
knob. Without noise it scores about -120 per episode (near the optimum, about -150 for a
trained TD3); with randomness 0.5, about -450: a sub-optimal demonstrator. The second
observer is the uniformly random policy (the official ``--randomness 1``). Both observers'
transitions are drawn from their own environments, seeded from the dataset context, and
every cell on a spec seed sees the same observations; the demonstrator's mean episode
return is kept for the docs (``observer_returns``).

Observations hold no actions: the agents get ``state``, ``next_state``, ``reward`` and
``not_done`` (gymnasium's ``terminated``; time limits bootstrap) only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field

from harness import HarnessError, RunContext

from .gymtask import GymEnvironment, GymTask, _seed, box_bounds

OBSERVERS = ("demonstrator", "random")


@dataclass
class ObservedGymTask(GymTask):
    """A :class:`GymTask` plus state-only observations per observer."""

    observations: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    observer_returns: dict[str, float] = field(default_factory=dict)

    def fingerprint(self) -> str:
        from harness.fingerprint import fingerprint

        return fingerprint({"task": super().fingerprint(), "obs": self.observations})


def swing_up_action(obs: np.ndarray, max_action: float = 2.0, gain: float = 1.0) -> float:
    """Energy-shaping swing-up with a PD catch near the top, for Pendulum-v1's
    ``[cos theta, sin theta, thetadot]`` (theta = 0 upright; thetaddot = 15 sin theta + 3u)."""
    c, s, w = (float(x) for x in obs[:3])
    if c > 0.85:
        u = -(10.0 * np.arctan2(s, c) + 2.0 * w)
    else:
        energy = 0.5 * w * w + 15.0 * c
        u = gain * (15.0 - energy) * w if abs(w) > 1e-3 else max_action / 2
    return float(np.clip(u, -max_action, max_action))


def observe(env: Any, observer: str, steps: int, randomness: float, seed: int,
            rng: np.random.Generator) -> tuple[dict[str, np.ndarray], float]:
    """``steps`` state-only transitions of ``observer`` and its mean finished-episode return."""
    _, _, low, high = box_bounds(env)
    cols: dict[str, list[Any]] = {"state": [], "next_state": [], "reward": [], "not_done": []}
    returns: list[float] = []
    state, _ = env.reset(seed=seed)
    ret = 0.0
    for _ in range(steps):
        if observer == "random" or rng.uniform() < randomness:
            action = rng.uniform(low, high)
        else:
            action = np.full(low.shape, swing_up_action(state, float(high[0])))
        nxt, reward, terminated, truncated, _ = env.step(action.astype(np.float32))
        cols["state"].append(state)
        cols["next_state"].append(nxt)
        cols["reward"].append([float(reward)])
        cols["not_done"].append([0.0 if terminated else 1.0])
        ret += float(reward)
        if terminated or truncated:
            returns.append(ret)
            ret, state = 0.0, env.reset()[0]
        else:
            state = nxt
    data = {k: np.asarray(v, np.float32) for k, v in cols.items()}
    return data, float(np.mean(returns)) if returns else float("nan")


class ObservedGymEnvironment(GymEnvironment):
    """``qss/gym`` plus state-only observations of a demonstrator and of a random policy."""

    name = "qss/gym-observed"
    version = "1"

    class Params(GymEnvironment.Params):
        env_id: Literal["Pendulum-v1"] = Field(
            "Pendulum-v1", description="the scripted demonstrator is Pendulum's")
        observer_steps: int = Field(20_000, ge=1, description="transitions per observer "
                                    "(official 1e6)")
        observer_randomness: float = Field(0.5, ge=0, le=1, description="probability that "
                                           "the demonstrator acts uniformly at random "
                                           "(official --randomness)")

    def load(self, ctx: RunContext) -> ObservedGymTask:
        p: ObservedGymEnvironment.Params = self.params  # type: ignore[assignment]
        base = super().load(ctx)
        task = ObservedGymTask(**vars(base))
        env = task.make()
        for observer in OBSERVERS:
            label = f"observer-{observer}"
            data, ret = observe(env, observer, p.observer_steps, p.observer_randomness,
                                _seed(ctx, label), ctx.derive(label).rng)
            task.observations[observer] = data
            task.observer_returns[observer] = ret
        env.close()
        return task


def observed_task(data: Any, who: str) -> ObservedGymTask:
    if not isinstance(data, ObservedGymTask):
        raise HarnessError(f"{who} learns from state-only observations and runs on a "
                           "qss/gym-observed environment",
                           hint="use a dataset {use: qss/gym-observed, env_id: Pendulum-v1}")
    return data
