"""D3G, the Standard QSS ablation and TD3: the update rules of the official code.

Edwards, Sahni, Liu, Hung, Jain, Wang, Ecoffet, Miconi, Isbell & Yosinski, "Estimating
Q(s,s') with Deep Deterministic Dynamics Gradients", ICML 2020, arXiv:2002.09505;
official code uber-research/D3G (``D3G/D3G.py``, ``D3G/Standard_QSS.py``,
``D3G/TD3.py``), itself built on Fujimoto et al.'s TD3 (arXiv:1802.09477). Written
from the paper and a reading of that code; nothing copied.

D3G (:class:`D3GAgent`) learns, from a replay buffer of (s, a, s', r, not_done):

- twin critics ``Q1, Q2(s, s')`` and their Polyak-averaged targets;
- a *model* ``tau(s)`` proposing the next state ``s + tau(s)`` (it predicts the change),
  with a Polyak-averaged target copy;
- an *inverse dynamics* network ``I(s, s') -> a`` (``max_action * tanh``), called
  ``actor`` in the official code, trained by regression on the buffer's actions;
- a *forward model* ``f(s, a)`` predicting ``s' - s``, trained by regression.

Each training iteration, in the official order: (1) critic regression on
``y = r + not_done * gamma * min_i Q_i^targ(s', c')`` where the *forward-model-corrected*
next-next state is ``c' = s' + f(s', I(s', s' + tau^targ(s')))`` (all without gradients;
the online inverse and forward networks are used, they have no targets); (2) one step of
the inverse model; (3) one step of the forward model; (4) every ``policy_freq`` iterations,
one step of the model on ``-Q1(s, c) + mse(c, s + tau(s))`` with
``c = s + f(s, I(s, s + tau(s)))`` (the *cycle loss* is the second term; gradients reach
``tau`` through both its terms), followed by soft updates of the critic and model targets.
Acting: ``a = I(s, s + tau(s))``.

Ablations of D3G (plausible bugs, for the pendulum spec's controls): ``critic_target:
proposal`` builds the critic target at the uncorrected proposal ``s' + tau^targ(s')``
instead of its forward-model correction; ``cycle_weight: 0`` drops the cycle loss from
the model's loss (it is still measured); ``forward_target: next-state`` regresses the
forward model on s' instead of the change s' - s that every use of it adds to s.

Standard QSS (:class:`StandardQSSAgent`) has no forward model: the target uses
``s' + tau^targ(s')`` directly and the model maximises ``Q1(s, s + tau(s))``.

TD3 (:class:`TD3Agent`) is the official baseline: deterministic actor and target,
target-policy smoothing noise ``clip(N(0, policy_noise), +-noise_clip)`` (both scaled by
``max_action`` as ``main.py`` does), delayed actor and target updates.

Deviations from the official code: network width is a parameter (official 256); the
unused ``forward_model_target`` (created, never read) is not created; gradients of the
model loss are taken for the model's parameters only (``torch.autograd.grad``): the
official ``backward()`` also fills gradients of the critic, inverse and forward networks,
which their next ``zero_grad`` discards, so the updates are the same; target smoothing
noise is drawn from the run context's generator.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .networks import MLP, TwinQ, adam, soft_update


@dataclass
class Batch:
    state: torch.Tensor
    action: torch.Tensor
    next_state: torch.Tensor
    reward: torch.Tensor
    not_done: torch.Tensor


@dataclass
class AgentConfig:
    hidden: int = 256
    lr: float = 3e-4
    discount: float = 0.99
    tau: float = 0.005
    policy_freq: int = 2
    policy_noise: float = 0.2  # TD3 only, times max_action
    noise_clip: float = 0.5  # TD3 only, times max_action
    critic_target: str = "corrected"  # D3G ablation: "proposal" skips the correction
    cycle_weight: float = 1.0  # D3G ablation: 0 removes the cycle loss
    forward_target: str = "delta"  # D3G ablation: "next-state" regresses f on s', not s' - s


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _step_params(opt: torch.optim.Optimizer, loss: torch.Tensor,
                 params: list[torch.nn.Parameter]) -> None:
    """Step ``opt`` with the gradient of ``loss`` for ``params`` only."""
    grads = torch.autograd.grad(loss, params)
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    opt.step()


class StandardQSSAgent:
    """Q(s,s') critics + next-state model + inverse dynamics, without a forward model."""

    name = "standard-qss"

    def __init__(self, state_dim: int, action_dim: int, max_action: float,
                 cfg: AgentConfig, generator: torch.Generator) -> None:
        h = cfg.hidden
        self.cfg, self.max_action, self.generator = cfg, max_action, generator
        self.critic = TwinQ(2 * state_dim, h, generator)
        self.critic_target = copy.deepcopy(self.critic)
        self.model = MLP(state_dim, state_dim, h, generator)
        self.model_target = copy.deepcopy(self.model)
        self.inverse = MLP(2 * state_dim, action_dim, h, generator, tanh_scale=max_action)
        self.critic_opt = adam(self.critic, cfg.lr)
        self.model_opt = adam(self.model, cfg.lr)
        self.inverse_opt = adam(self.inverse, cfg.lr)
        self.total_it = 0
        self.log: dict[str, float] = {}

    # -- acting ----------------------------------------------------------------------
    def propose(self, state: torch.Tensor, target: bool = False) -> torch.Tensor:
        """s + tau(s): the next state the model wants (``target``: the frozen copy)."""
        return state + (self.model_target if target else self.model)(state)

    @torch.no_grad()
    def act(self, state: np.ndarray) -> np.ndarray:
        s = torch.as_tensor(state, dtype=torch.float32).reshape(1, -1)
        return self.inverse(s, self.propose(s)).numpy().reshape(-1)

    @torch.no_grad()
    def value(self, state: torch.Tensor) -> torch.Tensor:
        """The critic's estimate of the policy's value: Q1(s, s + tau(s))."""
        return self.critic.Q1(state, self.propose(state))

    # -- learning --------------------------------------------------------------------
    @torch.no_grad()
    def target_next_state(self, next_state: torch.Tensor) -> torch.Tensor:
        return self.propose(next_state, target=True)

    @torch.no_grad()
    def critic_target_value(self, b: Batch) -> torch.Tensor:
        q1, q2 = self.critic_target(b.next_state, self.target_next_state(b.next_state))
        return b.reward + b.not_done * self.cfg.discount * torch.min(q1, q2)

    def model_loss(self, state: torch.Tensor) -> torch.Tensor:
        return -self.critic.Q1(state, self.propose(state)).mean()

    def train_dynamics(self, b: Batch) -> None:
        inverse_loss = F.mse_loss(self.inverse(b.state, b.next_state), b.action)
        _step(self.inverse_opt, inverse_loss)
        self.log["inverse_loss"] = inverse_loss.item()

    def train(self, b: Batch) -> None:
        self.total_it += 1
        self.log = {}
        y = self.critic_target_value(b)
        q1, q2 = self.critic(b.state, b.next_state)
        critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        _step(self.critic_opt, critic_loss)
        self.log["critic_loss"] = critic_loss.item()
        self.train_dynamics(b)
        if self.total_it % self.cfg.policy_freq == 0:
            self.update_model(b.state)
            soft_update(self.critic, self.critic_target, self.cfg.tau)
            soft_update(self.model, self.model_target, self.cfg.tau)

    def update_model(self, state: torch.Tensor) -> None:
        """One Adam step of the next-state model on its loss (the delayed update)."""
        _step_params(self.model_opt, self.model_loss(state), list(self.model.parameters()))


class D3GAgent(StandardQSSAgent):
    """Deep Deterministic Dynamics Gradients: Standard QSS plus a forward model and cycle."""

    name = "d3g"

    def __init__(self, state_dim: int, action_dim: int, max_action: float,
                 cfg: AgentConfig, generator: torch.Generator) -> None:
        super().__init__(state_dim, action_dim, max_action, cfg, generator)
        self.forward_model = MLP(state_dim + action_dim, state_dim, cfg.hidden, generator)
        self.forward_opt = adam(self.forward_model, cfg.lr)

    def cycle(self, state: torch.Tensor, target: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(proposal s + tau(s), its forward-model correction s + f(s, I(s, proposal)))."""
        proposal = self.propose(state, target)
        action = self.inverse(state, proposal)
        return proposal, state + self.forward_model(state, action)

    @torch.no_grad()
    def target_next_state(self, next_state: torch.Tensor) -> torch.Tensor:
        proposal, corrected = self.cycle(next_state, target=True)
        return proposal if self.cfg.critic_target == "proposal" else corrected

    @torch.no_grad()
    def value(self, state: torch.Tensor) -> torch.Tensor:
        """Q1(s, c): the critic at the forward-model-corrected next state it acts towards."""
        return self.critic.Q1(state, self.cycle(state)[1])

    def cycle_loss(self, state: torch.Tensor) -> torch.Tensor:
        proposal, corrected = self.cycle(state)
        return F.mse_loss(corrected, proposal)

    def model_loss(self, state: torch.Tensor) -> torch.Tensor:
        proposal, corrected = self.cycle(state)
        q_term = -self.critic.Q1(state, corrected).mean()
        cycle = F.mse_loss(corrected, proposal)
        self.log["cycle_loss"] = cycle.item()
        self.log["model_q"] = -q_term.item()
        return q_term + self.cfg.cycle_weight * cycle

    def forward_loss(self, state: torch.Tensor, action: torch.Tensor,
                     next_state: torch.Tensor) -> torch.Tensor:
        target = next_state if self.cfg.forward_target == "next-state" else next_state - state
        return F.mse_loss(self.forward_model(state, action), target)

    def train_dynamics(self, b: Batch) -> None:
        super().train_dynamics(b)
        loss = self.forward_loss(b.state, b.action, b.next_state)
        _step(self.forward_opt, loss)
        self.log["forward_loss"] = loss.item()


class TD3Agent:
    """Twin Delayed DDPG (the official baseline)."""

    name = "td3"

    def __init__(self, state_dim: int, action_dim: int, max_action: float,
                 cfg: AgentConfig, generator: torch.Generator) -> None:
        h = cfg.hidden
        self.cfg, self.max_action, self.generator = cfg, max_action, generator
        self.actor = MLP(state_dim, action_dim, h, generator, tanh_scale=max_action)
        self.actor_target = copy.deepcopy(self.actor)
        self.critic = TwinQ(state_dim + action_dim, h, generator)
        self.critic_target = copy.deepcopy(self.critic)
        self.actor_opt = adam(self.actor, cfg.lr)
        self.critic_opt = adam(self.critic, cfg.lr)
        self.total_it = 0
        self.log: dict[str, float] = {}

    @torch.no_grad()
    def act(self, state: np.ndarray) -> np.ndarray:
        s = torch.as_tensor(state, dtype=torch.float32).reshape(1, -1)
        return self.actor(s).numpy().reshape(-1)

    @torch.no_grad()
    def value(self, state: torch.Tensor) -> torch.Tensor:
        return self.critic.Q1(state, self.actor(state))

    @torch.no_grad()
    def critic_target_value(self, b: Batch) -> torch.Tensor:
        noise = torch.randn(b.action.shape, generator=self.generator)
        clip = self.cfg.noise_clip * self.max_action
        noise = (noise * self.cfg.policy_noise * self.max_action).clamp(-clip, clip)
        next_action = (self.actor_target(b.next_state) + noise).clamp(
            -self.max_action, self.max_action)
        q1, q2 = self.critic_target(b.next_state, next_action)
        return b.reward + b.not_done * self.cfg.discount * torch.min(q1, q2)

    def train(self, b: Batch) -> None:
        self.total_it += 1
        self.log = {}
        y = self.critic_target_value(b)
        q1, q2 = self.critic(b.state, b.action)
        critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        _step(self.critic_opt, critic_loss)
        self.log["critic_loss"] = critic_loss.item()
        if self.total_it % self.cfg.policy_freq == 0:
            actor_loss = -self.critic.Q1(b.state, self.actor(b.state)).mean()
            _step_params(self.actor_opt, actor_loss, list(self.actor.parameters()))
            soft_update(self.critic, self.critic_target, self.cfg.tau)
            soft_update(self.actor, self.actor_target, self.cfg.tau)
            self.log["actor_q"] = -actor_loss.item()
