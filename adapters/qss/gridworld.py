"""The tabular gridworld of Edwards et al.'s toy problems, as a harness dataset.

``qss/gridworld`` loads a :class:`GridWorld`: an immutable description of the task whose
``step`` is a pure function of (state, action, random generator). The agent passes its
own generator, so all randomness (stochastic actions) comes from the run context.

Dynamics follow ``toy_problems/*/model_gridworld.py`` of uber-research/D3G:

- states are cells ``(row, col)`` of a ``size x size`` grid (the official ``SIZE = 10``
  means coordinates 0..10, i.e. an 11x11 grid: ``size: 11`` here);
- four moves, in the official order UP (row-1), DOWN (row+1), LEFT (col-1), RIGHT (col+1),
  clipped at the walls (bumping into a wall leaves the state unchanged);
- ``actions`` action ids; id ``a`` performs move ``a % 4`` (the official redundant-action
  mapping ``action in range(MOVE, num_actions, 4)``); ``shuffle`` permutes which move each
  id performs (a random permutation drawn from the dataset context; the official shuffled
  experiment uses one fixed permutation, UP=3, DOWN=2, LEFT=1, RIGHT=0, which ``mapping``
  can give explicitly);
- with probability ``stochasticity`` the executed action id is replaced by a uniformly
  random one (official ``stochastic_actions``);
- reaching ``goal`` gives ``terminal_reward`` and ends the episode, every other step gives
  ``step_reward``; an episode is cut after ``max_steps`` steps (a time limit, not a
  terminal: agents keep bootstrapping, as the official code does).

``observer`` adds *state-only observations* to the task (learning from observation, the
setting of ``D3G/learn_from_observation.py``): ``observer_episodes`` episodes of a
uniformly random policy (``random``) or of a shortest-path policy that takes a uniformly
random action id with probability ``observer_randomness`` (``noisy-expert``, the official
``--randomness``), recorded as (s, r, s', terminal) without the actions. They are drawn
from the dataset context, so every agent on a spec seed sees the same observations.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from harness import Dataset, HarnessError, Params, RunContext

MOVES = ("up", "down", "left", "right")
_DELTAS = ((-1, 0), (1, 0), (0, -1), (0, 1))


@dataclass(frozen=True)
class GridWorld:
    """An immutable gridworld task; states are ints ``row * size + col``."""

    size: int
    start: int
    goal: int
    step_reward: float
    terminal_reward: float
    max_steps: int
    move_of_action: tuple[int, ...]  # action id -> move index (0..3)
    stochasticity: float = 0.0
    name: str = "gridworld"
    observations: Observations | None = field(default=None, compare=False, repr=False)

    # -- structure -------------------------------------------------------------------
    @property
    def n_states(self) -> int:
        return self.size * self.size

    @property
    def n_actions(self) -> int:
        return len(self.move_of_action)

    def coords(self, s: int) -> tuple[int, int]:
        return divmod(s, self.size)

    def move(self, s: int, m: int) -> int:
        """The state that move ``m`` leads to from ``s`` (clipped at the walls)."""
        r, c = divmod(s, self.size)
        dr, dc = _DELTAS[m]
        r = min(max(r + dr, 0), self.size - 1)
        c = min(max(c + dc, 0), self.size - 1)
        return r * self.size + c

    def neighbors(self, s: int) -> tuple[int, ...]:
        """N(s): the states the four moves lead to, in move order (duplicates at walls)."""
        return tuple(self.move(s, m) for m in range(4))

    def neighbor_table(self) -> list[tuple[int, ...]]:
        return [self.neighbors(s) for s in range(self.n_states)]

    def optimal_return(self) -> float:
        """Undiscounted return of a shortest path from start to goal."""
        (r0, c0), (r1, c1) = self.coords(self.start), self.coords(self.goal)
        d = abs(r1 - r0) + abs(c1 - c0)
        if d == 0:
            return 0.0
        return (d - 1) * self.step_reward + self.terminal_reward

    # -- dynamics --------------------------------------------------------------------
    def step(self, s: int, a: int, rng: np.random.Generator) -> tuple[int, float, bool]:
        """(next state, reward, terminal) for action id ``a`` in state ``s``."""
        if not 0 <= a < self.n_actions:
            raise ValueError(f"action {a} outside 0..{self.n_actions - 1}")
        if self.stochasticity > 0 and rng.random() < self.stochasticity:
            a = int(rng.integers(self.n_actions))
        s2 = self.move(s, self.move_of_action[a])
        if s2 == self.goal:
            return s2, self.terminal_reward, True
        return s2, self.step_reward, False

    def actions_between(self, s: int, s2: int) -> list[int]:
        """The true inverse dynamics: the lowest action id of every move from s to s2."""
        found: list[int] = []
        for m in range(4):
            if self.move(s, m) == s2 and m in self.move_of_action:
                found.append(self.move_of_action.index(m))
        return found

    def optimal_moves(self, s: int) -> list[int]:
        """The moves that bring ``s`` one step closer to the goal (Manhattan distance)."""
        (r1, c1) = self.coords(self.goal)

        def dist(x: int) -> int:
            r, c = self.coords(x)
            return abs(r1 - r) + abs(c1 - c)

        return [m for m in range(4) if dist(self.move(s, m)) < dist(s)]

    def fingerprint(self) -> str:
        obs = "" if self.observations is None else self.observations.fingerprint()
        return repr(self) + obs


@dataclass(frozen=True)
class Observations:
    """State-only transitions of an observed policy: no action is stored."""

    policy: str
    state: np.ndarray  # int64
    reward: np.ndarray  # float64
    next_state: np.ndarray  # int64
    terminal: np.ndarray  # bool
    episode_returns: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.state)

    def fingerprint(self) -> str:
        from harness.fingerprint import fingerprint

        return fingerprint({"policy": self.policy, "s": self.state.tolist(),
                            "r": self.reward.tolist(), "s2": self.next_state.tolist(),
                            "t": self.terminal.tolist()})


def observe(env: GridWorld, policy: str, randomness: float, episodes: int,
            rng: np.random.Generator) -> Observations:
    """Run ``episodes`` episodes of the observed policy and keep only (s, r, s', terminal)."""
    ids_of_move = [[a for a, m in enumerate(env.move_of_action) if m == move]
                   for move in range(4)]
    s_, r_, s2_, t_, returns = [], [], [], [], []
    for _ in range(episodes):
        s, ret = env.start, 0.0
        for _ in range(env.max_steps):
            if policy == "random" or rng.random() < randomness:
                a = int(rng.integers(env.n_actions))
            else:
                moves = env.optimal_moves(s)
                ids = ids_of_move[moves[int(rng.integers(len(moves)))]]
                a = ids[int(rng.integers(len(ids)))]
            s2, r, terminal = env.step(s, a, rng)
            s_.append(s)
            r_.append(r)
            s2_.append(s2)
            t_.append(terminal)
            ret += r
            s = s2
            if terminal:
                break
        returns.append(ret)
    return Observations(policy=policy if policy == "random" else f"{policy}-{randomness}",
                        state=np.asarray(s_, np.int64), reward=np.asarray(r_, np.float64),
                        next_state=np.asarray(s2_, np.int64),
                        terminal=np.asarray(t_, bool), episode_returns=tuple(returns))


class GridWorldDataset(Dataset):
    """Gridworld environment (size, start, goal, rewards, redundant/stochastic/shuffled actions)."""

    name = "qss/gridworld"
    version = "2"

    class Params(Params):
        size: int = Field(11, ge=2, le=64, description="cells per side (official SIZE=10 is 11)")
        start: tuple[int, int] = Field((0, 0), description="start cell (row, col)")
        goal: tuple[int, int] | None = Field(None, description="goal cell; default: far corner")
        step_reward: float = Field(-1.0, description="reward of every non-terminal step")
        terminal_reward: float = Field(1.0, description="reward of the step reaching the goal")
        max_steps: int = Field(500, ge=1, description="time limit of an episode (steps)")
        actions: int = Field(4, ge=4, description="number of action ids (redundant: 40, 400)")
        stochasticity: float = Field(0.0, ge=0, le=1,
                                     description="probability the action is replaced at random")
        shuffle: bool = Field(False, description="random permutation of the action->move map")
        mapping: list[int] | None = Field(None, description="explicit move (0 up, 1 down, "
                                          "2 left, 3 right) of each of the first 4 action ids")
        observer: Literal["none", "random", "noisy-expert"] = Field(
            "none", description="add state-only observations of this policy (learning from "
            "observation): a uniformly random one, or a shortest-path one with random actions")
        observer_randomness: float = Field(0.5, ge=0, le=1, description="noisy-expert: "
                                           "probability of a uniformly random action id")
        observer_episodes: int = Field(400, ge=1, description="observed episodes")

        @model_validator(mode="after")
        def _check(self) -> GridWorldDataset.Params:
            if self.mapping is not None:
                if sorted(self.mapping) != [0, 1, 2, 3]:
                    raise ValueError("mapping must be a permutation of [0, 1, 2, 3]")
                if self.shuffle:
                    raise ValueError("give mapping or shuffle, not both")
            return self

    def load(self, ctx: RunContext) -> GridWorld:
        p: GridWorldDataset.Params = self.params  # type: ignore[assignment]
        goal = p.goal if p.goal is not None else (p.size - 1, p.size - 1)
        for label, cell in (("start", p.start), ("goal", goal)):
            if not all(0 <= v < p.size for v in cell):
                raise HarnessError(f"gridworld {label} {list(cell)} is outside a {p.size}x"
                                   f"{p.size} grid", hint="cells are (row, col), 0-based")
        base = [a % 4 for a in range(p.actions)]
        if p.mapping is not None:
            base = [p.mapping[a % 4] for a in range(p.actions)]
        elif p.shuffle:
            base = [base[i] for i in ctx.rng.permutation(p.actions)]
        env = GridWorld(size=p.size, start=p.start[0] * p.size + p.start[1],
                        goal=goal[0] * p.size + goal[1], step_reward=p.step_reward,
                        terminal_reward=p.terminal_reward, max_steps=p.max_steps,
                        move_of_action=tuple(int(m) for m in base),
                        stochasticity=p.stochasticity,
                        name=f"gridworld{p.size}x{p.size}-a{p.actions}")
        if p.observer == "none":
            return env
        obs = observe(env, p.observer, p.observer_randomness, p.observer_episodes,
                      ctx.derive("observer").rng)
        return replace(env, observations=obs)
