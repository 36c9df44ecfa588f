"""QSS / D3G (arXiv:2002.09505): environments, agents, update rules, metrics, specs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, load_summary, run_harness
from harness_adapters.qss.deep import (
    AgentConfig,
    Batch,
    D3GAgent,
    StandardQSSAgent,
    TD3Agent,
)
from harness_adapters.qss.deep_methods import D3G, RandomPolicy, ReplayBuffer
from harness_adapters.qss.gridworld import GridWorld, GridWorldDataset
from harness_adapters.qss.gymtask import GymEnvironment
from harness_adapters.qss.metrics import CycleLoss, EpisodesToOptimal, FinalReturn
from harness_adapters.qss.observation import BCOAgent
from harness_adapters.qss.tabular import (
    QSS,
    QLearningAgent,
    QLearningParams,
    QSSAgent,
    QSSParams,
    TabularParams,
    evaluate,
    train,
)
from torch import nn

from harness import CellResult, HarnessError, RunContext

TABULAR = ROOT / "specs" / "qss-tabular.yaml"
PENDULUM = ROOT / "specs" / "d3g-pendulum.yaml"


def grid(**kw: object) -> GridWorld:
    return GridWorldDataset(GridWorldDataset.Params(**kw)).load(RunContext(seed=3))


# -- the gridworld ----------------------------------------------------------------------
def test_gridworld_dynamics_walls_goal_and_optimal_return() -> None:
    env = grid(size=11, actions=4)
    rng = np.random.default_rng(0)
    assert env.start == 0 and env.goal == 120 and env.optimal_return() == -18.0
    assert env.neighbors(0) == (0, 11, 0, 1)  # up and left bump into walls
    assert env.step(0, 1, rng) == (11, -1.0, False)  # down
    assert env.step(0, 0, rng) == (0, -1.0, False)  # wall
    assert env.step(119, 3, rng) == (120, 1.0, True)  # right into the goal
    # a shortest path collects the optimal return
    s, ret = env.start, 0.0
    for a in [1] * 10 + [3] * 10:
        s, r, _ = env.step(s, a, rng)
        ret += r
    assert ret == env.optimal_return()


def test_redundant_shuffled_and_stochastic_actions() -> None:
    env = grid(actions=40)
    assert env.move_of_action == tuple(a % 4 for a in range(40))
    assert env.actions_between(12, 1) == [0] and env.actions_between(0, 0) == [0, 2]
    shuffled = grid(actions=40, shuffle=True)
    assert sorted(shuffled.move_of_action) == sorted(env.move_of_action)
    assert shuffled.move_of_action != env.move_of_action
    assert shuffled == grid(actions=40, shuffle=True)  # the dataset context decides
    official = grid(mapping=[3, 2, 1, 0])
    assert official.step(12, 3, np.random.default_rng(0))[0] == 1  # action 3 moves up
    noisy = grid(stochasticity=1.0)
    rng = np.random.default_rng(1)
    moved = {noisy.step(60, 0, rng)[0] for _ in range(200)}
    assert moved == set(noisy.neighbors(60))  # every move happens, whatever the action


# -- tabular agents ---------------------------------------------------------------------
def test_q_learning_cached_argmax_is_exact() -> None:
    env = grid(actions=40)
    p = TabularParams(alpha=0.7)
    agent = QLearningAgent(env, p, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for _ in range(5000):
        s, a, s2 = (int(rng.integers(env.n_states)), int(rng.integers(40)),
                    int(rng.integers(env.n_states)))
        agent.update(s, a, float(rng.normal()), s2, bool(rng.random() < 0.1))
    for s in range(env.n_states):
        row = agent.q[s]
        assert agent.greedy(s)[0] == int(np.argmax(row))
        assert agent.vmax[s] == max(row)


def test_qss_update_and_learned_inverse_by_hand() -> None:
    env = grid()
    p = QSSParams(alpha=0.5, gamma=0.9, q_init=0.0)
    agent = QSSAgent(env, p, np.random.default_rng(0))
    agent.q[11][22] = 2.0  # a neighbour of 11 (down)
    agent.q[11][0] = 5.0  # also a neighbour (up)
    agent.q[11][99] = 100.0  # not a neighbour of 11: must not count
    agent.update(0, 1, -1.0, 11, False)
    assert agent.q[0][11] == pytest.approx(0.5 * (-1.0 + 0.9 * 5.0))
    assert agent.act_towards(0, 11) == (1, False)  # learned from the observed transition
    agent.update(0, 5, -1.0, 11, False)  # a redundant id seen for the same move
    assert agent.inverse[(0, 11)] == [1, 5]
    a, was_random = agent.act_towards(5, 6)  # never observed: a random action id
    assert was_random and 0 <= a < env.n_actions
    agent.update(119, 3, 1.0, 120, True)
    assert agent.q[119][120] == pytest.approx(0.5)  # terminal: no bootstrap


def test_greedy_evaluation_loop_shortcut_is_exact() -> None:
    env = grid(max_steps=50)
    rng = np.random.default_rng(0)
    for trial in range(20):
        agent = QLearningAgent(env, TabularParams(), rng)
        for s in range(env.n_states):
            for a in range(4):
                agent.update(s, a, float(rng.normal()), int(rng.integers(env.n_states)), False)
        s, naive = env.start, 0.0
        for _ in range(env.max_steps):
            s, r, done = env.step(s, agent.greedy(s)[0], rng)
            naive += r
            if done:
                break
        assert evaluate(env, agent, rng, 1) == naive, trial


def test_qss_learns_and_random_next_state_choice_does_not() -> None:
    env = grid(max_steps=200)
    kw = dict(alpha=0.5, epsilon_decay_steps=30000)
    results = {}
    for choice in ("greedy", "random"):
        p = QSSParams(next_state_choice=choice, **kw)
        rng = np.random.default_rng(0)
        curve, _, _ = train(env, QSSAgent(env, p, rng), p, rng, np.random.default_rng(1), 300)
        results[choice] = curve
    assert results["greedy"][-1][1] == env.optimal_return()
    assert max(r for _, r in results["random"]) < env.optimal_return()


def test_transfer_to_shuffled_actions_keeps_qss_values(tmp_path: Path) -> None:
    from harness_adapters.qss.tabular import QSS

    params = QSS.Params.model_validate({"episodes": 5, "alpha": 0.5,
                                        "epsilon_decay_steps": 30000,
                                        "pretrain_episodes": 300})
    # resolved by hand as the spec loader would
    from harness import Component
    params.pretrain_env = Component.resolved("qss/gridworld", GridWorldDataset,
                                             GridWorldDataset.Params(max_steps=200))
    env = grid(max_steps=200, mapping=[3, 2, 1, 0])
    out = QSS(params).run(RunContext(seed=0, work_dir=tmp_path), env, None)
    # the values transfer; the inverse model is relearned within a few episodes
    assert out["curve"][-1][1] == env.optimal_return()
    assert out["scalars"]["pretrain_steps"] > 0


# -- learning from observation, BCO, ablations -------------------------------------------
def test_observations_are_state_only_and_the_noisy_expert_is_a_shortest_path() -> None:
    rand = grid(max_steps=200, observer="random", observer_episodes=5)
    obs = rand.observations
    assert obs is not None and not hasattr(obs, "action") and len(obs) > 5
    assert obs.policy == "random" and len(obs.episode_returns) == 5
    assert rand == grid(max_steps=200)  # observations do not change the task
    assert rand.fingerprint() != grid(max_steps=200).fingerprint()
    again = grid(max_steps=200, observer="random", observer_episodes=5).observations
    assert again is not None and np.array_equal(again.next_state, obs.next_state)
    # every observed transition is one the dynamics allow
    for s, s2 in zip(obs.state.tolist(), obs.next_state.tolist(), strict=True):
        assert s2 in rand.neighbors(s)
    expert = grid(observer="noisy-expert", observer_randomness=0.0, observer_episodes=3,
                  actions=40, shuffle=True).observations
    assert expert is not None and set(expert.episode_returns) == {-18.0}
    assert grid().optimal_moves(0) == [1, 3] and grid().optimal_moves(119) == [3]


def test_qss_learns_values_from_observations_and_the_inverse_only_from_interaction() -> None:
    env = grid(max_steps=200, observer="random", observer_episodes=300)
    p = QSSParams(alpha=0.5, q_init=-100, observations="learn", online_values=False)
    agent = QSSAgent(env, p, np.random.default_rng(0))
    assert env.observations is not None
    assert agent.learn_from_observations(env.observations, 2) == 2 * len(env.observations)
    assert agent.inverse == {}  # no action was observed
    # the greedy proposal follows a shortest path from the observations alone
    s = env.start
    for _ in range(20):
        s = agent.propose(s)[0]
    assert s == env.goal
    agent.learn_values = False
    before = [row[:] for row in agent.q]
    agent.update(0, 1, -1.0, 11, False)  # own interaction: inverse only
    assert agent.q == before and agent.inverse == {(0, 11): [1]}


def test_learning_from_observation_beats_qsa_and_bco_on_random_observations(
        tmp_path: Path) -> None:
    from harness_adapters.qss.observation import BCO

    env = grid(max_steps=200, observer="random", observer_episodes=400)
    learning = dict(alpha=0.5, epsilon_decay_steps=30000, episodes=40)
    runs = {"qss": QSS(QSS.Params(observations="learn", online_values=False, q_init=-100,
                                  **learning)),
            "qsa-as-qss": QSS(QSS.Params(observations="learn", value_over="action",
                                         **learning)),
            "bco": BCO(BCO.Params(**learning))}
    reached = {}
    for name, method in runs.items():
        out = method.run(RunContext(seed=1, work_dir=tmp_path / name), env, None)
        res = EpisodesToOptimal(EpisodesToOptimal.Params(patience=10)).compute(
            RunContext(seed=0), CellResult(env, None, out))
        reached[name] = res["episodes_to_optimal"]
    assert reached["qss"] <= 30
    assert reached["qsa-as-qss"] == 41 and reached["bco"] == 41


def test_bco_labels_observations_with_its_own_inverse_model() -> None:
    env = grid(max_steps=200, observer="noisy-expert", observer_randomness=0.0,
               observer_episodes=20)
    agent = BCOAgent(env, TabularParams(), np.random.default_rng(0))
    a, was_random = agent.greedy(0)
    assert was_random  # nothing labelled yet
    n_down = agent.pair_count[(0, 11)]
    n_right = agent.pair_count[(0, 1)]
    assert n_down + n_right == 20
    agent.update(0, 0, -1.0, 0, False)  # bumping up: never observed, no vote
    assert agent.greedy(0)[1]
    agent.update(0, 1, -1.0, 11, False)
    assert agent.greedy(0) == (1, False) and agent.votes[0] == {1: n_down}
    agent.update(0, 3, -1.0, 1, False)
    assert agent.greedy(0) == ((3, False) if n_right > n_down else (1, False))
    with pytest.raises(HarnessError, match="observations"):
        BCOAgent(grid(), TabularParams(), np.random.default_rng(0))


def test_q_learning_per_move_values_share_redundant_ids() -> None:
    env = grid(actions=40)
    agent = QLearningAgent(env, QLearningParams(alpha=1.0, action_values="per-move"),
                           np.random.default_rng(0))
    assert len(agent.q[0]) == 4
    agent.update(0, 5, 1.0, 11, True)  # id 5 performs move 1 (down)
    assert agent.q[0][1] == 1.0 and agent.greedy(0) == (1, False)
    shuffled = grid(actions=40, mapping=[3, 2, 1, 0])
    agent.reset_env(shuffled)
    assert shuffled.move_of_action[agent.greedy(0)[0]] == 1  # still moves down


def test_qss_ablations_value_over_action_and_transfer_switches() -> None:
    env = grid()
    qsa = QSS(QSS.Params(value_over="action")).make_agent(env, QSS.Params(value_over="action"),
                                                          np.random.default_rng(0))
    assert isinstance(qsa, QLearningAgent)
    for values, inverse in ((True, False), (False, False), (True, True)):
        p = QSSParams(transfer_values=values, transfer_inverse=inverse)
        agent = QSSAgent(env, p, np.random.default_rng(0))
        agent.update(0, 1, -1.0, 11, False)
        agent.reset_env(grid(mapping=[3, 2, 1, 0]))
        assert (agent.q[0][11] != p.q_init) == values
        assert (agent.inverse == {(0, 11): [1]}) == inverse


# -- D3G update rules -------------------------------------------------------------------
def _batch(n: int = 32, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, 3, generator=g), torch.rand(n, 1, generator=g) * 4 - 2,
                 torch.randn(n, 3, generator=g), torch.randn(n, 1, generator=g),
                 (torch.rand(n, 1, generator=g) > 0.2).float())


def _agent(cls: type = D3GAgent, seed: int = 0) -> D3GAgent:
    return cls(3, 1, 2.0, AgentConfig(hidden=16), torch.Generator().manual_seed(seed))


def test_d3g_target_uses_forward_model_corrected_next_state() -> None:
    agent, b = _agent(), _batch()
    seen: list[torch.Tensor] = []
    original = agent.critic_target.forward

    def spy(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(y)
        return original(x, y)

    agent.critic_target.forward = spy  # type: ignore[method-assign]
    y = agent.critic_target_value(b)
    with torch.no_grad():
        s2 = b.next_state
        proposal = s2 + agent.model_target(s2)
        corrected = s2 + agent.forward_model(s2, agent.inverse(s2, proposal))
        q1, q2 = original(s2, corrected)
        expected = b.reward + b.not_done * 0.99 * torch.min(q1, q2)
        uncorrected = b.reward + b.not_done * 0.99 * torch.min(*original(s2, proposal))
    assert torch.allclose(seen[0], corrected)
    assert torch.allclose(y, expected)
    assert not torch.allclose(y, uncorrected)  # the correction matters
    with torch.no_grad():  # and the forward model is what makes it
        agent.forward_model[-1].bias.add_(0.5)
    assert not torch.allclose(agent.critic_target_value(b), y)


def test_d3g_ablations_uncorrected_target_and_no_cycle_loss() -> None:
    b = _batch()
    buggy = D3GAgent(3, 1, 2.0, AgentConfig(hidden=16, critic_target="proposal"),
                     torch.Generator().manual_seed(0))
    with torch.no_grad():
        s2 = b.next_state
        q1, q2 = buggy.critic_target(s2, s2 + buggy.model_target(s2))
        expected = b.reward + b.not_done * 0.99 * torch.min(q1, q2)
    assert torch.allclose(buggy.critic_target_value(b), expected)
    assert not torch.allclose(_agent().critic_target_value(b), expected)  # same init
    no_cycle = D3GAgent(3, 1, 2.0, AgentConfig(hidden=16, cycle_weight=0.0),
                        torch.Generator().manual_seed(0))
    s = b.state
    with torch.no_grad():
        corrected = no_cycle.cycle(s)[1]
        q_term = -no_cycle.critic.Q1(s, corrected).mean()
    assert no_cycle.model_loss(s).item() == pytest.approx(q_term.item(), rel=1e-6)
    assert no_cycle.log["cycle_loss"] > 0  # still measured
    assert torch.allclose(no_cycle.value(s), no_cycle.critic.Q1(s, corrected))
    wrong = D3GAgent(3, 1, 2.0, AgentConfig(hidden=16, forward_target="next-state"),
                     torch.Generator().manual_seed(0))
    with torch.no_grad():
        pred = wrong.forward_model(b.state, b.action)
        assert wrong.forward_loss(b.state, b.action, b.next_state).item() == pytest.approx(
            F.mse_loss(pred, b.next_state).item())


def test_value_bias_is_critic_minus_discounted_return() -> None:
    from harness_adapters.qss.deep_methods import evaluate, value_bias
    from harness_adapters.qss.gymtask import GymTask

    env = GymTask("Pendulum-v1", {}, 0, 1, 20).make()
    agent = _agent(TD3Agent)
    ret, starts, disc = evaluate(env, agent.act, 5, 2, discount=0.5)
    rewards = []
    state, _ = env.reset(seed=5)
    done = False
    while not done:
        state, r, term, trunc, _ = env.step(agent.act(state))
        rewards.append(float(r))
        done = term or trunc
    assert len(rewards) == 20 and disc[0] == pytest.approx(
        sum(r * 0.5 ** t for t, r in enumerate(rewards)))
    with torch.no_grad():
        q = agent.critic.Q1(torch.from_numpy(np.stack(starts)),
                            agent.actor(torch.from_numpy(np.stack(starts)))).reshape(-1)
    assert value_bias(agent, starts, disc) == pytest.approx(
        float((q - torch.tensor(disc)).mean()), rel=1e-5)
    env.close()


def test_standard_qss_target_uses_the_model_proposal_directly() -> None:
    agent, b = _agent(StandardQSSAgent), _batch()
    with torch.no_grad():
        s2 = b.next_state
        q1, q2 = agent.critic_target(s2, s2 + agent.model_target(s2))
        expected = b.reward + b.not_done * 0.99 * torch.min(q1, q2)
    assert torch.allclose(agent.critic_target_value(b), expected)


class _Exact(nn.Module):
    """A forward model that reaches exactly the proposal: f(s, a) = tau(s)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.model(s)


