"""Tabular behavioural cloning from observation (BCO), the imitation baseline of the
learning-from-observation experiment of Edwards et al. (arXiv:2002.09505).

Torabi, Warnell & Stone, "Behavioral Cloning from Observation", IJCAI 2018
(arXiv:1805.01954), as the official D3G code runs it (``D3G/bco.py``,
``D3G/learn_from_observation.py``): the agent acts in the environment with its current
policy plus exploration noise, fits an inverse dynamics model ``I(s, s') -> a`` to its own
transitions, labels the observed state-only transitions ``(s, s')`` with ``I`` and fits
the policy to those labels by behavioural cloning; repeat. The counterpart here is QSS
with ``observations: learn``: it learns Q(s,s') from the same state-only observations,
including their rewards, and only the inverse model from its own interaction.

Tabular version (written for this harness; no code copied): the inverse model is a table
holding the first action id seen for each (s, s') of the agent's own interaction; the
cloned policy takes, in each state, the action with the most labelled observations (ties
to the lowest id) and a uniformly random id in a state with none. Labels are kept exact
incrementally: when the inverse table learns a pair, every observation of that pair is
labelled at once, so the policy is re-fitted after every environment step (the official
code alternates 1,000 steps of interaction with 10,000 gradient steps). Exploration is the
shared epsilon-greedy schedule instead of Gaussian action noise (discrete actions).
Cloning imitates the observed policy: it cannot do better than it, which is what makes
the observations of a random policy useless to BCO and useful to QSS.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from harness import HarnessError

from .gridworld import GridWorld
from .tabular import TabularParams, _TabularMethod


class BCOAgent:
    """Inverse table from own interaction + a per-state vote of the labelled observations."""

    def __init__(self, env: GridWorld, p: TabularParams, rng: np.random.Generator) -> None:
        if env.observations is None:
            raise HarnessError("qss/bco needs an environment with state-only observations",
                               hint="give the qss/gridworld dataset observer: random "
                               "(or noisy-expert)")
        self.env, self.p, self.rng = env, p, rng
        obs = env.observations
        self.pair_count = Counter(zip(obs.state.tolist(), obs.next_state.tolist(),
                                      strict=True))
        self.inverse: dict[tuple[int, int], int] = {}
        self.votes: list[dict[int, int]] = [{} for _ in range(env.n_states)]
        self.best: list[int | None] = [None] * env.n_states

    def reset_env(self, env: GridWorld) -> None:
        raise HarnessError("qss/bco does not support pretrain_env (transfer)")

    def greedy(self, s: int) -> tuple[int, bool]:
        best = self.best[s]
        if best is None:
            return int(self.rng.integers(self.env.n_actions)), True
        return best, False

    def update(self, s: int, a: int, r: float, s2: int, terminal: bool) -> None:
        if (s, s2) in self.inverse:
            return
        self.inverse[(s, s2)] = a
        n = self.pair_count.get((s, s2), 0)
        if not n:
            return
        votes = self.votes[s]
        votes[a] = votes.get(a, 0) + n
        best = self.best[s]
        if best is None or votes[a] > votes[best] or (votes[a] == votes[best] and a < best):
            self.best[s] = a


class BCO(_TabularMethod):
    """Behavioural cloning from observation (tabular): inverse model + cloned policy."""

    name = "qss/bco"
    version = "1"
    Params = TabularParams
    agent_cls = BCOAgent
    label = "BCO"

    def make_agent(self, env: GridWorld, p: TabularParams, rng: np.random.Generator) -> Any:
        return BCOAgent(env, p, rng)
