"""FOP and SGD-HD: hypergradients against autograd and finite differences, the P = cI
special case against SGD-HD bit for bit, Baydin's update rule, the quadratic benchmark's
exact iteration count, the fop/tuned grid search (best point, rerun, validation split that
never sees the test set), the learned P's gain along curvature, and (slow) the spec's two
parts through the real CLI at reduced size."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import run_harness
from harness_adapters.fop.hd import SGDHD
from harness_adapters.fop.optim import FOP, hypergradient, layout_for
from harness_adapters.fop.quadratic import Iterate, Minimize, QuadraticData, curvature_profile
from harness_adapters.fop.tuning import Tuned, split_validation, with_value

from harness import Component, HarnessError, Method, Params, RunContext

SPEC = Path(__file__).resolve().parents[1] / "specs" / "fop.yaml"


def tiny_net() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3), torch.nn.Tanh(), torch.nn.Flatten(),
        torch.nn.Linear(3 * 4 * 4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    x = torch.randn(16, 2, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (16,), generator=g)
    return net, x, y


def loss_at(net: torch.nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor,
            y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(torch.func.functional_call(net, params, (x,)), y)


def backward(net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
             y: torch.Tensor) -> None:
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()


# -- the hypergradient -----------------------------------------------------------------
@pytest.mark.parametrize("dense_side,momentum", [("input", 0.0), ("input", 0.9),
                                                 ("output", 0.5)])
def test_hypergradient_matches_autograd_and_finite_differences(dense_side: str,
                                                                momentum: float) -> None:
    """The M-hypergradient FOP applies equals d J(theta_{k+1}(M)) / dM at M_k, where
    theta_{k+1}(M) = theta_k - eps U_k M M^T, by autograd and by central differences."""
    net, x, y = tiny_net()
    eps = 0.3
    opt = FOP(net.parameters(), lr=eps, meta_lr=0.5, momentum=momentum, dense_side=dense_side)
    names = [n for n, _ in net.named_parameters()]
    params = dict(net.named_parameters())
    for _ in range(3):  # move M away from the identity first
        theta_k = {n: p.detach().clone() for n, p in params.items()}
        backward(net, opt, x, y)
        opt.step()
    st = {n: opt.state[params[n]] for n in names}
    lays = {n: st[n]["layout"] for n in names}
    assert all(lay is not None for lay in lays.values())
    m_k = {n: st[n]["M"].clone() for n in names}
    assert any((m_k[n] - torch.eye(len(m_k[n]), dtype=torch.float64)).abs().max() > 1e-3
               for n in names)
    u_k = {n: st[n]["prev"].clone() for n in names}

    def theta_next(ms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {n: theta_k[n] - eps * lays[n].from_block(u_k[n] @ ms[n] @ ms[n].t())
                for n in names}

    # the optimizer really took that step
    for n in names:
        torch.testing.assert_close(theta_next(m_k)[n], params[n].detach(), rtol=0, atol=1e-13)
    mv = {n: m_k[n].clone().requires_grad_(True) for n in names}
    auto = dict(zip(names, torch.autograd.grad(loss_at(net, theta_next(mv), x, y),
                                               [mv[n] for n in names]), strict=True))
    backward(net, opt, x, y)
    opt.step()  # computes dJ(theta_{k+1})/dM_k from the gradient at theta_{k+1}
    g = torch.Generator().manual_seed(1)
    for n in names:
        analytic = st[n]["hypergradient"]
        rel = float((analytic - auto[n]).norm() / auto[n].norm())
        assert rel < 1e-4, (n, rel)
        # central finite differences along two random directions
        for _ in range(2):
            d = torch.randn(m_k[n].shape, generator=g, dtype=torch.float64)
            h = 1e-6
            plus = {**m_k, n: m_k[n] + h * d}
            minus = {**m_k, n: m_k[n] - h * d}
            with torch.no_grad():
                fd = (loss_at(net, theta_next(plus), x, y)
                      - loss_at(net, theta_next(minus), x, y)) / (2 * h)
            exact = float((analytic * d).sum())
            assert abs(float(fd) - exact) <= 1e-4 * max(abs(exact), 1e-8), (n, float(fd), exact)


def test_scalar_hypergradient_matches_autograd() -> None:
    net, x, y = tiny_net()
    eps, c0 = 0.3, 0.8
    opt = FOP(net.parameters(), lr=eps, meta_lr=0.2, momentum=0.9, structure="scalar",
              init_scale=c0)
    params = dict(net.named_parameters())
    for _ in range(3):
        theta_k = {n: p.detach().clone() for n, p in params.items()}
        backward(net, opt, x, y)
        opt.step()
    c_k = opt.scalar_state["c"]
    dirs = {n: opt.state[p]["momentum_buffer"].clone() for n, p in params.items()}
    c = torch.tensor(c_k, dtype=torch.float64, requires_grad=True)
    nxt = {n: theta_k[n] - eps * c * dirs[n] for n in params}
    (auto,) = torch.autograd.grad(loss_at(net, nxt, x, y), [c])
    backward(net, opt, x, y)
    opt.step()
    assert abs(opt.scalar_state["hypergradient"] - float(auto)) < 1e-10 * abs(float(auto))


def test_hypergradient_association_independent() -> None:
    """Both ways of associating the products give the same matrix."""
    g = torch.Generator().manual_seed(3)
    for rows, cols in [(2, 40), (64, 9), (5, 5)]:
        gr = torch.randn(rows, cols, generator=g, dtype=torch.float64)
        up = torch.randn(rows, cols, generator=g, dtype=torch.float64)
        m = torch.randn(cols, cols, generator=g, dtype=torch.float64)
        ref = -0.7 * (up.t() @ gr + gr.t() @ up) @ m
        torch.testing.assert_close(hypergradient(gr, up, m, 0.7), ref)


# -- the special cases -----------------------------------------------------------------
@pytest.mark.parametrize("momentum,nesterov,wd", [(0.0, False, 0.0), (0.5, False, 0.0),
                                                  (0.5, True, 0.0), (0.5, False, 0.125)])
def test_scalar_fop_equals_sgd_hd_exactly(momentum: float, nesterov: bool, wd: float) -> None:
    """P restricted to cI: FOP's updates are SGD-HD's with alpha = eps c, beta = rho eps^2,
    bit for bit (powers-of-two constants make those products exact)."""
    net, x, y = tiny_net()
    n1, n2 = copy.deepcopy(net), copy.deepcopy(net)
    eps, c0, rho = 0.5, 0.25, 2.0**-4
    o1 = FOP(n1.parameters(), lr=eps, meta_lr=rho, momentum=momentum, nesterov=nesterov,
             weight_decay=wd, structure="scalar", init_scale=c0)
    o2 = SGDHD(n2.parameters(), lr=eps * c0, momentum=momentum, nesterov=nesterov,
               weight_decay=wd, hypergrad_lr=rho * eps**2)
    lrs = []
    for _ in range(25):
        for n, o in ((n1, o1), (n2, o2)):
            backward(n, o, x, y)
            o.step()
        for a, b in zip(n1.parameters(), n2.parameters(), strict=True):
            assert torch.equal(a, b)
        assert eps * o1.scalar_state["c"] == o2.param_groups[0]["lr"]
        lrs.append(o2.param_groups[0]["lr"])
    assert len(set(lrs)) > 20  # the learning rate really moved


def test_scalar_fop_matches_sgd_hd_any_constants() -> None:
    net, x, y = tiny_net()
    n1, n2 = copy.deepcopy(net), copy.deepcopy(net)
    eps, c0, rho = 0.3, 0.7, 0.013
    o1 = FOP(n1.parameters(), lr=eps, meta_lr=rho, momentum=0.9, structure="scalar",
             init_scale=c0)
    o2 = SGDHD(n2.parameters(), lr=eps * c0, momentum=0.9, hypergrad_lr=rho * eps**2)
    for _ in range(25):
        for n, o in ((n1, o1), (n2, o2)):
            backward(n, o, x, y)
            o.step()
    for a, b in zip(n1.parameters(), n2.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_meta_lr_zero_is_the_base_optimizer(momentum: float, nesterov: bool) -> None:
    net, x, y = tiny_net()
    n1, n2 = copy.deepcopy(net), copy.deepcopy(net)
    o1 = FOP(n1.parameters(), lr=0.2, meta_lr=0.0, momentum=momentum, nesterov=nesterov)
    o2 = torch.optim.SGD(n2.parameters(), lr=0.2, momentum=momentum, nesterov=nesterov)
    for _ in range(10):
        for n, o in ((n1, o1), (n2, o2)):
            backward(n, o, x, y)
            o.step()
    for a, b in zip(n1.parameters(), n2.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


def test_sgd_hd_follows_baydins_rule() -> None:
    """Hand-computed: lr_t = lr_{t-1} + beta <g_t, d_{t-1}> with d the post-momentum
    direction (zeros before the first step), lr updated before the step that uses it."""
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    a = np.array([[3.0, 0.5], [0.5, 1.0]])
    opt = SGDHD([w], lr=0.1, momentum=0.5, hypergrad_lr=0.01)
    th, lr, buf, d_prev = np.array([1.0, -2.0]), 0.1, None, np.zeros(2)
    for _ in range(4):
        opt.zero_grad()
        (0.5 * w @ torch.tensor(a) @ w).backward()
        opt.step()
        g = a @ th
        lr = lr + 0.01 * float(g @ d_prev)
        buf = g.copy() if buf is None else 0.5 * buf + g
        th = th - lr * buf
        d_prev = buf.copy()
        np.testing.assert_allclose(w.detach().numpy(), th, rtol=1e-13)
        assert abs(opt.param_groups[0]["lr"] - lr) < 1e-15
    assert lr > 0.1  # successive gradients align here: the learning rate grows


# -- structure -------------------------------------------------------------------------
def test_layouts() -> None:
    conv = layout_for((32, 16, 3, 3))
    assert (conv.rows, conv.cols) == (512, 9)  # spatial P shared by all channel pairs
    dense_in = layout_for((64, 512))
    dense_out = layout_for((64, 512), dense_side="output")
    assert (dense_in.cols, dense_out.cols, dense_out.rows) == (512, 64, 512)
    w = torch.arange(64 * 512.0).reshape(64, 512)
    assert torch.equal(dense_out.from_block(dense_out.to_block(w)), w)
    assert layout_for((10,)).cols == 10 and layout_for((10,), vectors="none") is None
    assert layout_for((64, 2000)) is None and layout_for((64, 512), dense_side="none") is None
    assert layout_for(()) is None


def test_conv_update_shares_one_spatial_preconditioner() -> None:
    conv = torch.nn.Conv2d(4, 5, 3).double()
    opt = FOP(conv.parameters(), lr=0.1, meta_lr=0.0)
    m = torch.randn(9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    before = conv.weight.detach().clone()
    conv.weight.grad = torch.randn_like(conv.weight)
    conv.bias.grad = torch.zeros_like(conv.bias)
    opt.step()  # initializes state with M = I
    opt.state[conv.weight]["M"] = m.clone()
    before = conv.weight.detach().clone()
    opt.step()
    step = (before - conv.weight.detach()) / 0.1
    p = m @ m.t()
    for co in range(5):
        for ci in range(4):
            torch.testing.assert_close(step[co, ci].reshape(9),
                                       p @ conv.weight.grad[co, ci].reshape(9))


def test_preconditioner_stays_psd_under_large_meta_steps() -> None:
    net, x, y = tiny_net()
    opt = FOP(net.parameters(), lr=0.1, meta_lr=5.0)
    for _ in range(20):
        backward(net, opt, x, y)
        opt.step()
    for pmat in opt.preconditioners().values():
        eig = torch.linalg.eigvalsh(pmat)
        assert float(eig.min()) >= -1e-10 * max(1.0, float(eig.max()))


# -- the quadratic benchmark -----------------------------------------------------------
def test_quadratic_dataset() -> None:
    data = QuadraticData(QuadraticData.Params(dim=12, condition=50.0)).load(RunContext(seed=4))
    a = data.a
    assert torch.allclose(a, a.t())
    eig = torch.linalg.eigvalsh(a)
    assert math.isclose(float(eig.max() / eig.min()), 50.0, rel_tol=1e-9)
    assert float(data.loss(data.theta_star)) == 0.0
    assert math.isclose(float((data.theta0 - data.theta_star).norm()), 1.0, rel_tol=1e-12)


def test_minimize_counts_iterations_exactly() -> None:
    """Axis-aligned quadratic + SGD: the loss after t steps is known in closed form."""
    from harness_adapters.generic.optimizers import SGD

    from harness import Component

    data = QuadraticData(QuadraticData.Params(dim=6, condition=20.0, rotate=False)).load(
        RunContext(seed=1))
    lr, tol = 0.3, 1e-5
    comp = Component.resolved("torch/sgd", SGD, SGD.Params(lr=lr))
    method = Minimize(Minimize.Params(optimizer=comp, steps=600, tol=tol))
    out = method.run(RunContext(seed=0), data, Iterate(data.theta0))
    lam = data.eigenvalues.numpy()
    e0 = (data.theta0 - data.theta_star).numpy()

    def rel(t: int) -> float:
        return float((lam * e0**2 * (1 - lr * lam) ** (2 * t)).sum() / (lam * e0**2).sum())

    expected = next(t for t in range(1, 601) if rel(t) <= tol)
    assert out["scalars"]["iterations"] == expected
    assert math.isclose(out["scalars"]["final_loss"], rel(600), rel_tol=1e-6)
    assert out["scalars"]["diverged"] == 0.0


# -- fop/tuned: grid search inside a cell ----------------------------------------------
def _sgd_minimize(lr: float = 0.1, steps: int = 400) -> Component:
    from harness_adapters.generic.optimizers import SGD

    opt = Component.resolved("torch/sgd", SGD, SGD.Params(lr=lr))
    return Component.resolved("fop/minimize", Minimize,
                              Minimize.Params(optimizer=opt, steps=steps, tol=1e-5,
                                              stop_at_tol=True))


def test_with_value_sets_nested_params_and_validates() -> None:
    comp = _sgd_minimize()
    new = with_value(comp.params, "optimizer.lr", 0.7, "here")
    assert new.optimizer.params.lr == 0.7 and comp.params.optimizer.params.lr == 0.1
    assert new.steps == 400 and new.optimizer.use == "torch/sgd"
    with pytest.raises(HarnessError, match="has no param 'lrr'"):
        with_value(comp.params, "optimizer.lrr", 0.7, "here")
    with pytest.raises(HarnessError, match="not valid"):
        with_value(comp.params, "optimizer.lr", -1.0, "here")
    with pytest.raises(HarnessError, match="not a component"):
        with_value(comp.params, "steps.lr", 1, "here")


def test_tuned_picks_the_best_point_and_reruns_it(tmp_path: Path) -> None:
    """On an axis-aligned quadratic SGD's iterations fall with lr up to the stability edge
    (2/lambda_max = 2): the grid's best is the largest stable lr, 2.5 diverges (NaN, worst),
    and the cell's outputs are exactly a direct run at that lr."""
    data = QuadraticData(QuadraticData.Params(dim=6, condition=10.0, rotate=False)).load(
        RunContext(seed=1))
    grid = [0.5, 1.0, 1.5, 2.5]
    tuned = Tuned(Tuned.Params(method=_sgd_minimize(), grid={"optimizer.lr": grid},
                               select="iterations"))
    ctx = RunContext(seed=3, work_dir=tmp_path)
    out = tuned.run(ctx, data, Iterate(data.theta0))
    its = [row["iterations"] for row in out["tuning"]]
    assert [row["lr"] for row in out["tuning"]] == grid
    assert its[0] > its[1] > its[2] and math.isnan(its[3]), its
    assert out["scalars"]["tuned_lr"] == 1.5 and out["scalars"]["tuning_runs"] == 5
    direct = Minimize(with_value(_sgd_minimize().params, "optimizer.lr", 1.5, "t")).run(
        RunContext(seed=0), data, Iterate(data.theta0))
    assert out["scalars"]["iterations"] == direct["scalars"]["iterations"] == its[2]
    assert (tmp_path / "tuning.png").is_file()
    assert max(Tuned(Tuned.Params(method=_sgd_minimize(), grid={"optimizer.lr": grid},
                                  select="iterations", mode="max")).run(
        ctx, data, Iterate(data.theta0))["tuning"], key=lambda r: r["lr"])["lr"] == 2.5