def test_cycle_loss_by_hand_zero_when_consistent_and_drives_the_model() -> None:
    agent, s = _agent(), _batch().state
    proposal = s + agent.model(s)
    corrected = s + agent.forward_model(s, agent.inverse(s, proposal))
    manual = ((corrected - proposal) ** 2).mean()
    assert agent.cycle_loss(s).item() == pytest.approx(manual.item(), rel=1e-6)
    assert manual.item() > 0
    # the loss reaches the model through both the proposal and the correction
    grads = torch.autograd.grad(agent.cycle_loss(s), list(agent.model.parameters()))
    assert sum(g.abs().sum() for g in grads) > 0
    # the model loss is -Q1(s, corrected) + cycle loss
    q_term = -agent.critic.Q1(s, corrected).mean()
    assert agent.model_loss(s).item() == pytest.approx((q_term + manual).item(), rel=1e-5)
    exact = _agent()
    exact.forward_model = _Exact(exact.model)
    assert exact.cycle_loss(s).item() == pytest.approx(0.0, abs=1e-12)


def test_d3g_update_schedule_delayed_model_and_targets() -> None:
    agent, b = _agent(), _batch()

    def snap(m: nn.Module) -> list[torch.Tensor]:
        return [p.detach().clone() for p in m.parameters()]

    def same(a: list[torch.Tensor], m: nn.Module) -> bool:
        return all(torch.equal(x, y) for x, y in zip(a, m.parameters(), strict=True))

    model0, ct0, mt0, inv0, fwd0 = (snap(agent.model), snap(agent.critic_target),
                                    snap(agent.model_target), snap(agent.inverse),
                                    snap(agent.forward_model))
    agent.train(b)  # iteration 1: critic, inverse, forward only
    assert same(model0, agent.model) and same(ct0, agent.critic_target)
    assert same(mt0, agent.model_target)
    assert not same(inv0, agent.inverse) and not same(fwd0, agent.forward_model)
    assert "cycle_loss" not in agent.log
    agent.train(b)  # iteration 2: the delayed model step and soft target updates
    assert not same(model0, agent.model) and not same(ct0, agent.critic_target)
    assert not same(mt0, agent.model_target)
    assert agent.log["cycle_loss"] >= 0


