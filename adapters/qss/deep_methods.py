"""Agents on a ``qss/gym`` environment: ``qss/d3g``, ``qss/standard-qss``, ``qss/td3``,
and the ``qss/random-policy`` reference.

The interaction loop follows the official ``D3G/main.py``: the untrained policy is
evaluated first; for ``start_steps`` steps actions are uniformly random, afterwards
``act(s) + N(0, expl_noise * max_action)`` clipped to the action box; every environment
step is stored in a replay buffer and, once past ``start_steps``, followed by one training
iteration on a uniformly sampled batch; ``not_done`` is 0 only on true termination (time
limits bootstrap); every ``eval_every`` steps the deterministic policy is evaluated for
``eval_episodes`` episodes on a separate environment that is reseeded identically before
each evaluation (official: ``seed + 100``; here a seed drawn from the dataset context).

Deviations: the step budget, ``start_steps``, evaluation frequency and network width are
parameters that the spec sets far below the official 1e6 / 1e4 / 5e3 / 256 so that a run
fits in minutes; random actions, exploration noise and batch indices come from the run
context's generators instead of global numpy/gym state. Extra measurements not in the
official code: the forward model's error on the dataset's held-out random-policy
transitions and the cycle loss, both recorded at every evaluation.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from harness import HarnessError, Method, Params, RunContext

from .deep import AgentConfig, Batch, D3GAgent, StandardQSSAgent, TD3Agent
from .gymtask import GymTask, box_bounds
from .plots import plot_curves


class ReplayBuffer:
    def __init__(self, state_dim: int, action_dim: int, size: int) -> None:
        self.s = np.zeros((size, state_dim), np.float32)
        self.a = np.zeros((size, action_dim), np.float32)
        self.s2 = np.zeros((size, state_dim), np.float32)
        self.r = np.zeros((size, 1), np.float32)
        self.nd = np.zeros((size, 1), np.float32)
        self.ptr = self.n = 0
        self.size = size

    def add(self, s: np.ndarray, a: np.ndarray, s2: np.ndarray, r: float, done: bool) -> None:
        i = self.ptr
        self.s[i], self.a[i], self.s2[i], self.r[i], self.nd[i] = s, a, s2, r, 1.0 - done
        self.ptr = (i + 1) % self.size
        self.n = min(self.n + 1, self.size)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        idx = rng.integers(0, self.n, size=batch_size)
        t = torch.from_numpy
        return Batch(t(self.s[idx]), t(self.a[idx]), t(self.s2[idx]), t(self.r[idx]),
                     t(self.nd[idx]))


def evaluate(env: Any, act: Any, seed: int, episodes: int, discount: float = 0.99
             ) -> tuple[float, list[np.ndarray], list[float]]:
    """Mean return of ``act`` over ``episodes`` (the first reset uses ``seed``), the start
    states and each episode's discounted return from its start state."""
    total = 0.0
    starts: list[np.ndarray] = []
    discounted: list[float] = []
    for ep in range(episodes):
        state, _ = env.reset(seed=seed) if ep == 0 else env.reset()
        starts.append(np.asarray(state, np.float32))
        done, g, scale = False, 0.0, 1.0
        while not done:
            state, reward, terminated, truncated, _ = env.step(act(state))
            total += float(reward)
            g += scale * float(reward)
            scale *= discount
            done = terminated or truncated
        discounted.append(g)
    return total / episodes, starts, discounted


def value_bias(agent: Any, starts: list[np.ndarray], discounted: list[float]) -> float:
    """Mean over evaluation episodes of the critic's value at the start state minus the
    discounted return that followed (positive: the critic over-estimates)."""
    with torch.no_grad():
        q = agent.value(torch.from_numpy(np.stack(starts))).reshape(-1)
    return float((q - torch.tensor(discounted, dtype=q.dtype)).mean())


