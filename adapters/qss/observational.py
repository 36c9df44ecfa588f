"""Deep learning from observation: ObservationalD3G and behavioural cloning from observation.

Edwards et al., "Estimating Q(s,s') with Deep Deterministic Dynamics Gradients", ICML
2020 (arXiv:2002.09505), learning-from-observation experiment; official code
uber-research/D3G, ``D3G/ObservationalD3G.py``, ``D3G/bco.py`` and
``D3G/learn_from_observation.py``. BCO is Torabi, Warnell & Stone, IJCAI 2018
(arXiv:1805.01954), as the official ``bco.py`` runs it. Written from the paper and a
reading of that code; nothing copied.

Protocol (``learn_from_observation.py``): observations ``(s, r, s', not_done)`` of a
demonstrator, without actions, are given first (``qss/gym-observed``). ObservationalD3G
trains its Q(s,s') critics, next-state model and forward model on them alone
(``pretrain_iterations``; official 1e6), then interacts for ``rounds`` rounds: evaluate,
take ``round_steps`` steps with ``I(s, s + tau(s)) + N(0, expl_noise max_action)``
(clipped) into a buffer of its own transitions, and fit the inverse dynamics model
``I(s, s') -> a`` to that buffer for ``inverse_iterations`` minibatches (official 100
rounds of 1,000 steps and 10,000 iterations). The critic, model and forward model stay
frozen during interaction: only the inverse model learns from the agent's own data, and
only from it.

ObservationalD3G (:class:`ObservationalD3GAgent`) differs from D3G in its forward model,
which cannot see actions: ``f(s, q) -> s' - s`` is conditioned on the target critic's
value of the observed transition, ``q = Q1^targ(s, s')``. One pretraining iteration on an
observation batch: (1) the critics regress on ``r + not_done gamma min_i Q_i^targ(s', c')``
with ``p' = s' + tau^targ(s')`` and ``c' = s' + f(s', Q1^targ(s', p'))`` (no gradients);
(2) the forward model regresses ``f(s, Q1^targ(s, s'))`` on ``s' - s``; (3) every
``policy_freq`` iterations the model takes a step on ``-Q1(s, c) + mse(c, p)`` with
``p = s + tau(s)``, ``c = s + f(s, Q1(s, p))`` (online critic), then the critic and model
targets are Polyak-averaged. Acting: ``a = I(s, s + tau(s))``, the uncorrected proposal.

BCO (:class:`BCOAgent`): the same rounds; the policy ``pi(s)`` acts (plus noise), the
inverse model is fitted to the agent's own transitions, then ``pi`` regresses on the
inverse model's labels ``I(s, s')`` of observation batches for ``bc_iterations``.

Ablations for the controls (each a plausible bug or the method without its key idea):
``observations: ignore`` trains the critic, model and forward model on the agent's own
transitions instead (``pretrain_iterations // rounds`` iterations after each round's
steps, before its inverse fitting); ``observations: shuffled`` pairs each observed state
with the next state of a random other observation (s' no longer follows s; rewards stay
with s); ``inverse: blind`` feeds the inverse model zeros instead of
``(s, s')``, so it learns the mean action of its own data.

Deviations from the official code: network width, the numbers of iterations, rounds and
steps are parameters the spec sets far below the official ones; the final evaluation
follows the last round (official: evaluations precede rounds only); the official second,
unused minibatch per iteration and unused actor target are not drawn/created; the
model's gradient is taken for its own parameters only (the official ``backward()`` also
fills other networks' gradients, which their next ``zero_grad`` discards: same updates);
random numbers come from the run context.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from harness import Method, Params, RunContext

from .deep import Batch, _step, _step_params
from .deep_methods import ReplayBuffer, evaluate
from .gymtask import box_bounds
from .networks import MLP, TwinQ, adam, soft_update
from .observers import ObservedGymTask, observed_task
from .plots import plot_curves


class ObservationBatch:
    """A minibatch of state-only observations: no action."""

    def __init__(self, obs: dict[str, np.ndarray], idx: np.ndarray) -> None:
        t = torch.from_numpy
        self.state, self.next_state = t(obs["state"][idx]), t(obs["next_state"][idx])
        self.reward, self.not_done = t(obs["reward"][idx]), t(obs["not_done"][idx])


class InverseModel:
    """``I(s, s') -> a`` (``max_action tanh``), fitted to the agent's own transitions only."""

    def __init__(self, state_dim: int, action_dim: int, max_action: float, hidden: int,
                 lr: float, generator: torch.Generator, blind: bool = False) -> None:
        self.net = MLP(2 * state_dim, action_dim, hidden, generator, tanh_scale=max_action)
        self.opt = adam(self.net, lr)
        self.blind = blind
        self.iterations = 0

    def __call__(self, state: torch.Tensor, next_state: torch.Tensor) -> torch.Tensor:
        if self.blind:
            state, next_state = torch.zeros_like(state), torch.zeros_like(next_state)
        return self.net(state, next_state)

    def train(self, b: Batch) -> float:
        """One step on a batch of the agent's own interaction (it has actions)."""
        loss = F.mse_loss(self(b.state, b.next_state), b.action)
        _step(self.opt, loss)
        self.iterations += 1
        return loss.item()


class ObservationalD3GAgent:
    """Q(s,s') critics + next-state model + forward model f(s, q) from observations;
    the inverse model from own interaction."""

    def __init__(self, state_dim: int, action_dim: int, max_action: float, hidden: int,
                 lr: float, discount: float, tau: float, policy_freq: int,
                 generator: torch.Generator, blind_inverse: bool = False) -> None:
        self.discount, self.tau, self.policy_freq = discount, tau, policy_freq
        self.critic = TwinQ(2 * state_dim, hidden, generator)
        self.critic_target = copy.deepcopy(self.critic)
        self.model = MLP(state_dim, state_dim, hidden, generator)
        self.model_target = copy.deepcopy(self.model)
        self.forward_model = MLP(state_dim + 1, state_dim, hidden, generator)
        self.inverse = InverseModel(state_dim, action_dim, max_action, hidden, lr, generator,
                                    blind_inverse)
        self.critic_opt = adam(self.critic, lr)
        self.model_opt = adam(self.model, lr)
        self.forward_opt = adam(self.forward_model, lr)
        self.total_it = 0
        self.log: dict[str, float] = {}

    def propose(self, state: torch.Tensor, target: bool = False) -> torch.Tensor:
        return state + (self.model_target if target else self.model)(state)

    @torch.no_grad()
    def act(self, state: np.ndarray) -> np.ndarray:
        s = torch.as_tensor(state, dtype=torch.float32).reshape(1, -1)
        return self.inverse(s, self.propose(s)).numpy().reshape(-1)

    def train_observations(self, b: ObservationBatch) -> None:
        """One iteration of the critic, forward model and (delayed) model; no actions."""
        self.total_it += 1
        with torch.no_grad():
            proposal = self.propose(b.next_state, target=True)
            q = self.critic_target.Q1(b.next_state, proposal)
            corrected = b.next_state + self.forward_model(b.next_state, q)
            q1, q2 = self.critic_target(b.next_state, corrected)
            y = b.reward + b.not_done * self.discount * torch.min(q1, q2)
        c1, c2 = self.critic(b.state, b.next_state)
        critic_loss = F.mse_loss(c1, y) + F.mse_loss(c2, y)
        _step(self.critic_opt, critic_loss)
        with torch.no_grad():
            q_obs = self.critic_target.Q1(b.state, b.next_state)
        forward_loss = F.mse_loss(self.forward_model(b.state, q_obs), b.next_state - b.state)
        _step(self.forward_opt, forward_loss)
        self.log = {"critic_loss": critic_loss.item(), "forward_loss": forward_loss.item()}
        if self.total_it % self.policy_freq == 0:
            proposal = self.propose(b.state)
            corrected = b.state + self.forward_model(b.state, self.critic.Q1(b.state, proposal))
            cycle = F.mse_loss(corrected, proposal)
            loss = -self.critic.Q1(b.state, corrected).mean() + cycle
            _step_params(self.model_opt, loss, list(self.model.parameters()))
            soft_update(self.critic, self.critic_target, self.tau)
            soft_update(self.model, self.model_target, self.tau)
            self.log["cycle_loss"] = cycle.item()


class BCOAgent:
    """Behavioural cloning from observation: inverse model + policy cloned on its labels."""

    def __init__(self, state_dim: int, action_dim: int, max_action: float, hidden: int,
                 lr: float, generator: torch.Generator, blind_inverse: bool = False) -> None:
        self.inverse = InverseModel(state_dim, action_dim, max_action, hidden, lr, generator,
                                    blind_inverse)
        self.policy = MLP(state_dim, action_dim, hidden, generator, tanh_scale=max_action)
        self.policy_opt = adam(self.policy, lr)
        self.log: dict[str, float] = {}

    @torch.no_grad()
    def act(self, state: np.ndarray) -> np.ndarray:
        s = torch.as_tensor(state, dtype=torch.float32).reshape(1, -1)
        return self.policy(s).numpy().reshape(-1)

    @torch.no_grad()
    def labels(self, b: ObservationBatch) -> torch.Tensor:
        return self.inverse(b.state, b.next_state)

    def train_bc(self, b: ObservationBatch) -> float:
        loss = F.mse_loss(self.policy(b.state), self.labels(b))
        _step(self.policy_opt, loss)
        return loss.item()


class LfOParams(Params):
    observer: Literal["demonstrator", "random"] = Field(
        "demonstrator", description="whose state-only observations the agent is given")
    rounds: int = Field(100, ge=1, description="interaction rounds (official 100)")
    round_steps: int = Field(1000, ge=1, description="own environment steps per round")
    inverse_iterations: int = Field(10_000, ge=0, description="inverse-model minibatches "
                                    "per round, on the agent's own transitions")
    eval_episodes: int = Field(10, ge=1)
    batch_size: int = Field(256, ge=1)
    hidden: int = Field(256, ge=1, description="units of each hidden layer (official 256)")
    lr: float = Field(3e-4, gt=0)
    expl_noise: float = Field(0.1, ge=0, description="exploration noise std / max_action")
    discount: float = Field(0.99, ge=0, le=1)
    observations: Literal["learn", "shuffled"] = Field(
        "learn", description="shuffled: ablation, each observed s paired with the s' of "
        "a random other observation")
    inverse: Literal["learned", "blind"] = Field(
        "learned", description="blind: ablation, the inverse model sees zeros, not (s, s')")


class ObservationalD3GParams(LfOParams):
    pretrain_iterations: int = Field(1_000_000, ge=0, description="iterations on the "
                                     "observations before interacting (official 1e6)")
    tau: float = Field(0.005, gt=0, le=1)
    policy_freq: int = Field(2, ge=1)
    observations: Literal["learn", "shuffled", "ignore"] = Field(  # type: ignore[assignment]
        "learn", description="shuffled: ablation, s' of a random other observation; "
        "ignore: ablation, Q(s,s') trained on the agent's own transitions only")


class BCOParams(LfOParams):
    bc_iterations: int = Field(10_000, ge=0, description="policy minibatches per round on "
                               "the labelled observations")


def observations_for(task: ObservedGymTask, p: LfOParams, rng: np.random.Generator
                     ) -> dict[str, np.ndarray]:
    obs = dict(task.observations[p.observer])
    if p.observations == "shuffled":
        obs["next_state"] = obs["next_state"][rng.permutation(len(obs["next_state"]))]
    return obs


def own_as_observations(buffer: ReplayBuffer) -> dict[str, np.ndarray]:
    n = buffer.n
    return {"state": buffer.s[:n], "next_state": buffer.s2[:n], "reward": buffer.r[:n],
            "not_done": buffer.nd[:n]}


class _LfOMethod(Method):
    label = ""

    def make_agent(self, dims: tuple[int, int, float], p: Any, g: torch.Generator) -> Any:
        raise NotImplementedError

    def pretrain(self, agent: Any, obs: dict[str, np.ndarray], p: Any,
                 rng: np.random.Generator) -> None:
        """Before interaction (ObservationalD3G: Q(s,s') on the observations)."""

    def after_round(self, agent: Any, obs: dict[str, np.ndarray], buffer: ReplayBuffer,
                    p: Any, rng: np.random.Generator) -> None:
        """After the inverse model's fitting in each round (BCO: cloning)."""

    def before_inverse(self, agent: Any, buffer: ReplayBuffer, p: Any,
                       rng: np.random.Generator) -> None:
        """Before the inverse model's fitting in each round (the ignore ablation)."""

    def run(self, ctx: RunContext, data: Any, model: Any) -> dict[str, Any]:
        task = observed_task(data, self.name)
        p: LfOParams = self.params  # type: ignore[assignment]
        env, eval_env = task.make(), task.make()
        state_dim, action_dim, low, high = box_bounds(env)
        max_action = float(high[0])
        agent = self.make_agent((state_dim, action_dim, max_action), p,
                                ctx.derive("networks").generator)
        rng, batch_rng = ctx.derive("interaction").rng, ctx.derive("batches").rng
        obs = observations_for(task, p, ctx.derive("shuffle").rng)
        t0 = time.perf_counter()
        self.pretrain(agent, obs, p, batch_rng)
        pretrain_s = time.perf_counter() - t0
        buffer = ReplayBuffer(state_dim, action_dim, p.rounds * p.round_steps)
        curve: list[list[float]] = []

        def record(t: int) -> None:
            curve.append([t, evaluate(eval_env, agent.act, task.eval_seed,
                                      p.eval_episodes)[0]])

        state, _ = env.reset(seed=task.train_seed)
        inverse_losses: list[float] = []
        for r in range(p.rounds):
            record(r * p.round_steps)
            for _ in range(p.round_steps):
                action = agent.act(state) + rng.normal(0, max_action * p.expl_noise,
                                                       size=action_dim)
                action = action.clip(low, high).astype(np.float32)
                nxt, reward, terminated, truncated, _ = env.step(action)
                buffer.add(state, action, nxt, float(reward), bool(terminated))
                state = env.reset()[0] if terminated or truncated else nxt
            self.before_inverse(agent, buffer, p, batch_rng)
            inverse_losses = [agent.inverse.train(buffer.sample(p.batch_size, batch_rng))
                              for _ in range(p.inverse_iterations)]
            self.after_round(agent, obs, buffer, p, batch_rng)
        record(p.rounds * p.round_steps)
        env.close()
        eval_env.close()
        plot_curves(ctx.artifact("return_curve.png"), {self.label: curve},
                    title=f"{self.label} on {task.env_id} ({p.observer} observations)",
                    xlabel="own environment steps")
        scalars = {"train_seconds": time.perf_counter() - t0, "pretrain_seconds": pretrain_s,
                   "inverse_iterations": float(agent.inverse.iterations),
                   "own_transitions": float(buffer.n),
                   "observer_return": task.observer_returns[p.observer]}
        if inverse_losses:
            scalars["inverse_loss"] = float(np.mean(inverse_losses[-100:]))
        return {"curve": curve, "scalars": scalars, "log": dict(agent.log)}


def _obs_batch(obs: dict[str, np.ndarray], batch_size: int, rng: np.random.Generator
               ) -> ObservationBatch:
    return ObservationBatch(obs, rng.integers(0, len(obs["state"]), size=batch_size))


class ObservationalD3G(_LfOMethod):
    """ObservationalD3G: Q(s,s') from state-only observations, inverse from interaction."""

    name = "qss/observational-d3g"
    version = "1"
    Params = ObservationalD3GParams
    label = "ObservationalD3G"

    def make_agent(self, dims: tuple[int, int, float], p: Any, g: torch.Generator) -> Any:
        return ObservationalD3GAgent(*dims, hidden=p.hidden, lr=p.lr, discount=p.discount,
                                     tau=p.tau, policy_freq=p.policy_freq, generator=g,
                                     blind_inverse=p.inverse == "blind")

    def pretrain(self, agent: Any, obs: dict[str, np.ndarray], p: Any,
                 rng: np.random.Generator) -> None:
        if p.observations == "ignore":
            return
        for _ in range(p.pretrain_iterations):
            agent.train_observations(_obs_batch(obs, p.batch_size, rng))

    def before_inverse(self, agent: Any, buffer: ReplayBuffer, p: Any,
                       rng: np.random.Generator) -> None:
        if p.observations != "ignore":
            return
        own = own_as_observations(buffer)
        for _ in range(p.pretrain_iterations // p.rounds):
            agent.train_observations(_obs_batch(own, p.batch_size, rng))


class DeepBCO(_LfOMethod):
    """Behavioural cloning from observation (Torabi et al. 2018; official ``bco.py``)."""

    name = "qss/deep-bco"
    version = "1"
    Params = BCOParams
    label = "BCO"

    def make_agent(self, dims: tuple[int, int, float], p: Any, g: torch.Generator) -> Any:
        return BCOAgent(*dims, hidden=p.hidden, lr=p.lr, generator=g,
                        blind_inverse=p.inverse == "blind")

    def after_round(self, agent: Any, obs: dict[str, np.ndarray], buffer: ReplayBuffer,
                    p: Any, rng: np.random.Generator) -> None:
        losses = [agent.train_bc(_obs_batch(obs, p.batch_size, rng))
                  for _ in range(p.bc_iterations)]
        if losses:
            agent.log["bc_loss"] = float(np.mean(losses[-100:]))
