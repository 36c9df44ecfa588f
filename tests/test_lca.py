"""Loss Change Allocation (adapters/lca): closed forms, the official adaptive Simpson
bookkeeping, the observer inside the real classifier training, and the spec's claims."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import load_summary, run_harness
from harness_adapters.generic.datasets import Digits
from harness_adapters.generic.models import MLP
from harness_adapters.generic.optimizers import Momentum
from harness_adapters.generic.selection import UniformSelection
from harness_adapters.generic.training import TrainClassifier, TrainClassifierParams
from harness_adapters.lca.integrate import FullDataLoss, Layout, simpson_coefficients
from harness_adapters.lca.metrics import LCASummary, summarize
from harness_adapters.lca.observer import LossChangeAllocation
from torch import nn

from harness import CellResult, HarnessError, RunContext
from harness.adapter import Component
from harness.training import StepInfo, TrainingRun, snapshot


def observe(model: nn.Module, loss_fn: Any, x: torch.Tensor, y: torch.Tensor,
            thetas: list[dict[str, torch.Tensor]], tmp: Path,
            test: tuple[torch.Tensor, torch.Tensor] | None = None,
            **params: Any) -> dict[str, Any]:
    """Run the observer by hand over a given chain of parameter dicts."""
    obs = LossChangeAllocation(LossChangeAllocation.Params(save=False, **params))
    run = TrainingRun(model, loss_fn, x, y, *(test or (None, None)))
    obs.on_start(RunContext(seed=0, work_dir=tmp), run)
    for t in range(len(thetas) - 1):
        obs.on_step(StepInfo(t, thetas[t], thetas[t + 1], torch.arange(1), 0.0))
    return obs.on_end()


# -- Simpson weights ---------------------------------------------------------------------
def test_simpson_coefficients_match_the_official_pattern() -> None:
    assert simpson_coefficients(2) == [1, 4, 1]
    assert simpson_coefficients(4) == [1, 4, 2, 4, 1]
    assert simpson_coefficients(8) == [1, 4, 2, 4, 2, 4, 2, 4, 1]
    for n in (2, 4, 8, 16, 32):
        c = simpson_coefficients(n)
        assert len(c) == n + 1 and sum(c) == 3 * n
    with pytest.raises(ValueError):
        simpson_coefficients(3)


# -- a quadratic loss: LCA has a closed form ---------------------------------------------
def test_quadratic_loss_matches_the_closed_form(tmp_path: Path) -> None:
    """L(theta) = mean (x.w + b - y)^2 is quadratic: the mean gradient along a step is the
    gradient at its midpoint, Simpson is exact, and the first-order residual is
    0.5 d^T A d with A the (constant) Hessian."""
    g = torch.Generator().manual_seed(0)
    n, dim = 40, 5
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    x_te = torch.randn(15, dim, generator=g, dtype=torch.float64)
    y_te = torch.randn(15, generator=g, dtype=torch.float64)
    model = nn.Linear(dim, 1).double()

    def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (out.squeeze(-1) - target) ** 2

    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    thetas = [snapshot(model)]
    for _ in range(8):  # minibatch steps: the full-data loss does not follow a gradient flow
        idx = torch.randint(0, n, (8,), generator=g)
        opt.zero_grad()
        loss_fn(model(x[idx]), y[idx]).mean().backward()
        opt.step()
        thetas.append(snapshot(model))
    out = observe(model, loss_fn, x, y, thetas, tmp_path, (x_te, y_te), test_set=True)

    def quadratic(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
        return 2.0 / len(x) * z.T @ z, 2.0 / len(x) * z.T @ y

    hess, lin = quadratic(x, y)
    hess_te, lin_te = quadratic(x_te, y_te)

    def flat(th: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([th["weight"].reshape(-1), th["bias"].reshape(-1)])

    totals = torch.zeros(dim + 1, dtype=torch.float64)
    for t in range(8):
        a, b = flat(thetas[t]), flat(thetas[t + 1])
        d = b - a
        lca = d * (hess @ ((a + b) / 2) - lin)
        totals += lca
        assert out["layers"][t, 0] == pytest.approx(lca[:dim].sum().item(), abs=1e-13)
        assert out["layers"][t, 1] == pytest.approx(lca[dim].item(), abs=1e-13)
        assert out["first_order_residual"][t] == pytest.approx(
            0.5 * (d @ hess @ d).item(), rel=1e-9, abs=1e-14)
        assert out["helped"][t] == pytest.approx((lca < 0).double().mean().item())
        lca_te = d * (hess_te @ ((a + b) / 2) - lin_te)   # the test loss, same step
        assert out["test"]["layers"][t].sum() == pytest.approx(lca_te.sum().item(),
                                                               abs=1e-13)
    np.testing.assert_allclose(out["param_totals"], totals.numpy(), rtol=1e-10, atol=1e-14)
    assert np.abs(out["residual"]).max() < 1e-12
    assert np.abs(out["test"]["residual"]).max() < 1e-12
    assert list(out["splits"]) == [2] * 8   # exact at once: no splitting
    assert out["evaluations"] == 2 * (1 + 8 * 2)  # start, then end + midpoint; 2 sets
    s = summarize(out)
    assert s["lca_residual_rel"] < 1e-10 and s["lca_first_order_residual_rel"] > 1e-3


# -- the official adaptive splitting -----------------------------------------------------
class Scalar(nn.Module):
    """One parameter w; every example's "logit" is w, its loss exp(c w)."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([w], dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w.expand(len(x))


