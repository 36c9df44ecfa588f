"""Deep learning from observation (arXiv:2002.09505; official ObservationalD3G.py, bco.py,
learn_from_observation.py): which data feeds which loss, the demonstrator, the spec."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import ROOT, load_summary, run_harness
from harness_adapters.qss.deep_methods import ReplayBuffer
from harness_adapters.qss.observational import (
    BCOAgent,
    DeepBCO,
    ObservationalD3G,
    ObservationalD3GAgent,
    ObservationBatch,
)
from harness_adapters.qss.observers import ObservedGymEnvironment, observe, swing_up_action

from harness import HarnessError, RunContext

SPEC = ROOT / "specs" / "d3g-observation.yaml"
S, A = 3, 1


def _obs(n: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"state": rng.normal(size=(n, S)).astype(np.float32),
            "next_state": rng.normal(size=(n, S)).astype(np.float32),
            "reward": rng.normal(size=(n, 1)).astype(np.float32),
            "not_done": np.ones((n, 1), np.float32)}


def _agent(**kw: Any) -> ObservationalD3GAgent:
    return ObservationalD3GAgent(S, A, 2.0, hidden=16, lr=1e-3, discount=0.99, tau=0.005,
                                 policy_freq=2, generator=torch.Generator().manual_seed(0),
                                 **kw)


def _params(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def _changed(before: list[torch.Tensor], net: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def _own_buffer(n: int = 64) -> ReplayBuffer:
    buf = ReplayBuffer(S, A, n)
    rng = np.random.default_rng(1)
    for _ in range(n):
        buf.add(rng.normal(size=S), rng.uniform(-2, 2, A), rng.normal(size=S), 0.0, False)
    return buf


# -- which data feeds which loss --------------------------------------------------------
def test_observation_batches_have_no_action_and_train_everything_but_the_inverse() -> None:
    agent = _agent()
    b = ObservationBatch(_obs(), np.arange(32))
    assert not hasattr(b, "action")
    nets = {"critic": agent.critic, "forward": agent.forward_model, "model": agent.model,
            "inverse": agent.inverse.net, "critic_target": agent.critic_target}
    before = {k: _params(v) for k, v in nets.items()}
    agent.train_observations(b)  # iteration 1: no delayed model update yet
    assert _changed(before["critic"], agent.critic)
    assert _changed(before["forward"], agent.forward_model)
    assert not _changed(before["model"], agent.model)
    assert not _changed(before["critic_target"], agent.critic_target)
    agent.train_observations(b)  # iteration 2: the model and the targets move
    assert _changed(before["model"], agent.model)
    assert _changed(before["critic_target"], agent.critic_target)
    assert not _changed(before["inverse"], agent.inverse.net)  # never from observations
    assert agent.inverse.iterations == 0 and "cycle_loss" in agent.log


def test_forward_model_is_conditioned_on_the_target_critics_value_not_an_action() -> None:
    agent = _agent()
    assert agent.forward_model[0].in_features == S + 1
    b = ObservationBatch(_obs(), np.arange(16))
    with torch.no_grad():  # the forward model's input q is Q1^targ(s, s'): change it ...
        for p in agent.critic_target.q1.parameters():
            p.add_(0.5)
    q = agent.critic_target.Q1(b.state, b.next_state).detach()
    fwd = copy.deepcopy(agent.forward_model)
    opt = torch.optim.Adam(fwd.parameters(), lr=1e-3)
    loss = torch.nn.functional.mse_loss(fwd(b.state, q), b.next_state - b.state)
    opt.zero_grad()
    loss.backward()
    opt.step()
    agent.train_observations(b)  # ... and its step is the one on (s, Q1^targ(s, s'))
    for a, c in zip(fwd.parameters(), agent.forward_model.parameters(), strict=True):
        assert torch.allclose(a, c, atol=1e-6)


def test_inverse_model_learns_only_from_own_transitions_and_acts_at_the_proposal() -> None:
    agent = _agent()
    buf = _own_buffer()
    critic = _params(agent.critic)
    rng = np.random.default_rng(0)
    losses = [agent.inverse.train(buf.sample(32, rng)) for _ in range(200)]
    assert losses[-1] < losses[0] and agent.inverse.iterations == 200
    assert not _changed(critic, agent.critic)
    s = np.array([1.0, 0.0, 0.5], np.float32)
    st = torch.from_numpy(s).reshape(1, -1)
    with torch.no_grad():
        want = agent.inverse(st, st + agent.model(st)).numpy().reshape(-1)
    assert np.allclose(agent.act(s), want)


def test_blind_inverse_sees_zeros() -> None:
    agent = _agent(blind_inverse=True)
    a = agent.inverse(torch.randn(4, S), torch.randn(4, S))
    assert torch.allclose(a, a[0].expand_as(a))


def test_bco_labels_come_from_the_inverse_model_and_only_the_policy_clones() -> None:
    bco = BCOAgent(S, A, 2.0, hidden=16, lr=1e-3, generator=torch.Generator().manual_seed(0))
    b = ObservationBatch(_obs(), np.arange(32))
    with torch.no_grad():
        want = bco.inverse(b.state, b.next_state)
    assert torch.equal(bco.labels(b), want)
    inverse = _params(bco.inverse.net)
    first = bco.train_bc(b)
    for _ in range(300):
        last = bco.train_bc(b)
    assert last < 0.1 * first  # the policy fits the labels ...
    assert not _changed(inverse, bco.inverse.net)  # ... which it never moves


# -- the demonstrator and the dataset ---------------------------------------------------
def test_swing_up_demonstrator_is_good_and_noise_makes_it_sub_optimal() -> None:
    import gymnasium as gym

    env = gym.make("Pendulum-v1")
    assert swing_up_action(np.array([-1.0, 0.0, 0.0])) == 1.0  # at rest at the bottom: push
    assert swing_up_action(np.array([1.0, 0.1, 0.0])) < 0  # near the top: PD back
    clean, ret = observe(env, "demonstrator", 2000, 0.0, 3, np.random.default_rng(0))
    _, noisy = observe(env, "demonstrator", 2000, 0.5, 3, np.random.default_rng(0))
    _, rand = observe(env, "random", 2000, 0.0, 3, np.random.default_rng(0))
    env.close()
    assert set(clean) == {"state", "next_state", "reward", "not_done"}  # no action
    assert ret > -250 and rand < -900 and ret > noisy > rand


def test_observed_dataset_is_seeded_and_methods_refuse_plain_gym() -> None:
    ds = ObservedGymEnvironment(ObservedGymEnvironment.Params(observer_steps=300,
                                                              heldout_transitions=0))
    a, b = ds.load(RunContext(seed=5)), ds.load(RunContext(seed=5))
    assert set(a.observations) == {"demonstrator", "random"}
    assert np.array_equal(a.observations["random"]["state"], b.observations["random"]["state"])
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != ds.load(RunContext(seed=6)).fingerprint()
    from harness_adapters.qss.gymtask import GymEnvironment

    plain = GymEnvironment(GymEnvironment.Params(heldout_transitions=0)).load(RunContext(seed=5))
    for method in (ObservationalD3G(ObservationalD3G.Params()), DeepBCO(DeepBCO.Params())):
        with pytest.raises(HarnessError, match="qss/gym-observed"):
            method.run(RunContext(seed=0), plain, None)


def test_methods_run_end_to_end_small() -> None:
    ds = ObservedGymEnvironment(ObservedGymEnvironment.Params(observer_steps=200,
                                                              heldout_transitions=0))
    task = ds.load(RunContext(seed=1))
    small = {"rounds": 2, "round_steps": 20, "inverse_iterations": 3, "eval_episodes": 1,
             "hidden": 8, "batch_size": 8}
    for observations in ("learn", "shuffled", "ignore"):
        m = ObservationalD3G(ObservationalD3G.Params(pretrain_iterations=4,
                                                     observations=observations, **small))
        out = m.run(RunContext(seed=0), task, None)
        assert [t for t, _ in out["curve"]] == [0, 20, 40]
        assert out["scalars"]["inverse_iterations"] == 6
        assert out["scalars"]["own_transitions"] == 40
    out = DeepBCO(DeepBCO.Params(bc_iterations=2, observer="random", **small)).run(
        RunContext(seed=0), task, None)
    assert len(out["curve"]) == 3 and "bc_loss" in out["log"]


# -- the spec through the CLI -----------------------------------------------------------
@pytest.mark.slow
def test_spec_reduced_and_a_control_breaks_its_claim(tmp_path: Path) -> None:
    small = ["--seeds", "0,1", "--set", "datasets.pendulum.observer_steps=2000",
             "--set", "cells={only: [{method: {in: [bco, random]}}]}",
             "--set", "methods.bco.rounds=2", "--set", "methods.bco.round_steps=200",
             "--set", "methods.bco.inverse_iterations=100",
             "--set", "methods.bco.bc_iterations=100",
             "--set", "methods.bco.eval_episodes=2", "--set", "methods.random.eval_episodes=2"]
    res = run_harness("run", str(SPEC), "--out", str(tmp_path / "blind"), *small,
                      "--set", "methods.bco.inverse=blind")  # the blind-inverse control
    summary = load_summary(tmp_path / "blind")
    claim = next(c for c in summary["claims"] if c["id"] == "bco-beats-random")
    assert res.returncode == 1 and claim["status"] == "FAIL", res
    assert all(c["status"] == "ok" for c in summary["cells"]) and len(summary["cells"]) == 4
    # on both seeds: the blind labels are one mean action, nothing of the demonstrator
    assert [g["seeds_passed"] for g in claim["groups"]] == [0]
