"""Tabular Q(s,a)-learning and Q(s,s')-learning (QSS) agents on :class:`GridWorld`.

Edwards, Sahni, Liu, Hung, Jain, Wang, Ecoffet, Miconi, Isbell & Yosinski, "Estimating
Q(s,s') with Deep Deterministic Dynamics Gradients", ICML 2020, arXiv:2002.09505.
Re-implemented from the description in the paper and ``toy_problems/`` of the official
code (uber-research/D3G); no code was copied.

QSS (``qss/qss``) learns a value over state pairs,
``Q(s,s') <- Q(s,s') + alpha * (r + gamma * max_{s'' in N(s')} Q(s',s'') * (1 - terminal)
- Q(s,s'))``, from observed transitions only (actions are never used by the update). To act
it proposes the best reachable neighbour ``argmax_{s' in N(s)} Q(s,s')`` and asks an inverse
dynamics model ``I(s,s')`` for an action:

- ``inverse: learned`` (default; ``id_gridworld.py`` and the shuffled-action experiment):
  a table of the action ids seen for each observed (s, s'); a random action id when the
  pair was never observed, otherwise a uniform choice among the ids seen;
- ``inverse: known`` (``model_gridworld.py``): the true inverse, a uniform choice among the
  moves that lead from s to s' (bumping into a wall when s' = s).

Q-learning (``qss/q-learning``) is the QSA baseline of ``vanilla_gridworld.py``.

Shared details kept from the official code: values start at 0.001 (optimistic against
the -1 step reward); greedy ties go to the first index (numpy argmax), neighbours in the
order up, down, left, right; epsilon-greedy behaviour whose epsilon falls linearly per
environment step from ``epsilon_start`` to ``epsilon_end`` over ``epsilon_decay_steps``;
the time limit does not stop bootstrapping; the greedy policy is evaluated from the start
state before training (episode 0) and after every training episode.

Deviations: the official hyperparameters (alpha 0.01, epsilon decay over 100,000 steps,
500-step episodes, 50,000 episodes) are defaults here, but the shipped spec uses tuned
ones (see ``specs/qss-tabular.yaml``); evaluation episodes draw environment randomness
from their own stream (``ctx.derive("eval")``) instead of sharing the training generator;
a deterministic greedy evaluation that revisits a state (a loop that can never reach the
goal) is ended early with the exact return it would have collected up to the time limit.
``behavior: random`` trains on transitions of a uniformly random policy that the agent
itself executes (off-policy learning, with actions: not learning from observation).

Learning from observation (``observations: learn``, the setting of the official
``learn_from_observation.py``): before interacting, QSS learns Q(s,s') from the
environment's state-only observations (``qss/gridworld`` with ``observer:``), which carry no
action; its inverse table is filled only by its own interaction afterwards, during which
Q(s,s') stays frozen (``online_values: false``, as the official protocol) or keeps learning.

Ablations (for the specs' controls): ``next_state_choice: random`` replaces the greedy
next-state selection by a uniform choice; ``value_over: action`` puts Q(s,a)-learning in
QSS's place (it cannot use state-only observations); ``transfer_values: false`` discards
the pretrained values at a transfer; ``transfer_inverse: true`` keeps the stale inverse
model at a transfer (a plausible bug). ``qss/q-learning`` with ``action_values:
per-move`` shares one value among the redundant ids of a move (Q-learning given the
redundancy for free).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from harness import Component, HarnessError, Method, Params, RunContext, component_field

from .gridworld import GridWorld, Observations
from .plots import plot_curves


class TabularParams(Params):
    episodes: int = Field(1000, ge=1, description="training episodes")
    alpha: float = Field(0.01, gt=0, le=1, description="learning rate (official 0.01)")
    gamma: float = Field(0.99, ge=0, le=1, description="discount")
    q_init: float = Field(0.001, description="initial value of every entry (official 0.001)")
    epsilon_start: float = Field(1.0, ge=0, le=1)
    epsilon_end: float = Field(0.1, ge=0, le=1)
    epsilon_decay_steps: int = Field(100_000, ge=1,
                                     description="environment steps of the linear decay")
    behavior: Literal["epsilon-greedy", "random"] = Field(
        "epsilon-greedy", description="random: learn from a uniformly random policy's data")
    eval_every: int = Field(1, ge=1, description="evaluate the greedy policy every N episodes")
    eval_episodes: int = Field(1, ge=1, description="greedy episodes averaged per evaluation")
    pretrain_env: Component | None = component_field(
        "dataset", None, "train on this environment first, then transfer (e.g. unshuffled)")
    pretrain_episodes: int = Field(0, ge=0)


class QLearningAgent:
    """Q(s,a) table; greedy = first argmax over action ids.

    The max and first argmax of every row are cached and kept exact under updates (a
    row is rescanned only when its argmax entry decreases), so 400 actions stay cheap.
    """

    def __init__(self, env: GridWorld, p: TabularParams, rng: np.random.Generator) -> None:
        self.env, self.p, self.rng = env, p, rng
        self.per_move = getattr(p, "action_values", "per-id") == "per-move"
        self._index_actions(env)
        n = 4 if self.per_move else env.n_actions
        self.q = [[p.q_init] * n for _ in range(env.n_states)]
        self.vmax = [p.q_init] * env.n_states
        self.amax = [0] * env.n_states

    def _index_actions(self, env: GridWorld) -> None:
        """per-move: one value per move, acted on through the move's lowest action id."""
        if self.per_move:
            self.column = list(env.move_of_action)
            self.action_of = [env.move_of_action.index(m) if m in env.move_of_action else 0
                              for m in range(4)]

    def reset_env(self, env: GridWorld) -> None:
        if env.n_actions != self.env.n_actions or env.n_states != self.env.n_states:
            raise HarnessError("transfer needs environments of the same size and actions")
        self.env = env
        self._index_actions(env)

    def greedy(self, s: int) -> tuple[int, bool]:
        if self.per_move:
            return self.action_of[self.amax[s]], False
        return self.amax[s], False

    def update(self, s: int, a: int, r: float, s2: int, terminal: bool) -> None:
        if self.per_move:
            a = self.column[a]
        row = self.q[s]
        target = r if terminal else r + self.p.gamma * self.vmax[s2]
        value = row[a] + self.p.alpha * (target - row[a])
        row[a] = value
        best = self.vmax[s]
        if value > best or (value == best and a < self.amax[s]):
            self.vmax[s], self.amax[s] = value, a
        elif a == self.amax[s] and value < best:
            best = max(row)
            self.vmax[s], self.amax[s] = best, row.index(best)