def explicit_simpson(w0: float, w1: float, n: int, c: float) -> float:
    """The official formula: coefficient vector . gradients / sum(coefficients) * delta."""
    coeffs = np.array(simpson_coefficients(n), dtype=np.float64)
    points = np.array([(1 - j / n) * w0 + (j / n) * w1 for j in range(n + 1)])
    k = coeffs @ (c * np.exp(c * points)) / coeffs.sum()
    return k * (w1 - w0)


@pytest.mark.parametrize("tolerance, max_splits, splits", [
    (1.0, 32, 2), (0.01, 32, 8), (1e-3, 32, 16), (1e-30, 32, 32), (1e-9, 4, 4)])
def test_adaptive_splitting_doubles_until_the_tolerance(tmp_path: Path, tolerance: float,
                                                        max_splits: int, splits: int) -> None:
    """exp on [0, 3]: Simpson's error is -0.42, -0.031, -0.0021, -1.3e-4, -8.2e-6 for
    2, 4, 8, 16, 32 pieces."""
    c, w0, w1 = 1.0, 0.0, 3.0
    model = Scalar(w0)
    x = torch.zeros(3, 1, dtype=torch.float64)
    y = torch.zeros(3)
    out = observe(model, lambda o, t: torch.exp(c * o), x, y,
                  [{"w": torch.tensor([w0], dtype=torch.float64)},
                   {"w": torch.tensor([w1], dtype=torch.float64)}], tmp_path,
                  tolerance=tolerance, max_splits=max_splits)
    dl = math.exp(c * w1) - math.exp(c * w0)
    expected = 2
    while abs(dl - explicit_simpson(w0, w1, expected, c)) > tolerance and \
            expected < max_splits:
        expected *= 2
    assert out["splits"][0] == expected == splits
    assert out["layers"][0, 0] == pytest.approx(explicit_simpson(w0, w1, expected, c),
                                                rel=1e-12)
    assert out["residual"][0] == pytest.approx(dl - explicit_simpson(w0, w1, expected, c),
                                               rel=1e-6, abs=1e-12)
    assert out["evaluations"] == 2 + (expected - 1)  # every gradient computed once
    s = summarize(out)
    assert s["lca_steps_over_tolerance"] == float(abs(out["residual"][0]) > tolerance)
    if tolerance == 1e-30:
        assert expected == 32 and s["lca_steps_over_tolerance"] == 1.0  # capped, reported