class DeepParams(Params):
    steps: int = Field(1_000_000, ge=1, description="environment steps (official 1e6)")
    start_steps: int = Field(10_000, ge=0, description="initial uniformly random steps")
    eval_every: int = Field(5000, ge=1, description="environment steps between evaluations")
    eval_episodes: int = Field(10, ge=1)
    batch_size: int = Field(256, ge=1)
    hidden: int = Field(256, ge=1, description="units of each hidden layer (official 256)")
    lr: float = Field(3e-4, gt=0, description="Adam learning rate of every network")
    discount: float = Field(0.99, ge=0, le=1)
    tau: float = Field(0.005, gt=0, le=1, description="target network Polyak rate")
    policy_freq: int = Field(2, ge=1, description="delayed model/actor update period")
    expl_noise: float = Field(0.1, ge=0, description="exploration noise std / max_action")
    buffer_size: int = Field(1_000_000, ge=1)


class D3GParams(DeepParams):
    critic_target: Literal["corrected", "proposal"] = Field(
        "corrected", description="proposal: ablation (a plausible bug), the critic target "
        "at the uncorrected proposal s' + tau'(s') instead of s' + f(s', I(s', ...))")
    cycle_weight: float = Field(1.0, ge=0, description="weight of the cycle loss in the "
                                "model's loss (official 1); 0: ablation without it")
    forward_target: Literal["delta", "next-state"] = Field(
        "delta", description="next-state: ablation (a plausible bug), the forward model "
        "regresses on s' instead of s' - s")


class TD3Params(DeepParams):
    policy_noise: float = Field(0.2, ge=0, description="target smoothing noise / max_action")
    noise_clip: float = Field(0.5, ge=0, description="smoothing noise clip / max_action")


def _task(data: Any, who: str) -> GymTask:
    if not isinstance(data, GymTask):
        raise HarnessError(f"{who} runs on a qss/gym environment",
                           hint="use a dataset {use: qss/gym, env_id: Pendulum-v1}")
    return data


def heldout_forward_error(agent: D3GAgent, task: GymTask) -> float:
    h = task.heldout
    if not h:
        return float("nan")
    s, a, s2 = (torch.from_numpy(h[k]) for k in ("state", "action", "next_state"))
    with torch.no_grad():
        return float(F.mse_loss(agent.forward_model(s, a), s2 - s))


