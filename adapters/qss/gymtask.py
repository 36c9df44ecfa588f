"""``qss/gym``: a gymnasium environment as a harness dataset, seeded from the context.

The dataset does not hold a live environment (cells may run in other processes); it
holds what makes one reproducible: the environment id, the seeds of the training and
evaluation environments, and a fixed held-out set of transitions for judging learned
dynamics models. All of it is derived from the dataset context, so every agent on the
same spec seed meets the same initial states and the same held-out set (paired
comparisons), while the agents' own randomness comes from their cells' contexts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import Field

from harness import Dataset, HarnessError, Params, RunContext


@dataclass
class GymTask:
    env_id: str
    kwargs: dict[str, Any]
    train_seed: int
    eval_seed: int
    max_episode_steps: int | None
    heldout: dict[str, np.ndarray] = field(default_factory=dict)  # state, action, next_state

    def make(self) -> Any:
        import gymnasium as gym

        extra = {} if self.max_episode_steps is None else {
            "max_episode_steps": self.max_episode_steps}
        return gym.make(self.env_id, disable_env_checker=True, **extra, **self.kwargs)

    def fingerprint(self) -> str:
        from harness.fingerprint import fingerprint

        return fingerprint({"env": self.env_id, "kwargs": self.kwargs,
                            "seeds": [self.train_seed, self.eval_seed],
                            "max_steps": self.max_episode_steps, "heldout": self.heldout})


def box_bounds(env: Any) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(state_dim, action_dim, action low, action high) of a Box-action environment."""
    from gymnasium.spaces import Box

    if not isinstance(env.action_space, Box) or not isinstance(env.observation_space, Box):
        raise HarnessError(f"{env.spec.id if env.spec else env} needs Box observation and "
                           "action spaces (continuous control), as D3G and TD3 do")
    return (int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape)),
            env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64))


def random_transitions(env: Any, n: int, seed: int, rng: np.random.Generator
                       ) -> dict[str, np.ndarray]:
    """``n`` transitions of a uniformly random policy from an environment seeded ``seed``."""
    _, _, low, high = box_bounds(env)
    states: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    next_states: list[np.ndarray] = []
    state, _ = env.reset(seed=seed)
    while len(states) < n:
        action = rng.uniform(low, high)
        nxt, _, terminated, truncated, _ = env.step(action.astype(np.float32))
        states.append(state)
        actions.append(action)
        next_states.append(nxt)
        state = env.reset()[0] if terminated or truncated else nxt
    return {"state": np.asarray(states, np.float32), "action": np.asarray(actions, np.float32),
            "next_state": np.asarray(next_states, np.float32)}


def _seed(ctx: RunContext, label: str) -> int:
    return ctx.derive(label).seed % (2**31)


class GymEnvironment(Dataset):
    """A gymnasium continuous-control environment (default Pendulum-v1), seeded from ctx."""

    name = "qss/gym"
    version = "1"

    class Params(Params):
        env_id: str = Field("Pendulum-v1", description="gymnasium environment id")
        max_episode_steps: int | None = Field(None, ge=1, description="time limit override")
        heldout_transitions: int = Field(2000, ge=0, description="random-policy transitions "
                                         "from a separately seeded environment, for "
                                         "forward-model error")
        kwargs: dict[str, Any] = Field(default_factory=dict, description="gym.make kwargs")

    def load(self, ctx: RunContext) -> GymTask:
        p: GymEnvironment.Params = self.params  # type: ignore[assignment]
        try:
            import gymnasium as gym

            gym.spec(p.env_id)
        except Exception as exc:  # gymnasium raises several kinds here
            raise HarnessError(f"gymnasium has no environment {p.env_id!r} "
                               f"({type(exc).__name__})",
                               hint="e.g. Pendulum-v1, MountainCarContinuous-v0") from None
        task = GymTask(env_id=p.env_id, kwargs=dict(p.kwargs), train_seed=_seed(ctx, "train"),
                       eval_seed=_seed(ctx, "eval"), max_episode_steps=p.max_episode_steps)
        env = task.make()
        box_bounds(env)
        if p.heldout_transitions:
            task.heldout = random_transitions(env, p.heldout_transitions,
                                              _seed(ctx, "heldout"), ctx.derive("heldout").rng)
        env.close()
        return task