@pytest.mark.parametrize("test_set, splits", [(False, 2), (True, 16)])
def test_adaptive_criterion_takes_the_worse_of_train_and_test(tmp_path: Path, test_set: bool,
                                                              splits: int) -> None:
    """Official criterion: max(|train residual|, |test residual|) > tolerance."""
    thetas = [{"w": torch.tensor([v], dtype=torch.float64)} for v in (0.0, 3.0)]

    def loss(o: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(o * t)  # train: exp(0.1 w), nearly linear; test: exp(w)

    out = observe(Scalar(0.0), loss, torch.zeros(2, 1), torch.full((2,), 0.1), thetas,
                  tmp_path, (torch.zeros(2, 1), torch.ones(2)), test_set=test_set)
    assert out["splits"][0] == splits
    assert abs(out["residual"][0]) < 1e-6


def test_first_order_variant_uses_the_start_gradient(tmp_path: Path) -> None:
    c, w0, w1 = 1.0, 0.0, 0.5
    out = observe(Scalar(w0), lambda o, t: torch.exp(c * o), torch.zeros(2, 1),
                  torch.zeros(2), [{"w": torch.tensor([w0], dtype=torch.float64)},
                                   {"w": torch.tensor([w1], dtype=torch.float64)}],
                  tmp_path, integration="first_order")
    assert out["splits"][0] == 0 and out["evaluations"] == 2
    assert out["layers"][0, 0] == pytest.approx(c * math.exp(c * w0) * (w1 - w0))
    assert out["residual"][0] == pytest.approx(math.exp(w1) - 1 - 0.5, rel=1e-9)


def test_a_broken_chain_recomputes_the_start_point(tmp_path: Path) -> None:
    w = [torch.tensor([v], dtype=torch.float64) for v in (0.0, 0.2, 0.5, 0.7)]
    obs = LossChangeAllocation(LossChangeAllocation.Params(save=False))
    obs.on_start(RunContext(seed=0), TrainingRun(Scalar(0.0), lambda o, t: o ** 2,
                                                 torch.zeros(2, 1), torch.zeros(2)))
    obs.on_step(StepInfo(0, {"w": w[0]}, {"w": w[1]}, torch.arange(1), 0.0))
    obs.on_step(StepInfo(1, {"w": w[2]}, {"w": w[3]}, torch.arange(1), 0.0))  # jump
    out = obs.on_end()
    assert out["restarts"] == 1
    np.testing.assert_allclose(out["loss_before"], [0.0, 0.25])
    np.testing.assert_allclose(out["layers"].sum(), (0.04 - 0) + (0.49 - 0.25), atol=1e-14)


# -- loss evaluation leaves the model alone; BatchNorm and dropout ------------------------
def bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(8, 3))


def ce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(out, y, reduction="none")


def test_evaluation_does_not_disturb_the_model_and_handles_batchnorm() -> None:
    model = bn_model()
    x, y = torch.randn(50, 6), torch.randint(0, 3, (50,))
    model.train()
    model(x)  # give the running statistics a value
    state = {k: v.clone() for k, v in model.state_dict().items()}
    params = {n: p for n, p in model.named_parameters()}
    layout = Layout(params)
    theta = layout.flatten(params)
    batch = FullDataLoss(model, ce, x, y, layout, 0, "batch")
    loss1, grad1 = batch(theta)
    loss2, grad2 = batch(theta)
    assert loss1 == loss2 and torch.equal(grad1, grad2)  # dropout off: deterministic
    assert model.training and all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k                # running stats untouched
    assert all(p.grad is None for p in model.parameters())
    # batch mode = BatchNorm on the chunk's statistics, dropout off
    model.eval()
    model[1].train()
    ref = ce(model(x), y).mean().item()
    model.load_state_dict(state)
    assert loss1 == pytest.approx(ref, rel=1e-6)
    model.eval()
    running, _ = FullDataLoss(model, ce, x, y, layout, 0, "running")(theta)
    assert running == pytest.approx(ce(model(x), y).mean().item(), rel=1e-6)
    assert not model.training                             # restored to eval


def test_chunking_gives_the_full_data_mean() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.randn(53, 6), torch.randint(0, 3, (53,))
    params = dict(model.named_parameters())
    layout = Layout(params)
    theta = layout.flatten(params)
    whole = FullDataLoss(model, ce, x, y, layout, 0, "batch", torch.float64)(theta)
    chunks = FullDataLoss(model, ce, x, y, layout, 10, "batch", torch.float64)(theta)
    assert whole[0] == pytest.approx(chunks[0], rel=1e-13)
    torch.testing.assert_close(whole[1], chunks[1], rtol=1e-12, atol=1e-14)
    grads = torch.autograd.grad(ce(model(x), y).mean(),
                                list(model.parameters()))
    torch.testing.assert_close(whole[1].float(), torch.cat([g.reshape(-1) for g in grads]),
                               rtol=1e-4, atol=1e-6)