def test_split_validation_is_stratified_and_disjoint() -> None:
    from harness.data import ClassificationData

    y = torch.arange(100) % 4
    x = torch.arange(100, dtype=torch.float32)[:, None]
    data = ClassificationData(x, y, x[:10], y[:10], num_classes=4)
    cut = split_validation(data, 0.2, np.random.default_rng(0))
    seen = set(cut.x_train[:, 0].tolist()) | set(cut.x_test[:, 0].tolist())
    assert len(cut.y_test) == 20 and len(cut.y_train) == 80 and len(seen) == 100
    assert torch.bincount(cut.y_test).tolist() == [5, 5, 5, 5]


def test_tuned_selects_on_validation_and_never_sees_the_test_split() -> None:
    """Grid runs get a held-out part of the training split as their "test" set; only the
    refit of the winner sees the real test split."""
    from harness.data import ClassificationData

    seen: list[tuple[int, float]] = []

    class Probe(Method):
        name = "test/probe"

        class Params(Params):
            lr: float = 0.1

        def run(self, ctx: RunContext, data: ClassificationData, model: object
                ) -> dict[str, object]:
            seen.append((len(data.y_test), self.params.lr))
            logits = torch.zeros(len(data.y_test), 2)
            logits[:, 1] = self.params.lr - 0.2  # lr 0.3 predicts class 1, others class 0
            return {"test_logits": logits, "test_targets": data.y_test}

    y = torch.tensor([0] * 30 + [1] * 70)
    x = torch.zeros(100, 1)
    data = ClassificationData(x, y, x[:9], torch.zeros(9, dtype=torch.long), num_classes=2)
    probe = Component.resolved("test/probe", Probe, Probe.Params())
    tuned = Tuned(Tuned.Params(method=probe, grid={"lr": [0.1, 0.3]}, select="accuracy",
                               mode="max", validation=0.2))
    out = tuned.run(RunContext(seed=0), data, None)
    assert seen == [(20, 0.1), (20, 0.3), (9, 0.3)]  # validation is 70 % class 1
    assert out["scalars"]["tuned_lr"] == 0.3
    assert out["scalars"]["tuning_best_accuracy"] == pytest.approx(0.7)
    with pytest.raises(HarnessError, match="needs classification data"):
        tuned.run(RunContext(seed=0), object(), None)