def test_d3g_model_step_moves_only_the_model_like_a_full_backward() -> None:
    agent, official, s = _agent(seed=4), _agent(seed=4), _batch().state
    others = [[p.detach().clone() for p in m.parameters()]
              for m in (agent.critic, agent.inverse, agent.forward_model)]
    agent.update_model(s)
    for before, m in zip(others, (agent.critic, agent.inverse, agent.forward_model),
                         strict=True):
        assert all(torch.equal(x, y) for x, y in zip(before, m.parameters(), strict=True))
    # the official route: backward through everything, step only the model's optimizer
    official.model_opt.zero_grad()
    official.model_loss(s).backward()
    official.model_opt.step()
    for x, y in zip(agent.model.parameters(), official.model.parameters(), strict=True):
        assert torch.allclose(x, y, atol=1e-7)
    assert not all(torch.equal(x, y) for x, y in zip(
        agent.model.parameters(), _agent(seed=4).model.parameters(), strict=True))


def test_td3_target_smoothing_noise_is_clipped() -> None:
    agent = _agent(TD3Agent)
    agent.cfg.policy_noise, agent.cfg.noise_clip = 100.0, 0.25  # times max_action = 2
    b = _batch(256)
    captured: list[torch.Tensor] = []
    original = agent.critic_target.forward

    def spy(s: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        captured.append(a)
        return original(s, a)

    agent.critic_target.forward = spy  # type: ignore[method-assign]
    agent.critic_target_value(b)
    with torch.no_grad():
        noise = captured[0] - agent.actor_target(b.next_state)
    inside = captured[0].abs() < 2.0 - 1e-6  # not clamped to the action box
    assert noise[inside].abs().max() <= 0.5 + 1e-6
    assert noise[inside].abs().max() > 0.4  # the clip is reached with huge noise


def test_replay_buffer_not_done_and_sampling() -> None:
    buf = ReplayBuffer(3, 1, 4)
    for i in range(6):
        buf.add(np.full(3, i), np.array([i]), np.full(3, i + 1), float(i), i == 5)
    assert buf.n == 4 and set(buf.s[:, 0]) == {2, 3, 4, 5}
    b = buf.sample(64, np.random.default_rng(0))
    assert torch.equal(b.next_state - b.state, torch.ones(64, 3))
    assert set(b.not_done[b.state[:, 0] == 5].flatten().tolist()) <= {0.0}


# -- gym environment and deep methods ---------------------------------------------------
def test_gym_task_is_seeded_from_the_context() -> None:
    ds = GymEnvironment(GymEnvironment.Params(heldout_transitions=50))
    a, b = ds.load(RunContext(seed=1)), ds.load(RunContext(seed=1))
    c = ds.load(RunContext(seed=2))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert a.heldout["state"].shape == (50, 3) and a.train_seed != a.eval_seed
    rand = RandomPolicy(RandomPolicy.Params(eval_episodes=2))
    r1 = rand.run(RunContext(seed=5), a, None)["curve"][0][1]
    assert r1 == rand.run(RunContext(seed=5), a, None)["curve"][0][1]
    assert -2000 < r1 < -100


def test_d3g_short_run_learns_dynamics(tmp_path: Path) -> None:
    task = GymEnvironment(GymEnvironment.Params(heldout_transitions=500)).load(
        RunContext(seed=0))
    method = D3G(D3G.Params(steps=400, start_steps=200, eval_every=200, eval_episodes=1,
                            hidden=32, batch_size=64))
    out = method.run(RunContext(seed=0, work_dir=tmp_path), task, None)
    assert [t for t, _ in out["curve"]] == [0, 200, 400]
    log = out["dynamics_log"]
    assert log[-1]["forward_model_error"] < 0.5 * log[0]["forward_model_error"]
    assert math.isfinite(log[-1]["cycle_loss"]) and out["scalars"]["train_iterations"] == 200
    assert (tmp_path / "return_curve.png").stat().st_size > 0
    result = CellResult(task, None, out)
    assert CycleLoss().compute(RunContext(seed=0), result) == {
        "cycle_loss": log[-1]["cycle_loss"]}


# -- metrics ----------------------------------------------------------------------------
def test_episodes_to_optimal_with_patience_and_not_reached() -> None:
    curve = [[0, -50], [1, -18], [2, -30], [3, -18], [4, -18], [5, -18], [6, -20]]
    res = CellResult(None, None, {"curve": curve, "optimal_return": -18.0, "episodes": 6})
    ctx = RunContext(seed=0)
    one = EpisodesToOptimal(EpisodesToOptimal.Params(patience=1)).compute(ctx, res)
    three = EpisodesToOptimal(EpisodesToOptimal.Params(patience=3)).compute(ctx, res)
    four = EpisodesToOptimal(EpisodesToOptimal.Params(patience=4)).compute(ctx, res)
    assert one["episodes_to_optimal"] == 1 and three["episodes_to_optimal"] == 3
    assert four == {"episodes_to_optimal": 7.0, "reached_optimal": 0.0,
                    "episodes_to_first_optimal": 1.0}
    final = FinalReturn().compute(ctx, res)
    assert final == {"final_return": -20.0, "optimal_return": -18.0, "final_regret": 2.0}
    assert CycleLoss().compute(ctx, CellResult(None, None, {"curve": curve})) == {}


# -- the specs through the real CLI ------------------------------------------------------
def _claim(summary: dict, start: str) -> dict:
    return next(c for c in summary["claims"] if c["text"].startswith(start))


@pytest.mark.slow
def test_tabular_spec_full_run_passes(tmp_path: Path) -> None:
    res = run_harness("run", str(TABULAR), "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res
    summary = load_summary(tmp_path / "out")
    assert all(c["passed"] for c in summary["claims"])
    agg = summary["aggregates"]
    assert agg["grid/qss/actions=400"]["final_return"]["mean"] == -18
    assert agg["grid/q-learning/actions=400"]["reached_optimal"]["mean"] == 0
    for cell in summary["cells"]:
        assert (tmp_path / "out" / "cells" / cell["id"] / "artifacts" /
                "return_curve.png").exists()


@pytest.mark.slow
def test_tabular_claim_fails_with_random_next_state_choice(tmp_path: Path) -> None:
    only = "cells={only: [{method: qss, actions: 400}]}"
    ok = run_harness("run", str(TABULAR), "--out", str(tmp_path / "ok"), "--set", only)
    broken = run_harness("run", str(TABULAR), "--out", str(tmp_path / "broken"), "--set", only,
                         "--set", "methods.qss.next_state_choice=random")
    good = _claim(load_summary(tmp_path / "ok"), "QSS reaches")
    bad = _claim(load_summary(tmp_path / "broken"), "QSS reaches")
    assert good["passed"], json.dumps(good, indent=1)
    assert ok.returncode == 1  # the other claims match no complete group here
    assert broken.returncode == 1 and not bad["passed"]
    for row in bad["groups"]:
        assert row["seeds_passed"] == 0
        assert all(v["value"] == 501 for v in row["per_seed"].values())


@pytest.mark.slow
def test_observation_spec_with_controls_every_claim_falsified(tmp_path: Path) -> None:
    spec = ROOT / "specs" / "qss-observation.yaml"
    res = run_harness("run", str(spec), "--controls", "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res
    summary = load_summary(tmp_path / "out")
    assert {c["id"]: c["status"] for c in summary["claims"]} == {
        "lfo-reaches": "PASS", "lfo-vs-qsa": "PASS", "lfo-vs-bco": "PASS"}
    table = {c["name"]: c["claims"] for c in summary["controls"]["controls"]}
    assert table["qsa-as-qss"] == {"lfo-reaches": "FAIL", "lfo-vs-qsa": "FAIL",
                                   "lfo-vs-bco": "FAIL"}
    assert table["observations-ignored"]["lfo-vs-qsa"] == "FAIL"
    bco = summary["aggregates"]["grid/bco/observer=random"]["final_return"]["mean"]
    assert bco == -200  # cloning a random policy's observations does not reach the goal


@pytest.mark.slow
def test_pendulum_spec_reduced_and_its_claim_can_fail(tmp_path: Path) -> None:
    small = ["--seeds", "0", "--set", "methods.d3g.steps=600", "--set",
             "methods.d3g.eval_every=300", "--set", "methods.d3g.eval_episodes=2",
             "--set", "methods.random.eval_episodes=2",
             "--set", "cells={only: [{method: d3g}, {method: random}]}"]
    res = run_harness("run", str(PENDULUM), "--out", str(tmp_path / "out"), *small,
                      "--set", "methods.d3g.start_steps=600")  # never trains
    summary = load_summary(tmp_path / "out")
    assert res.returncode == 1 and not summary["claims"][0]["passed"]
    d3g = next(c for c in summary["cells"] if c["axes"]["method"] == "d3g")
    assert d3g["status"] == "ok"
    assert math.isfinite(d3g["metrics"]["forward_model_error"])
    assert "cycle_loss" not in d3g["metrics"]  # no model update happened
    artifacts = tmp_path / "out" / "cells" / d3g["id"] / "artifacts"
    assert (artifacts / "return_curve.png").exists()