# -- inside the real classifier training -------------------------------------------------
def train_digits(tmp: Path, steps: int, observer: dict[str, Any] | None
                 ) -> tuple[dict[str, Any], nn.Module]:
    ctx = RunContext(seed=0, work_dir=tmp)
    data = Digits().load(ctx)
    model = MLP(MLP.Params(hidden=[100, 50])).build(ctx, data)
    observers = [] if observer is None else [Component.resolved(
        "lca/allocation", LossChangeAllocation, LossChangeAllocation.Params(**observer))]
    params = TrainClassifierParams(
        optimizer=Component.resolved("torch/momentum", Momentum, Momentum.Params(lr=0.05)),
        selection=Component.resolved("selection/uniform", UniformSelection,
                                     UniformSelection.Params()),
        observers=observers, steps=steps)
    return TrainClassifier(params).run(ctx, data, model), model


def test_observer_in_classifier_training_and_first_order_breaks_the_1pct_claim(
        tmp_path: Path) -> None:
    out, model = train_digits(tmp_path / "simpson", 80, {})
    _, plain = train_digits(tmp_path / "plain", 80, None)
    for a, b in zip(model.parameters(), plain.parameters(), strict=True):
        assert torch.equal(a, b)                         # training is not disturbed
    rec = out["observers"]["lca/allocation"]
    s = LCASummary().compute(RunContext(seed=0), CellResult(None, model, out))
    assert s["lca_steps"] == 80 and s["lca_restarts"] == 0
    assert s["lca_loss_start"] == pytest.approx(math.log(10), rel=0.05)
    # the observer's final loss is the training method's own final train loss
    assert s["lca_loss_end"] == pytest.approx(out["scalars"]["train_loss"], rel=1e-5)
    assert s["lca_residual_rel"] < 0.01 and s["lca_step_residual_max"] <= 1e-3
    assert s["lca_first_order_ratio"] >= 10
    assert 0.4 < s["lca_helped_fraction"] < 0.7
    # two independent accumulations: per-step per-layer sums (lca_layer/*) against the
    # per-parameter running totals, sliced by tensor; and both against the loss change
    totals, start = rec["param_totals"], 0
    for name, size in zip(rec["names"], rec["sizes"], strict=True):
        assert s[f"lca_layer/{name}"] == pytest.approx(totals[start:start + size].sum(),
                                                       rel=1e-9, abs=1e-12)
        start += size
    assert totals.sum() == pytest.approx(s["lca_loss_change"], rel=0.01)
    # among the parameters with nonzero LCA the helped share is larger (zeros excluded)
    assert s["lca_helped_fraction_nonzero"] == pytest.approx(
        np.mean(rec["helped"] / (1 - rec["zero"])))
    assert s["lca_helped_fraction_nonzero"] > s["lca_helped_fraction"]
    assert s["lca_peak_sync_ratio"] > 1.5 and 0.25 < s["lca_peak_sync_shuffled"] < 0.45
    assert (tmp_path / "simpson" / "lca_allocation.npz").exists()
    assert rec["param_totals"].shape == (64 * 100 + 100 + 100 * 50 + 50 + 50 * 10 + 10,)

    fo, _ = train_digits(tmp_path / "fo", 80, {"integration": "first_order"})
    f = summarize(fo["observers"]["lca/allocation"])
    assert f["lca_residual_rel"] > 0.01                  # the 1% claim fails
    assert f["lca_first_order_ratio"] == pytest.approx(1.0)
    assert f["lca_loss_change"] == pytest.approx(s["lca_loss_change"], rel=1e-9)