def test_curvature_profile() -> None:
    data = QuadraticData(QuadraticData.Params(dim=8, condition=30.0)).load(RunContext(seed=2))
    ones = curvature_profile(torch.eye(8, dtype=torch.float64), data)
    assert all(math.isclose(g, 1.0, rel_tol=1e-12) for _, g in ones)
    along = curvature_profile(data.a, data)  # P = A: gain lambda_i along q_i
    assert [lam for lam, _ in along] == sorted(data.eigenvalues.tolist(), reverse=True)
    assert all(math.isclose(lam, g, rel_tol=1e-9) for lam, g in along)


# -- the spec through the CLI ----------------------------------------------------------
QUAD_ONLY = ("cells.only=[{dataset: quadratic, model: iterate, method: {in: [min-sgd, "
             "min-fop, min-sgd-tuned, min-hd-tuned, min-fop-tuned]}}]")


def _claim(out: Path, start: str) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    return next(c for c in summary["claims"] if c["text"].startswith(start))


def _per_seed(claim: dict) -> list[float]:
    return [v["value"] for v in claim["groups"][0]["per_seed"].values()]


@pytest.mark.slow
def test_spec_quadratic_at_tuned_learning_rates(tmp_path: Path) -> None:
    """Seed 0 of the quadratic part: every optimizer tuned on the grid picks lr 1.95 (the
    edge of stability is 2), tuned FOP saves only ~2 % over tuned SGD (the 0.95 claim does
    not hold), the fixed-rate FOP converges and its P grows along high curvature."""
    run_harness("run", str(SPEC), "--out", str(tmp_path), "--set", QUAD_ONLY, "--seeds", "0")
    cells = {c["axes"]["method"]: c["metrics"]
             for c in json.loads((tmp_path / "summary.json").read_text())["cells"]}
    assert {cells[m]["tuned_lr"] for m in ("min-sgd-tuned", "min-hd-tuned",
                                           "min-fop-tuned")} == {1.95}
    assert cells["min-sgd-tuned"]["iterations"] < cells["min-sgd"]["iterations"] / 20
    vs_sgd = _per_seed(_claim(tmp_path, "quadratic: tuned FOP needs <= 0.95x the iterations "
                                        "of tuned SGD,"))
    assert len(vs_sgd) == 1 and 0.95 < vs_sgd[0] < 1.0, vs_sgd
    assert _claim(tmp_path, "quadratic: FOP (eps 0.05, rho 100) reaches")["passed"]
    fop = cells["min-fop"]
    assert fop["p_top_curvature"] / fop["p_low_curvature"] > 4
    assert fop["effective_condition"] > 10 * fop["condition"]  # worse conditioned at eps 0.05
    tuned = cells["min-fop-tuned"]
    assert tuned["effective_condition"] < tuned["condition"]  # better at the tuned point
    assert tuned["p_top_curvature"] < 1 < tuned["p_low_curvature"]
    assert len(list(tmp_path.rglob("preconditioner_curvature.png"))) == 2