class QSSAgent:
    """Q(s,s') table over state pairs plus an inverse-dynamics lookup."""

    def __init__(self, env: GridWorld, p: QSSParams, rng: np.random.Generator) -> None:
        self.env, self.p, self.rng = env, p, rng
        n = env.n_states
        self.q = [[p.q_init] * n for _ in range(n)]
        self.nbrs = env.neighbor_table()
        self.inverse: dict[tuple[int, int], list[int]] = {}
        self.learn_values = True

    def reset_env(self, env: GridWorld) -> None:
        """Transfer: keep Q(s,s'), forget the inverse model (official shuffled setup).

        Ablations: ``transfer_values: false`` forgets Q(s,s') too; ``transfer_inverse:
        true`` keeps the stale inverse model (a plausible bug)."""
        if env.n_states != self.env.n_states:
            raise HarnessError("transfer needs environments of the same size")
        self.env = env
        self.nbrs = env.neighbor_table()
        if not self.p.transfer_inverse:
            self.inverse = {}
        if not self.p.transfer_values:
            n = env.n_states
            self.q = [[self.p.q_init] * n for _ in range(n)]

    def learn_from_observations(self, obs: Observations, sweeps: int) -> int:
        """Q(s,s')-learning on state-only observations (no action, so no inverse model)."""
        rows = list(zip(obs.state.tolist(), obs.reward.tolist(), obs.next_state.tolist(),
                        obs.terminal.tolist(), strict=True))
        for _ in range(sweeps):
            for s, r, s2, terminal in rows:
                self.update_value(s, r, s2, terminal)
        return sweeps * len(rows)

    def propose(self, s: int) -> tuple[int, bool]:
        """The next state to aim for, and whether it was drawn at random."""
        nbrs = self.nbrs[s]
        if self.p.next_state_choice == "random":
            return nbrs[int(self.rng.integers(4))], True
        row = self.q[s]
        values = [row[n] for n in nbrs]
        return nbrs[values.index(max(values))], False

    def act_towards(self, s: int, s2: int) -> tuple[int, bool]:
        if self.p.inverse == "known":
            options = self.env.actions_between(s, s2)
        else:
            options = self.inverse.get((s, s2), [])
        if not options:
            return int(self.rng.integers(self.env.n_actions)), True
        if len(options) == 1:
            return options[0], False
        return options[int(self.rng.integers(len(options)))], True

    def greedy(self, s: int) -> tuple[int, bool]:
        s2, rand1 = self.propose(s)
        a, rand2 = self.act_towards(s, s2)
        return a, rand1 or rand2

    def update_value(self, s: int, r: float, s2: int, terminal: bool) -> None:
        q = self.q[s]
        if terminal:
            target = r
        else:
            row = self.q[s2]
            target = r + self.p.gamma * max(row[n] for n in self.nbrs[s2])
        q[s2] += self.p.alpha * (target - q[s2])

    def update(self, s: int, a: int, r: float, s2: int, terminal: bool) -> None:
        if self.learn_values:
            self.update_value(s, r, s2, terminal)
        seen = self.inverse.setdefault((s, s2), [])
        if a not in seen:
            seen.append(a)