def test_ablations_break_what_they_claim_to_break(tmp_path: Path) -> None:
    """sign flipped: allocations exactly negated (same trajectory), so the sum is -dL and
    the helped share becomes the hurt share; uniform: conserves exactly but every
    parameter gets dL/P, so no layer hurts; shuffled in time: same totals, per-layer
    columns permuted, peaks no longer line up."""
    ok, _ = train_digits(tmp_path / "ok", 60, {"save": False})
    flip, _ = train_digits(tmp_path / "flip", 60, {"save": False,
                                                    "allocation_sign": "flipped"})
    uni, _ = train_digits(tmp_path / "uni", 60, {"save": False, "integration": "uniform"})
    shuf, _ = train_digits(tmp_path / "shuf", 60, {"save": False, "layer_time": "shuffled"})
    a, f, u, h = (o["observers"]["lca/allocation"] for o in (ok, flip, uni, shuf))
    np.testing.assert_array_equal(f["layers"], -a["layers"])
    np.testing.assert_array_equal(f["param_totals"], -a["param_totals"])
    np.testing.assert_allclose(f["helped"], 1 - a["helped"] - a["zero"], atol=1e-12)
    sa, sf = summarize(a, rng=np.random.default_rng(0)), summarize(f)
    assert sf["lca_sum"] == pytest.approx(-sa["lca_sum"])
    assert sf["lca_residual_rel"] > 1.9 and sf["lca_first_order_ratio"] < 2
    su = summarize(u, rng=np.random.default_rng(0))
    assert su["lca_residual_rel"] < 1e-9 and su["lca_hurting_layers"] == 0
    dl = u["loss_after"] - u["loss_before"]
    np.testing.assert_allclose(u["helped"], (dl < 0).astype(float))
    sizes = np.asarray(u["sizes"], dtype=float)
    np.testing.assert_allclose(u["layers"], dl[:, None] * sizes[None, :] / sizes.sum())
    np.testing.assert_array_equal(h["param_totals"], a["param_totals"])
    np.testing.assert_array_equal(np.sort(h["layers"], 0), np.sort(a["layers"], 0))
    assert not np.array_equal(h["layers"], a["layers"])
    sh = summarize(h, rng=np.random.default_rng(0))
    assert sh["lca_residual_rel"] == pytest.approx(sa["lca_residual_rel"])
    assert sh["lca_peak_sync_ratio"] < 1.3 < sa["lca_peak_sync_ratio"]


def test_peak_synchronization_statistic() -> None:
    from harness_adapters.lca.findings import peak_mask, peak_sync, shuffled_peak_sync
    assert peak_mask(np.array([0.0, -1, 0, -2, -1, -3, 0])).tolist() == [
        False, True, False, True, False, True, False]   # peaks of -LCA (helping)
    assert peak_mask(np.array([1.0, 2.0])).tolist() == [False, False]
    rng = np.random.default_rng(0)
    common = rng.normal(size=400)
    same = np.stack([common * s for s in (1.0, 3.0, 0.1)], axis=1)
    assert peak_sync(same) == 1.0                       # scale-free, identical timing
    noise = rng.normal(size=(400, 4))
    assert peak_sync(noise) == pytest.approx(1 / 3, abs=0.07)  # independent series
    assert shuffled_peak_sync(same, rng) == pytest.approx(1 / 3, abs=0.05)


def test_summary_without_the_observer_is_a_user_error() -> None:
    with pytest.raises(HarnessError, match="no observer"):
        LCASummary().compute(RunContext(seed=0), CellResult(None, None, {"observers": {}}))


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="power of two"):
        LossChangeAllocation.Params(splits=3)


# -- the spec through the real CLI -------------------------------------------------------
def claims_by_id(out: Path) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in load_summary(out)["claims"]}


@pytest.mark.slow
def test_spec_passes_and_every_control_falsifies_its_claims(tmp_path: Path) -> None:
    """Seed 0 through the real CLI with --controls: every claim passes on the spec, and
    each control (sign flipped, first order, uniform allocation, layers shuffled in
    time) makes its must_fail claims FAIL; the falsification table is ok."""
    res = run_harness("run", "specs/lca.yaml", "--out", str(tmp_path), "--seeds", "0",
                      "--controls")
    assert res.returncode == 0, res
    summary = load_summary(tmp_path)
    assert all(c["passed"] for c in summary["claims"])
    for cell in summary["cells"]:
        m = cell["metrics"]
        assert m["lca_steps"] == 300 and m["accuracy"] > 0.9
        assert m["lca_helped_fraction_nonzero"] > m["lca_helped_fraction"]
        art = tmp_path / "cells" / cell["id"] / "artifacts"
        for name in ("lca_layers.png", "lca_param_totals.png", "lca_conservation.png",
                     "lca_peaks.png", "lca_allocation.npz"):
            assert (art / name).stat().st_size > 1000, name
    table = summary["controls"]
    assert table["ok"], table["problems"]
    cols = {c["name"]: c["claims"] for c in table["controls"]}
    assert cols["sign-flipped"]["helped"] == "FAIL"
    assert cols["first-order"]["helped"] == "PASS"       # direction, not integration
    assert cols["uniform-allocation"]["conservation"] == "PASS"   # exact by construction
    assert cols["layers-shuffled-in-time"] == {**cols["layers-shuffled-in-time"],
                                               "conservation": "PASS", "helped": "PASS",
                                               "hurting-layer": "PASS",
                                               "synchronized-peaks": "FAIL"}
    shuffled = load_summary(tmp_path / "controls" / "layers-shuffled-in-time")
    ratios = [c["metrics"]["lca_peak_sync_ratio"] for c in shuffled["cells"]]
    assert max(ratios) < 1.3