@pytest.mark.slow
def test_spec_digits_through_generic_training(tmp_path: Path) -> None:
    """Digits, reduced (1 seed, 2 epochs, 2 learning rates): fop/tuned wraps
    torch/train-classifier with and without FOP, scores on a validation split, reports the
    tuning table, FOP's spectra and CPU times, and only the refit writes artifacts."""
    sets = ["cells.only=[{dataset: digits, model: cnn, method: {in: [train-sgd-tuned, "
            "train-fop-tuned]}}]"]
    for m in ("train-sgd-tuned", "train-fop-tuned"):
        sets += [f"methods.{m}.method.epochs=2", f"methods.{m}.grid={{optimizer.lr: [0.1, 0.3]}}"]
    run_harness("run", str(SPEC), "--out", str(tmp_path), "--seeds", "0",
                *[a for s in sets for a in ("--set", s)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    cells = {c["axes"]["method"]: c for c in summary["cells"]}
    assert all(c["status"] == "ok" for c in cells.values()), cells
    fop, sgd = cells["train-fop-tuned"]["metrics"], cells["train-sgd-tuned"]["metrics"]
    assert fop["accuracy"] > 0.75 and sgd["accuracy"] > 0.75, (fop, sgd)  # chance: 0.1
    for m in (fop, sgd):
        assert m["tuned_lr"] in (0.1, 0.3) and m["tuning_runs"] == 3
        assert 0 < m["optimizer_step_cpu_ms"] < m["step_cpu_ms"]
        assert m["non_optimizer_cpu_ms"] == pytest.approx(m["step_cpu_ms"]
                                                          - m["optimizer_step_cpu_ms"])
    assert fop["p_blocks"] == 8 and fop["p_eig_min"] < 1.0 < fop["p_eig_max"] + 1e-2
    record = json.loads(next(tmp_path.rglob("record.json")).read_text())
    assert [set(r) for r in record["outputs"]["tuning"]] == [{"lr", "accuracy"}] * 2
    arts = list(tmp_path.rglob("preconditioner_spectrum.png"))
    assert len(arts) == 1 and "train-fop-tuned" in str(arts[0])
    assert len(list(tmp_path.rglob("tuning.png"))) == 2


@pytest.mark.slow
@pytest.mark.parametrize("control", ["flipped-hypergradient", "no-meta-step"])
def test_spec_controls_break_the_preconditioner_claims(control: str, tmp_path: Path) -> None:
    """The spec's own control overrides, on the fixed-rate FOP at seed 0: ascending the
    hypergradient collapses P (the tolerance is never reached, P shrinks along high
    curvature); without the meta step P stays I (gain ratio 1 exactly)."""
    import yaml

    spec = yaml.safe_load(SPEC.read_text())
    ctl = next(c for c in spec["controls"] if c["name"] == control)
    sets = [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}"
            for k, v in ctl["set"].items()]
    sets.append("cells.only=[{dataset: quadratic, model: iterate, method: min-fop}]")
    run_harness("run", str(SPEC), "--out", str(tmp_path), "--seeds", "0",
                *[a for s in sets for a in ("--set", s)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    status = {c["id"]: c for c in summary["claims"]}
    assert not status["quad-p-curvature"]["passed"]
    ratio = _per_seed(status["quad-p-curvature"])[0]
    if control == "no-meta-step":
        assert ratio == pytest.approx(1.0, abs=1e-12)
        assert status["quad-reaches-tol"]["passed"]  # it is SGD at lr 0.05
    else:
        assert ratio < 1 and not status["quad-reaches-tol"]["passed"]


def test_adapter_restricted_to_some_parameters() -> None:
    """Training methods may hand the optimizer a subset (e.g. one task's scores)."""
    from harness_adapters.fop.components import FOPOptimizer

    net, x, y = tiny_net()
    last = list(net.parameters())[-2:]
    frozen = [p.detach().clone() for p in list(net.parameters())[:-2]]
    opt = FOPOptimizer(FOPOptimizer.Params(lr=0.1, meta_lr=0.1, base="momentum")).build(
        RunContext(seed=0), net, last)
    assert isinstance(opt, FOP) and opt.param_names[id(last[0])] == "5.weight"
    for _ in range(3):
        backward(net, opt, x, y)
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(frozen, list(net.parameters())[:-2],
                                                 strict=True))
    assert set(opt.preconditioners()) == {"5.weight", "5.bias"}
