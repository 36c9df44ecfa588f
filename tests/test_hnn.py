"""Hamiltonian Neural Networks (arXiv 1906.01563): the maths, the data, the loop, the
evaluation, and the spec's claims (including that they fail when the method is broken)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import harness_adapters.hnn as hnn_plugin
import numpy as np
import pytest
import torch
from conftest import SPECS, load_summary, run_harness
from harness_adapters.generic.optimizers import Adam
from harness_adapters.hnn import models as hnn_models
from harness_adapters.hnn.datasets import PendulumData, SpringData, TwoBodyData
from harness_adapters.hnn.models import (
    HNN,
    MLP,
    BaselineMLP,
    DynamicsModel,
    symplectic_gradient,
    symplectic_matrix,
)
from harness_adapters.hnn.plots import report_sections
from harness_adapters.hnn.rollout import DerivativeLoss, Rollout
from harness_adapters.hnn.systems import Pendulum, Spring, TwoBody
from harness_adapters.hnn.train import Train

from harness import RunContext
from harness.adapter import CellResult, Component


def _claim(summary: dict, text_start: str) -> dict:
    (claim,) = [c for c in summary["claims"] if c["text"].startswith(text_start)]
    return claim


# -- the symplectic gradient -------------------------------------------------------------
def test_symplectic_gradient_of_true_spring_h_is_the_true_field_exactly() -> None:
    x = torch.randn(64, 2, dtype=torch.float64, requires_grad=True)
    h = x[:, 0] ** 2 + x[:, 1] ** 2  # the official spring H = q^2 + p^2
    field = symplectic_gradient(h, x, symplectic_matrix(2))
    true = torch.from_numpy(Spring().field(0.0, x.detach().numpy()))
    assert torch.equal(field.detach(), true)  # bit-for-bit: dq/dt = 2p, dp/dt = -2q
    assert torch.equal(field.detach(), torch.stack([2 * x[:, 1], -2 * x[:, 0]], 1).detach())


def test_symplectic_gradient_of_true_pendulum_and_two_body_h() -> None:
    x = torch.randn(32, 2, dtype=torch.float64, requires_grad=True)
    h = 3 * (1 - torch.cos(x[:, 0])) + x[:, 1] ** 2
    field = symplectic_gradient(h, x, symplectic_matrix(2)).detach().numpy()
    np.testing.assert_allclose(field, Pendulum().field(0.0, x.detach().numpy()), rtol=1e-12)
    sys = TwoBody()
    s = torch.tensor(np.stack([sys.random_config(np.random.default_rng(i)) for i in range(8)]),
                     requires_grad=True)
    dist = torch.sqrt((s[:, 0] - s[:, 1]) ** 2 + (s[:, 2] - s[:, 3]) ** 2)
    h = 0.5 * (s[:, 4:] ** 2).sum(1) - 1 / dist
    field = symplectic_gradient(h, s, symplectic_matrix(8)).detach().numpy()
    np.testing.assert_allclose(field, sys.field(0.0, s.detach().numpy()), rtol=1e-10)


def test_official_permutation_tensor_convention() -> None:
    assert torch.equal(symplectic_matrix(2), torch.tensor([[0.0, 1.0], [-1.0, 0.0]]))
    m4 = symplectic_matrix(4)
    assert torch.equal(m4[:2, 2:], torch.eye(2)) and torch.equal(m4[2:, :2], -torch.eye(2))
    # field = dH @ M^T = (dH/dp, -dH/dq)
    grad = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert torch.equal(grad @ m4.t(), torch.tensor([[3.0, 4.0, -1.0, -2.0]]))


def test_hnn_field_conserves_its_learned_hamiltonian_and_conservative_does_not() -> None:
    data = SpringData(SpringData.Params(trajectories=4)).load(RunContext(seed=0))
    ctx = RunContext(seed=1)
    x = torch.randn(200, 2, requires_grad=True)
    for field_type, conserved in (("solenoidal", True), ("conservative", False)):
        model = HNN(HNN.Params(field_type=field_type)).build(ctx, data)
        head = 1 if field_type == "solenoidal" else 0
        (dh,) = torch.autograd.grad(model.net(x)[:, head].sum(), x)
        rate = (dh * model.time_derivative(x, create_graph=False)).sum(1)  # dH/dt along field
        if conserved:
            assert rate.abs().max() < 1e-6
        else:  # a plain gradient field climbs H: dH/dt = |dH/dx|^2
            torch.testing.assert_close(rate, (dh**2).sum(1))


def test_official_mlp_architecture_and_orthogonal_init() -> None:
    net = MLP(2, 200, 2, "tanh", torch.Generator().manual_seed(0))
    assert [tuple(layer.weight.shape) for layer in (net.linear1, net.linear2, net.linear3)] == [
        (200, 2), (200, 200), (2, 200)]
    assert net.linear3.bias is None and net.linear1.bias is not None
    for w in (net.linear1.weight, net.linear2.weight, net.linear3.weight):
        small = w if w.shape[0] <= w.shape[1] else w.t()
        torch.testing.assert_close(small @ small.t(), torch.eye(small.shape[0]), atol=1e-5,
                                   rtol=0)
    data = SpringData(SpringData.Params(trajectories=4)).load(RunContext(seed=0))
    base = BaselineMLP().build(RunContext(seed=3), data)
    hnn = HNN().build(RunContext(seed=3), data)
    assert base.net.linear3.out_features == 2 and hnn.net.linear3.out_features == 2
    assert base.baseline and not hnn.baseline and hnn.field_type == "solenoidal"
    again = HNN().build(RunContext(seed=3), data)
    assert all(torch.equal(a, b) for a, b in zip(hnn.parameters(), again.parameters(),
                                                 strict=True))


# -- data ----------------------------------------------------------------------------------
def test_spring_data_is_the_official_recipe() -> None:
    data = SpringData().load(RunContext(seed=0))
    assert data.x_train.shape == (750, 2) and data.x_test.shape == (750, 2)  # 50 x 30, halves
    clean = SpringData(SpringData.Params(noise_std=0.0)).load(RunContext(seed=0))
    # targets are the true derivatives of the clean states: dq/dt = 2p, dp/dt = -2q
    x, dx = clean.x_train.double(), clean.dx_train.double()
    torch.testing.assert_close(dx, torch.stack([2 * x[:, 1], -2 * x[:, 0]], 1), atol=1e-6,
                               rtol=0)
    radius = clean.x_train.norm(dim=1).reshape(25, 30)
    assert radius.min() >= 0.1 - 1e-5 and radius.max() < 1.0
    assert float((radius.max(1).values - radius.min(1).values).max()) < 1e-5  # on circles
    # the same derivative targets, with noise 0.1 added to the observed states only
    torch.testing.assert_close(data.dx_train, clean.dx_train)
    noise = data.x_train - clean.x_train
    assert abs(float(noise.std()) - 0.1) < 0.01
    assert data.protocol["time_rescale"] == pytest.approx(1.09)
    s = data.eval_states
    assert s.shape == (15, 2) and np.all((np.abs(s) > 0.2) & (np.abs(s) < 1.0))


def test_pendulum_and_two_body_data() -> None:
    data = PendulumData().load(RunContext(seed=0))
    assert data.x_train.shape == (1125, 2)  # 50 trajectories x 45 points, halves
    assert data.protocol["time_rescale"] == 1.0
    clean = PendulumData(PendulumData.Params(noise_std=0.0)).load(RunContext(seed=0))
    energy = Pendulum().hamiltonian(clean.x_train.double().numpy()).reshape(25, 45)
    assert np.ptp(energy, axis=1).max() < 1e-4  # each trajectory conserves H
    # paper's "energy" for the pendulum is q^2 + p^2, not H (official notebook)
    q = np.array([[1.0, 0.5]])
    assert Pendulum().paper_energy(q)[0] == pytest.approx(1.25)
    two = TwoBodyData(TwoBodyData.Params(trials=20, eval_rollouts=2)).load(RunContext(seed=0))
    assert two.x_train.shape == (800, 8) and two.x_test.shape == (200, 8)
    h = TwoBody().hamiltonian(two.x_train.double().numpy()).reshape(16, 50)
    assert np.ptp(h, axis=1).max() < 1e-5


# -- training and evaluation ---------------------------------------------------------------
def _train(data, model, steps: int, batch_size: int | None = None) -> dict:
    params = Train.Params(total_steps=steps, batch_size=batch_size)
    params.optimizer = Component.resolved(
        "torch/adam", Adam, Adam.Params(lr=1e-3, weight_decay=1e-4))
    return Train(params).run(RunContext(seed=5), data, model)


def test_training_follows_the_official_loop() -> None:
    data = SpringData(SpringData.Params(trajectories=10)).load(RunContext(seed=0))
    model = HNN().build(RunContext(seed=1), data)
    before = DerivativeLoss().compute(RunContext(seed=0), CellResult(data, model, {}))[
        "test_loss"]
    out = _train(data, model, steps=150)
    assert out["scalars"]["updates"] == 151  # range(total_steps + 1)
    after = DerivativeLoss().compute(RunContext(seed=0), CellResult(data, model, out))
    assert after["test_loss"] < 0.5 * before
    assert out["history"][0]["step"] == 0 and out["history"][-1]["step"] == 150


def _perfect_spring_hnn() -> DynamicsModel:
    """An HNN whose F2 head is exactly the true spring Hamiltonian."""
    class TrueH(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = (x**2).sum(1, keepdim=True)
            return torch.cat([torch.zeros_like(h), h], 1)
    return DynamicsModel(TrueH(), 2, baseline=False)  # type: ignore[arg-type]


def test_rollout_of_the_true_hamiltonian_has_no_error() -> None:
    data = SpringData(SpringData.Params(trajectories=4, rescale_time=False)).load(
        RunContext(seed=0))
    metric = Rollout(Rollout.Params(plots=False))
    out = metric.compute(RunContext(seed=0), CellResult(data, _perfect_spring_hnn(), {}))
    assert out["energy_mse"] < 1e-9 and out["state_mse"] < 1e-9
    assert out["learned_h_drift"] < 1e-5


def test_rollout_metrics_batched_match_per_trajectory(tmp_path: Path) -> None:
    data = SpringData(SpringData.Params(trajectories=10)).load(RunContext(seed=0))
    model = BaselineMLP().build(RunContext(seed=1), data)
    _train(data, model, steps=100)
    result = CellResult(data, model, {})
    ctx = RunContext(seed=0, work_dir=tmp_path / "cells" / "a" / "artifacts",
                     label="spring/baseline/train/seed=0")
    batched = Rollout().compute(ctx, result)
    single = Rollout(Rollout.Params(batched=False, plots=False)).compute(ctx, result)
    for key in ("energy_mse", "state_mse", "hamiltonian_mse"):
        assert batched[key] == pytest.approx(single[key], rel=1e-3)
    assert "learned_h_drift" not in batched  # a baseline has no learned H
    for name in ("phase_portrait.png", "energy.png", "rollouts.npz"):
        assert (ctx.work_dir / name).stat().st_size > 1000
    # an HNN cell on the same data: at the end of the run (the run-finished hook) both
    # cells get the truth/baseline/HNN comparison plots; a cell on other data does not
    hnn = HNN().build(RunContext(seed=2), data)
    ctx2 = RunContext(seed=0, work_dir=tmp_path / "cells" / "b" / "artifacts",
                      label="spring/hnn/train/seed=0")
    out = Rollout().compute(ctx2, CellResult(data, hnn, {}))
    assert "learned_h_drift" in out
    other = SpringData(SpringData.Params(trajectories=4)).load(RunContext(seed=9))
    ctx3 = RunContext(seed=0, work_dir=tmp_path / "cells" / "c" / "artifacts",
                      label="spring/hnn/train/seed=1")
    Rollout().compute(ctx3, CellResult(other, hnn, {}))
    hnn_plugin.harness_run_finished(summary={"adapters": ["hnn/rollout"]},
                                    out_dir=str(tmp_path))
    for c in (ctx.work_dir, ctx2.work_dir):
        assert (c / "compare_energy.png").exists()
        assert (c / "compare_phase_portrait.png").exists()
    assert not (ctx3.work_dir / "compare_energy.png").exists()
    # a re-run redraws nothing while the figures are newer than the rollouts, and the
    # figure is the same in both cells; a newer rollout makes it draw again
    stamp = {c: (c / "compare_energy.png").stat().st_mtime_ns
             for c in (ctx.work_dir, ctx2.work_dir)}
    assert (ctx.work_dir / "compare_energy.png").read_bytes() == (
        ctx2.work_dir / "compare_energy.png").read_bytes()
    from harness_adapters.hnn.plots import save_comparisons
    assert save_comparisons(str(tmp_path)) == 2
    assert {c: (c / "compare_energy.png").stat().st_mtime_ns for c in stamp} == stamp
    later = max(stamp.values()) + 10**9
    os.utime(ctx2.work_dir / "rollouts.npz", ns=(later, later))
    assert save_comparisons(str(tmp_path)) == 2
    assert (ctx.work_dir / "compare_energy.png").stat().st_mtime_ns > stamp[ctx.work_dir]
    sections = report_sections(str(tmp_path))  # what `harness report` adds
    assert len(sections) == 2 and sorted(s[1].count("<img") for s in sections) == [2, 2]


def test_spring_energy_claim_fails_with_identity_matrix(monkeypatch, tmp_path: Path) -> None:
    """In-process through the runner at reduced size: the HNN passes the spring energy
    claim; with the identity in place of the symplectic matrix the same claim fails."""
    from harness.executors import InProcessExecutor
    from harness.registry import get_registry
    from harness.runner import run_spec
    from harness.spec import load_spec

    sets = ["datasets.spring.trajectories=20", "methods.train.total_steps=400",
            "cells={only: [{dataset: spring}]}", "metrics=[hnn/rollout]"]

    def run(tag: str) -> dict:
        spec = load_spec(SPECS / "hnn.yaml", get_registry(), overrides=sets, seeds=[0])
        report = run_spec(spec, tmp_path / tag, executor=InProcessExecutor(),
                          cache_dir=tmp_path / "cache")
        return report.summary

    good = _claim(run("good"), "spring: baseline energy MSE")
    assert good["passed"], good
    real = symplectic_matrix
    monkeypatch.setattr(hnn_models, "symplectic_matrix", lambda n, c=True: torch.eye(n))
    bad = _claim(run("identity"), "spring: baseline energy MSE")
    monkeypatch.setattr(hnn_models, "symplectic_matrix", real)
    assert not bad["passed"], bad
    ratio = bad["groups"][0]["per_seed"]["0"]["value"]
    assert ratio < 1.0  # a gradient field does not conserve energy at all


# -- the real CLI ------------------------------------------------------------------------------
@pytest.mark.slow
def test_hnn_spec_one_seed_through_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "hnn"
    res = run_harness("run", str(SPECS / "hnn.yaml"), "--out", str(out), "--seeds", "0")
    assert res.returncode == 0, res
    summary = load_summary(out)
    spring = _claim(summary, "spring: baseline energy MSE")
    assert spring["passed"] and spring["groups"][0]["per_seed"]["0"]["value"] >= 10
    loss = _claim(summary, "spring: HNN test loss")
    assert loss["passed"] and loss["groups"][0]["value"] <= 1.10
    pend = _claim(summary, "pendulum: HNN energy MSE")
    assert pend["passed"] and pend["groups"][0]["value"] < 1.0
    cells = {c["name"]: c for c in summary["cells"]}
    hnn = cells["spring/hnn/train/seed=0"]
    assert 0.02 < hnn["metrics"]["test_loss"] < 0.06  # Table 1: 36e-3 (noise floor)
    assert hnn["metrics"]["energy_mse"] < 0.01  # Table 1: 0.38e-3
    art = out / "cells" / hnn["id"] / "artifacts"
    for name in ("phase_portrait.png", "energy.png", "compare_phase_portrait.png",
                 "compare_energy.png"):
        assert (art / name).stat().st_size > 1000, name


@pytest.mark.slow
def test_identity_matrix_breaks_the_spring_claim_through_the_cli(tmp_path: Path) -> None:
    """The official 'conservative' field is dF1/dx @ I: identity instead of symplectic."""
    out = tmp_path / "identity"
    res = run_harness("run", str(SPECS / "hnn.yaml"), "--out", str(out), "--seeds", "0",
                      "--set", "models.hnn.field_type=conservative",
                      "--set", "cells={only: [{dataset: spring}]}")
    assert res.returncode == 1, res
    summary = load_summary(out)
    spring = _claim(summary, "spring: baseline energy MSE")
    assert not spring["passed"]
    assert spring["groups"][0]["per_seed"]["0"]["value"] < 10
    assert f"FAIL [{spring['id']}] spring: baseline energy MSE" in res.stdout
    json.dumps(summary)  # the summary stays JSON


def test_a_cached_rerun_checks_the_figures_without_importing_the_plotting_stack(
        tmp_path: Path) -> None:
    names = ("compare_phase_portrait.png", "compare_energy.png")
    fresh = hnn_plugin._figures_fresh
    assert not fresh(str(tmp_path), "rollouts.npz", names)  # no rollout: plotting decides
    cells = [tmp_path / "cells" / c / "artifacts" for c in ("a", "b")]
    for art in cells:
        art.mkdir(parents=True)
        (art / "rollouts.npz").write_bytes(b"x")
    assert not fresh(str(tmp_path), "rollouts.npz", names)
    later = max((a / "rollouts.npz").stat().st_mtime_ns for a in cells) + 10**9
    for art in cells:
        for n in names:
            (art / n).write_bytes(b"png")
            os.utime(art / n, ns=(later, later))
    assert fresh(str(tmp_path), "rollouts.npz", names)
    os.utime(cells[1] / "rollouts.npz", ns=(later + 1, later + 1))  # a newer rollout
    assert not fresh(str(tmp_path), "rollouts.npz", names)
    os.utime(cells[1] / "rollouts.npz", ns=(later, later))
    (cells[0] / names[1]).unlink()
    assert not fresh(str(tmp_path), "rollouts.npz", names)
    # the hook itself: with every figure fresh it returns without importing the plots
    (cells[0] / names[1]).write_bytes(b"png")
    os.utime(cells[0] / names[1], ns=(later, later))
    probe = (f"import sys; from harness_adapters import hnn; "
             f"hnn.harness_run_finished(summary={{'adapters': ['hnn/rollout']}}, "
             f"out_dir={str(tmp_path)!r}); "
             f"print([m for m in ('matplotlib', 'torch', 'numpy') if m in sys.modules])")
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