@pytest.mark.slow
def test_without_splitting_at_high_lr_the_residual_claim_fails(tmp_path: Path) -> None:
    res = run_harness("run", "specs/lca.yaml", "--out", str(tmp_path), "--seeds", "0",
                      "--set", "methods.momentum.optimizer.lr=0.2",
                      "--set", "methods.momentum.observers.0.max_splits=2")
    assert res.returncode == 1, res
    claims = claims_by_id(tmp_path)
    assert not claims["step-residual"]["passed"]
    rows = {r["group"]: r for r in claims["step-residual"]["groups"]}
    assert rows["digits/mlp/adam"]["passed"]                 # Adam untouched still passes
    record = json.loads(next(tmp_path.glob("cells/*momentum*/record.json")).read_text())
    assert record["metrics"]["lca_splits_max"] == 2


# -- freezing tensors (train-classifier's freeze, the paper's frozen-last-layer run) ------
def train_frozen(tmp: Path, steps: int, freeze: list[str], freeze_from: int = 0
                 ) -> tuple[dict[str, Any], nn.Module, dict[str, torch.Tensor]]:
    ctx = RunContext(seed=0, work_dir=tmp)
    data = Digits().load(ctx)
    model = MLP(MLP.Params(hidden=[100, 50])).build(ctx, data)
    start = snapshot(model)
    params = TrainClassifierParams(
        optimizer=Component.resolved("torch/momentum", Momentum,
                                     Momentum.Params(lr=0.05, weight_decay=1e-3)),
        selection=Component.resolved("selection/uniform", UniformSelection,
                                     UniformSelection.Params()),
        observers=[Component.resolved("lca/allocation", LossChangeAllocation,
                                      LossChangeAllocation.Params(save=False))],
        steps=steps, freeze=freeze, freeze_from=freeze_from)
    return TrainClassifier(params).run(ctx, data, model), model, start


def test_frozen_tensors_do_not_move_and_get_zero_lca(tmp_path: Path) -> None:
    out, model, start = train_frozen(tmp_path, 40, ["5.*"])
    for name, q in model.named_parameters():
        # momentum and weight decay included: a frozen tensor is bitwise its initial value
        assert torch.equal(q, start[name]) == name.startswith("5."), name
    rec = out["observers"]["lca/allocation"]
    s = LCASummary(LCASummary.Params(groups={"last": ["5.*"], "hidden": ["1.*", "3.*"]})
                   ).compute(RunContext(seed=0), CellResult(None, model, out))
    assert s["lca_layer/5.weight"] == 0 and s["lca_layer/5.bias"] == 0
    assert s["lca_group/last"] == 0
    cols = [rec["names"].index(n) for n in ("5.weight", "5.bias")]
    assert not rec["layers"][:, cols].any()                    # zero at every iteration
    assert s["lca_group/hidden"] == pytest.approx(s["lca_sum"], rel=1e-12)
    assert s["lca_residual_rel"] < 0.01                        # still conserves the loss


def test_freeze_from_a_step_on(tmp_path: Path) -> None:
    """freeze_from k: the tensors follow the unfrozen trajectory for k steps, then stop."""
    _, free10, _ = train_frozen(tmp_path / "a", 10, [])
    _, late, start = train_frozen(tmp_path / "b", 25, ["1.weight"], freeze_from=10)
    moved = dict(late.named_parameters())
    assert torch.equal(moved["1.weight"], dict(free10.named_parameters())["1.weight"])
    assert not torch.equal(moved["1.weight"], start["1.weight"])
    assert not torch.equal(moved["3.weight"], dict(free10.named_parameters())["3.weight"])


def test_freeze_pattern_that_matches_nothing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="matches no parameter") as err:
        train_frozen(tmp_path, 2, ["fc.*"])
    assert "5.weight" in str(err.value.hint)
    with pytest.raises(HarnessError, match="groups.x"):
        out, model, _ = train_frozen(tmp_path, 2, [])
        LCASummary(LCASummary.Params(groups={"x": ["nope"]})).compute(
            RunContext(seed=0), CellResult(None, model, out))