class QLearningParams(TabularParams):
    action_values: Literal["per-id", "per-move"] = Field(
        "per-id", description="per-move: ablation/control that gives Q-learning the "
        "redundancy for free (one value per move, shared by its redundant action ids)")


class QSSParams(TabularParams):
    inverse: Literal["learned", "known"] = Field(
        "learned", description="inverse dynamics: a table learned from observed transitions, "
        "or the true one")
    next_state_choice: Literal["greedy", "random"] = Field(
        "greedy", description="random: ablation that replaces argmax_s' Q(s,s') by chance")
    value_over: Literal["next-state", "action"] = Field(
        "next-state", description="action: ablation, Q(s,a)-learning in QSS's place (the "
        "method without its key idea; it cannot use state-only observations)")
    observations: Literal["ignore", "learn"] = Field(
        "ignore", description="learn: first learn Q(s,s') from the environment's state-only "
        "observations (learning from observation); the inverse model still comes only from "
        "the agent's own interaction")
    observation_sweeps: int = Field(1, ge=1, description="passes over the observations")
    online_values: bool = Field(True, description="false: Q(s,s') is not updated from the "
                                "agent's own interaction, only the inverse model is (the "
                                "official learning-from-observation protocol)")
    transfer_values: bool = Field(True, description="false: ablation, the values learned on "
                                  "pretrain_env are discarded at the transfer")
    transfer_inverse: bool = Field(False, description="true: ablation (a plausible bug), the "
                                   "stale inverse model is kept at the transfer")


def evaluate(env: GridWorld, agent: Any, rng: np.random.Generator, episodes: int) -> float:
    """Mean undiscounted return of the greedy policy from the start state."""
    deterministic_env = env.stochasticity == 0
    total = 0.0
    for _ in range(episodes):
        s, ret = env.start, 0.0
        seen: dict[int, int] = {}
        for t in range(env.max_steps):
            a, was_random = agent.greedy(s)
            if was_random or not deterministic_env:
                seen.clear()
            elif s in seen:  # a deterministic loop: the goal is never reached
                ret += (env.max_steps - t) * env.step_reward
                break
            else:
                seen[s] = t
            s, r, terminal = env.step(s, a, rng)
            ret += r
            if terminal:
                break
        total += ret
    return total / episodes