class _DeepMethod(Method):
    agent_cls: Any = None
    label = ""

    def run(self, ctx: RunContext, data: Any, model: Any) -> dict[str, Any]:
        task = _task(data, self.name)
        p: TD3Params = self.params  # type: ignore[assignment]
        env, eval_env = task.make(), task.make()
        state_dim, action_dim, low, high = box_bounds(env)
        max_action = float(high[0])
        cfg = AgentConfig(hidden=p.hidden, lr=p.lr, discount=p.discount, tau=p.tau,
                          policy_freq=p.policy_freq,
                          policy_noise=getattr(p, "policy_noise", 0.2),
                          noise_clip=getattr(p, "noise_clip", 0.5),
                          critic_target=getattr(p, "critic_target", "corrected"),
                          cycle_weight=getattr(p, "cycle_weight", 1.0),
                          forward_target=getattr(p, "forward_target", "delta"))
        agent = self.agent_cls(state_dim, action_dim, max_action, cfg,
                               ctx.derive("networks").generator)
        rng = ctx.derive("interaction").rng
        batch_rng = ctx.derive("batches").rng
        buffer = ReplayBuffer(state_dim, action_dim, min(p.buffer_size, p.steps))
        curve: list[list[float]] = []
        dyn: list[dict[str, float]] = []
        sums: dict[str, list[float]] = {}  # training losses since the last evaluation

        def record(t: int) -> None:
            ret, starts, discounted = evaluate(eval_env, agent.act, task.eval_seed,
                                               p.eval_episodes, p.discount)
            curve.append([t, ret])
            point = {"step": t, **{k: v[0] / v[1] for k, v in sums.items()},
                     "value_bias": value_bias(agent, starts, discounted)}
            sums.clear()
            if isinstance(agent, D3GAgent):
                point["forward_model_error"] = heldout_forward_error(agent, task)
            dyn.append(point)

        record(0)
        state, _ = env.reset(seed=task.train_seed)
        episode_returns: list[float] = []
        ep_ret, t0 = 0.0, time.perf_counter()
        with ctx.progress.task("env steps", total=p.steps) as tick:
            for t in range(p.steps):
                if t < p.start_steps:
                    action = rng.uniform(low, high)
                else:
                    action = agent.act(state) + rng.normal(0, max_action * p.expl_noise,
                                                           size=action_dim)
                    action = action.clip(low, high)
                action = action.astype(np.float32)
                nxt, reward, terminated, truncated, _ = env.step(action)
                buffer.add(state, action, nxt, float(reward), bool(terminated))
                state = nxt
                ep_ret += float(reward)
                if t >= p.start_steps:
                    agent.train(buffer.sample(p.batch_size, batch_rng))
                    for k, v in agent.log.items():
                        acc = sums.setdefault(k, [0.0, 0])
                        acc[0] += v
                        acc[1] += 1
                if terminated or truncated:
                    episode_returns.append(ep_ret)
                    state, ep_ret = env.reset()[0], 0.0
                if (t + 1) % p.eval_every == 0:
                    record(t + 1)
                    tick(p.eval_every)
        if not curve or curve[-1][0] != p.steps:
            record(p.steps)
        env.close()
        eval_env.close()
        plot_curves(ctx.artifact("return_curve.png"), {self.label: curve},
                    title=f"{self.label} on {task.env_id}", xlabel="environment steps")
        scalars: dict[str, float] = {"train_iterations": float(agent.total_it),
                                     "train_seconds": time.perf_counter() - t0,
                                     "episodes": float(len(episode_returns))}
        if isinstance(agent, D3GAgent):
            _plot_dynamics(ctx, dyn)
        return {"curve": curve, "dynamics_log": dyn, "train_returns": episode_returns,
                "scalars": scalars}


def _plot_dynamics(ctx: RunContext, dyn: list[dict[str, float]]) -> None:
    curves = {k: [[d["step"], d[k]] for d in dyn if k in d]
              for k in ("forward_model_error", "cycle_loss")}
    plot_curves(ctx.artifact("dynamics_curve.png"), curves, title="D3G dynamics losses",
                xlabel="environment steps", ylabel="MSE", logy=True)


class D3G(_DeepMethod):
    """Deep Deterministic Dynamics Gradients: Q(s,s') + model + inverse + forward + cycle."""

    name = "qss/d3g"
    version = "2"
    Params = D3GParams
    agent_cls = D3GAgent
    label = "D3G"


class StandardQSS(_DeepMethod):
    """The Standard QSS ablation of D3G: no forward model, no cycle loss."""

    name = "qss/standard-qss"
    version = "2"
    Params = DeepParams
    agent_cls = StandardQSSAgent
    label = "Standard QSS"


class TD3(_DeepMethod):
    """Twin Delayed DDPG, the official baseline (Fujimoto et al., arXiv:1802.09477)."""

    name = "qss/td3"
    version = "2"
    Params = TD3Params
    agent_cls = TD3Agent
    label = "TD3"


class RandomPolicy(Method):
    """Uniformly random actions, evaluated like the agents (the reference to beat)."""

    name = "qss/random-policy"
    version = "2"

    class Params(Params):
        eval_episodes: int = Field(10, ge=1)

    def run(self, ctx: RunContext, data: Any, model: Any) -> dict[str, Any]:
        task = _task(data, self.name)
        env = task.make()
        _, _, low, high = box_bounds(env)
        rng = ctx.rng

        def act(_: np.ndarray) -> np.ndarray:
            return rng.uniform(low, high).astype(np.float32)

        p: RandomPolicy.Params = self.params  # type: ignore[assignment]
        ret = evaluate(env, act, task.eval_seed, p.eval_episodes)[0]
        env.close()
        return {"curve": [[0, ret]], "scalars": {}}