def train(env: GridWorld, agent: Any, p: TabularParams, rng: np.random.Generator,
          eval_rng: np.random.Generator | None, episodes: int,
          tick: Any = None) -> tuple[list[list[float]], list[float], int]:
    """Run ``episodes`` training episodes; returns (eval curve, train returns, steps)."""
    eps = p.epsilon_start
    decay = (p.epsilon_start - p.epsilon_end) / p.epsilon_decay_steps
    curve: list[list[float]] = []
    if eval_rng is not None:
        curve.append([0, evaluate(env, agent, eval_rng, p.eval_episodes)])
    returns: list[float] = []
    steps = 0
    n_actions = env.n_actions
    random_behavior = p.behavior == "random"
    for episode in range(1, episodes + 1):
        s, ret = env.start, 0.0
        for _ in range(env.max_steps):
            if random_behavior or rng.random() < eps:
                a = int(rng.integers(n_actions))
            else:
                a = agent.greedy(s)[0]
            s2, r, terminal = env.step(s, a, rng)
            agent.update(s, a, r, s2, terminal)
            steps += 1
            ret += r
            if eps > p.epsilon_end:
                eps -= decay
            s = s2
            if terminal:
                break
        returns.append(ret)
        if eval_rng is not None and (episode % p.eval_every == 0 or episode == episodes):
            curve.append([episode, evaluate(env, agent, eval_rng, p.eval_episodes)])
        if tick is not None:
            tick()
    return curve, returns, steps


class _TabularMethod(Method):
    agent_cls: Any = None
    label = ""

    def run(self, ctx: RunContext, data: GridWorld, model: Any) -> dict[str, Any]:
        if not isinstance(data, GridWorld):
            raise HarnessError(f"{self.name} runs on a qss/gridworld environment",
                               hint="use a dataset {use: qss/gridworld, ...}")
        p: TabularParams = self.params  # type: ignore[assignment]
        rng = ctx.derive("agent").rng
        agent = self.make_agent(data, p, rng)
        scalars: dict[str, float] = {}
        if getattr(p, "observations", "ignore") == "learn" and isinstance(agent, QSSAgent):
            if data.observations is None:
                raise HarnessError(f"{self.name} with observations: learn needs an environment "
                                   "with observations", hint="give the qss/gridworld dataset "
                                   "observer: random (or noisy-expert)")
            scalars["observed_transitions"] = agent.learn_from_observations(
                data.observations, p.observation_sweeps)  # type: ignore[attr-defined]
            agent.learn_values = p.online_values  # type: ignore[attr-defined]
        pre_steps = 0
        if p.pretrain_env is not None and p.pretrain_episodes:
            pre_env = p.pretrain_env.build().load(ctx.derive("pretrain-env"))
            agent.reset_env(pre_env)
            _, _, pre_steps = train(pre_env, agent, p, rng, None, p.pretrain_episodes)
            agent.reset_env(data)
        with ctx.progress.task("episodes", total=p.episodes) as tick:
            curve, returns, steps = train(data, agent, p, rng, ctx.derive("eval").rng,
                                          p.episodes, tick)
        plot_curves(ctx.artifact("return_curve.png"), {self.label: curve},
                    title=f"{self.label} on {data.name}", xlabel="training episodes",
                    hline=data.optimal_return())
        return {"curve": curve, "train_returns": returns, "optimal_return":
                data.optimal_return(), "episodes": p.episodes,
                "scalars": {"train_steps": steps, "pretrain_steps": pre_steps, **scalars}}

    def make_agent(self, env: GridWorld, p: TabularParams, rng: np.random.Generator) -> Any:
        return self.agent_cls(env, p, rng)


class QLearning(_TabularMethod):
    """Tabular Q(s,a)-learning with epsilon-greedy exploration (the QSA baseline)."""

    name = "qss/q-learning"
    version = "2"
    Params = QLearningParams
    agent_cls = QLearningAgent
    label = "Q-learning"


class QSS(_TabularMethod):
    """Tabular Q(s,s')-learning: greedy next-state proposal + inverse-dynamics lookup."""

    name = "qss/qss"
    version = "2"
    Params = QSSParams
    agent_cls = QSSAgent
    label = "QSS"

    def make_agent(self, env: GridWorld, p: TabularParams, rng: np.random.Generator) -> Any:
        if getattr(p, "value_over", "next-state") == "action":
            return QLearningAgent(env, p, rng)
        return QSSAgent(env, p, rng)
