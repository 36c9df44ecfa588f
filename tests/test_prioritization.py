"""Loss-based prioritization under noise (arXiv 2107.07741): noise wrappers, selection
policies, metrics, and the spec's claims (including a broken policy that must fail them)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import SPECS, load_summary, run_harness
from harness_adapters.generic.datasets import Digits
from harness_adapters.generic.models import MLP
from harness_adapters.generic.training import TrainClassifier
from harness_adapters.prioritization.metrics import Curve, NoisyShare, SelectionTrace, ToTarget
from harness_adapters.prioritization.noise import InputCorruption, LabelNoise
from harness_adapters.prioritization.selection import LossHistory, SelectiveBackprop, TopLoss

from harness import Component, RunContext
from harness.adapter import CellResult
from harness.data import ClassificationData
from harness.executors import InProcessExecutor
from harness.registry import get_registry
from harness.runner import run_spec
from harness.spec import load_spec

SPEC = SPECS / "loss-prioritization.yaml"


def resolved(cls: Any, **params: Any) -> Component:
    return Component.resolved(cls.name, cls, cls.Params(**params))


def digits() -> Component:
    return resolved(Digits)


def wrap(cls: Any, inner: Component, **params: Any) -> Component:
    p = cls.Params(dataset={"use": "sklearn/digits"}, **params)
    p.dataset = inner
    return Component.resolved(cls.name, cls, p)


def load(comp: Component, seed: int = 7) -> ClassificationData:
    return comp.build().load(RunContext(seed=seed))


# -- noise wrappers ----------------------------------------------------------------------
def test_label_noise_flips_exactly_the_requested_fraction_and_leaves_test_untouched() -> None:
    clean = Digits().load(RunContext(seed=7).derive("inner"))  # what the wrapper wraps
    for rate in (0.3, 0.5):
        data = load(wrap(LabelNoise, digits(), rate=rate))
        n = clean.n_train
        changed = data.y_train != clean.y_train
        assert int(changed.sum()) == round(rate * n)
        assert torch.equal(changed, data.meta["noisy"])
        assert data.meta["noisy"].dtype == torch.bool
        assert torch.equal(data.meta["clean_y_train"], clean.y_train)
        assert torch.equal(data.x_train, clean.x_train)
        assert torch.equal(data.x_test, clean.x_test)
        assert torch.equal(data.y_test, clean.y_test)
        # uniform flips reach every other class, about equally
        moved = (data.y_train[changed] - clean.y_train[changed]) % 10
        assert set(moved.tolist()) == set(range(1, 10))


def test_label_noise_is_reproducible_and_seeded() -> None:
    comp = wrap(LabelNoise, digits(), rate=0.3)
    a, b, c = load(comp, 1), load(comp, 1), load(comp, 2)
    assert torch.equal(a.meta["noisy"], b.meta["noisy"])
    assert not torch.equal(a.meta["noisy"], c.meta["noisy"])


def test_class_conditional_noise_flips_each_class_to_its_pair() -> None:
    clean = Digits().load(RunContext(seed=7).derive("inner"))
    data = load(wrap(LabelNoise, digits(), rate=0.3, mode="class-conditional"))
    noisy = data.meta["noisy"]
    assert int(noisy.sum()) == round(0.3 * clean.n_train)
    assert torch.equal(data.y_train[noisy], (clean.y_train[noisy] + 1) % 10)
    for c in range(10):
        members = clean.y_train == c
        assert abs(int(noisy[members].sum()) - 0.3 * int(members.sum())) <= 1
    only = load(wrap(LabelNoise, digits(), rate=0.5, mode="class-conditional",
                     transitions={3: 8, 8: 3}))
    flipped = only.meta["noisy"]
    assert set(clean.y_train[flipped].tolist()) == {3, 8}
    n38 = int(((clean.y_train == 3) | (clean.y_train == 8)).sum())
    assert int(flipped.sum()) == round(0.5 * n38)


def test_input_corruption_replaces_exactly_the_fraction() -> None:
    clean = Digits().load(RunContext(seed=7).derive("inner"))
    data = load(wrap(InputCorruption, digits(), fraction=0.3))
    noisy = data.meta["noisy"]
    assert int(noisy.sum()) == round(0.3 * clean.n_train)
    rows_changed = (data.x_train != clean.x_train).any(dim=1)
    assert torch.equal(rows_changed, noisy)
    assert torch.equal(data.y_train, clean.y_train)
    assert torch.equal(data.x_test, clean.x_test) and torch.equal(data.y_test, clean.y_test)
    # noise at the scale of the features
    assert abs(float(data.x_train[noisy].mean() - clean.x_train.mean())) < 0.05


def test_wrappers_compose_and_merge_masks() -> None:
    inner = wrap(InputCorruption, digits(), fraction=0.2)
    data = load(wrap(LabelNoise, inner, rate=0.2))
    kinds = [c["kind"] for c in data.meta["corruptions"]]
    assert kinds == ["input-corruption", "label-noise"]
    assert int(data.meta["noisy"].sum()) > round(0.2 * data.n_train)


# -- selection policies ------------------------------------------------------------------
class FakeLosses:
    """losses_of over a fixed loss table, counting calls."""

    def __init__(self, losses: torch.Tensor) -> None:
        self.losses, self.calls = losses, 0

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        self.calls += len(idx)
        return self.losses[idx]


def policy(cls: Any, n: int, seed: int = 0, **params: Any) -> Any:
    pol = cls(cls.Params(**params))
    pol.start(RunContext(seed=seed), n)
    return pol


def test_loss_history_is_fifo_and_counts_strictly_smaller() -> None:
    h = LossHistory(4)
    h.extend(np.array([1.0, 2.0, 3.0, 4.0]))
    assert h.percentile(np.array([3.0, 0.5, 9.0])).tolist() == [0.5, 0.0, 1.0]
    h.extend(np.array([5.0]))  # evicts 1.0
    assert h.percentile(np.array([3.0])).tolist() == [0.25]


def test_selective_backprop_primes_one_epoch_then_ranks_the_batch_with_history() -> None:
    n = 64
    losses = FakeLosses(torch.arange(n, dtype=torch.float32))
    pol = policy(SelectiveBackprop, n, beta=1.0)
    for start in (0, 32):  # one epoch of candidates: all kept, no history kept, but the
        cand = torch.arange(start, start + 32)  # forward pass runs (the authors' trainer)
        assert torch.equal(pol.select(cand, losses), cand)
    assert losses.calls == 64 and pol.hist.count == 0
    # first selective batch: history = this batch; percentile = rank / 32, so the lowest
    # loss is never kept and the keep rate is about (0 + ... + 31) / 32 / 32
    kept = [pol.select(torch.arange(32), losses) for _ in range(1)]
    assert losses.calls == 96
    assert 0 not in kept[0].tolist()
    assert pol.hist.count == 32


def test_selective_backprop_keeps_a_third_and_prefers_high_losses() -> None:
    n = 10_000
    gen = torch.Generator().manual_seed(0)
    losses = FakeLosses(torch.rand(n, generator=gen))
    pol = policy(SelectiveBackprop, n, prime_epochs=0)
    counts = torch.zeros(n)
    for i in range(0, n, 32):
        counts[pol.select(torch.arange(i, min(n, i + 32)), losses)] += 1
    rate = counts.mean().item()
    assert 0.30 < rate < 0.36  # E[U^2] = 1/3
    top, bottom = losses.losses > 0.9, losses.losses < 0.1
    assert counts[top].mean() > 0.7 and counts[bottom].mean() < 0.03
    stats = pol.stats()
    assert stats["primed"] == 0 and abs(stats["mean_keep_probability"] - rate) < 0.02


def test_random_calculator_keeps_a_third_whatever_the_loss() -> None:
    n = 10_000
    losses = FakeLosses(torch.rand(n, generator=torch.Generator().manual_seed(0)))
    pol = policy(SelectiveBackprop, n, prime_epochs=0, calculator="random")
    counts = torch.zeros(n)
    for i in range(0, n, 32):
        counts[pol.select(torch.arange(i, min(n, i + 32)), losses)] += 1
    assert losses.calls == n  # the selection forward pass runs (and counts) all the same
    assert 0.30 < counts.mean().item() < 0.36
    top, bottom = losses.losses > 0.9, losses.losses < 0.1
    assert abs(counts[top].mean() - counts[bottom].mean()) < 0.08


def test_floor_and_beta_shape_the_keep_probability() -> None:
    n = 6400
    losses = FakeLosses(torch.rand(n, generator=torch.Generator().manual_seed(1)))
    rates = {}
    for beta, floor in ((1.0, 0.0), (3.0, 0.0), (3.0, 0.5)):
        pol = policy(SelectiveBackprop, n, prime_epochs=0, beta=beta, floor=floor)
        kept = sum(len(pol.select(torch.arange(i, i + 32), losses)) for i in range(0, n, 32))
        rates[(beta, floor)] = kept / n
    assert abs(rates[(1.0, 0.0)] - 0.5) < 0.03
    assert abs(rates[(3.0, 0.0)] - 0.25) < 0.03
    # E[max(0.5, U^3)] = 0.5 * 0.5**(1/3) + (1 - 0.5**(4/3)) / 4 = 0.548
    assert abs(rates[(3.0, 0.5)] - 0.548) < 0.03


def test_top_loss_keeps_exactly_the_highest_fraction() -> None:
    n = 96
    losses = FakeLosses(torch.randperm(n, generator=torch.Generator().manual_seed(0)).float())
    pol = policy(TopLoss, n, prime_epochs=0, keep=1 / 3)
    total = 0
    for i in range(0, n, 32):
        cand = torch.arange(i, i + 32)
        kept = pol.select(cand, losses)
        total += len(kept)
        assert set(kept.tolist()) == set(cand[losses.losses[cand].argsort()[-len(kept):]].tolist())
    assert total == 32  # 10.67 per batch, carried over: exactly a third in the long run


# -- metrics -------------------------------------------------------------------------------
def fake_result(noisy: torch.Tensor | None, counts: torch.Tensor, history: list[dict[str, Any]],
                order: torch.Tensor | None = None) -> CellResult:
    meta = {} if noisy is None else {"noisy": noisy}
    data = ClassificationData(torch.zeros(len(counts), 2), torch.zeros(len(counts)).long(),
                              torch.zeros(1, 2), torch.zeros(1).long(), 2, meta=meta)
    outputs: dict[str, Any] = {"backprop_counts": counts, "history": history}
    if order is not None:
        outputs["observers"] = {"prioritization/selection-trace": {"order": order}}
    return CellResult(data, None, outputs)


def test_noisy_share_counts_backprops_not_examples() -> None:
    noisy = torch.tensor([True, False, False, False])
    counts = torch.tensor([6, 1, 1, 0])
    order = torch.tensor([0, 0, 0, 1, 0, 0, 0, 2])
    out = NoisyShare(NoisyShare.Params(phases=2)).compute(
        RunContext(seed=0), fake_result(noisy, counts, [], order))
    assert out["noisy_share"] == 0.75 and out["noisy_rate"] == 0.25
    assert out["noisy_enrichment"] == 3.0
    assert out["noisy_share_phase1"] == 0.75 and out["noisy_share_phase2"] == 0.75
    clean = NoisyShare(NoisyShare.Params()).compute(
        RunContext(seed=0), fake_result(None, counts, []))
    assert clean["noisy_share"] == 0.0


def test_to_target_reads_the_first_crossing(tmp_path: Path) -> None:
    hist = [{"backward_examples": b, "forward_examples": 3 * b, "test_accuracy": a}
            for b, a in ((128, 0.5), (256, 0.96), (384, 0.94), (512, 0.97))]
    res = fake_result(None, torch.ones(4).long(), hist)
    out = ToTarget(ToTarget.Params(target=0.95)).compute(RunContext(seed=0), res)
    assert out == {"backprops_to_target": 256.0, "forwards_to_target": 768.0,
                   "reached_target": 1.0}
    never = ToTarget(ToTarget.Params(target=0.99)).compute(RunContext(seed=0), res)
    assert math.isinf(never["backprops_to_target"]) and never["reached_target"] == 0.0
    ctx = RunContext(seed=0, work_dir=tmp_path)
    res = fake_result(torch.tensor([True, False, False, False]), torch.ones(4).long(), hist,
                      torch.tensor([0, 1, 0, 2, 3]))
    Curve(Curve.Params(window=2)).compute(ctx, res)
    curve = json.loads((tmp_path / "curve.json").read_text())
    assert curve["backward"] == [128, 256, 384, 512]
    assert curve["share_backward"] == [2, 4, 5] and curve["noisy_share"] == [0.5, 0.5, 0.0]


# -- through the generic training loop ----------------------------------------------------
def by_name(name: str, kind: str | None = None, **params: Any) -> Component:
    cls = get_registry().get(name, kind)
    return Component.resolved(name, cls, cls.Params(**params))


def test_selective_backprop_through_train_classifier_on_label_noise() -> None:
    data = load(wrap(LabelNoise, digits(), rate=0.5), seed=3)
    results = {}
    for name in ("selection/uniform", "selection/selective-backprop"):
        p = TrainClassifier.Params(batch_size=32, backward_budget=8000, eval_every=8)
        p.selection = by_name(name, "selection")
        p.optimizer = by_name("torch/sgd", "optimizer")
        p.observers = [resolved(SelectionTrace)]
        ctx = RunContext(seed=5)
        model = MLP(MLP.Params(hidden=[32])).build(ctx, data)
        out = TrainClassifier(p).run(ctx, data, model)
        res = CellResult(data, model, out)
        results[name] = (out, NoisyShare(NoisyShare.Params()).compute(ctx, res))
    u_out, u = results["selection/uniform"]
    s_out, s = results["selection/selective-backprop"]
    assert u_out["counts"]["backward_examples"] == s_out["counts"]["backward_examples"] == 8000
    assert u_out["counts"]["forward_examples"] == 8000
    assert s_out["counts"]["forward_examples"] > 2.5 * 8000  # ~3 candidates per backprop
    assert s_out["counts"]["forward_examples"] == s_out["counts"]["candidates"] + 8000
    assert abs(u["noisy_share"] - 0.5) < 0.02
    assert s["noisy_share"] > 0.6 and s["noisy_share_phase4"] > s["noisy_share_phase1"]


def test_loss_blind_control_counts_its_selection_forward_passes() -> None:
    """``calculator: random`` ignores the losses but, as the authors' trainer, still runs
    the selection forward pass: its forward count is candidates + backprops, like SB's."""
    data = load(digits(), seed=3)
    counts = {}
    for calc in ("relative", "random"):
        p = TrainClassifier.Params(batch_size=32, backward_budget=4000, eval_every=0)
        p.selection = resolved(SelectiveBackprop, calculator=calc)
        p.optimizer = by_name("torch/sgd", "optimizer")
        ctx = RunContext(seed=5)
        model = MLP(MLP.Params(hidden=[16])).build(ctx, data)
        counts[calc] = TrainClassifier(p).run(ctx, data, model)["counts"]
    for c in counts.values():
        assert c["backward_examples"] == 4000
        assert c["forward_examples"] == c["candidates"] + 4000
    assert counts["random"]["forward_examples"] > 2 * 4000


# -- the spec's claims --------------------------------------------------------------------
def _run_in_process(tmp_path: Path, break_policy: bool) -> dict[str, Any]:
    overrides = ["cells.only=[{dataset: {in: [digits-label30, digits-label50]}, method: sb}]"]
    if break_policy:  # a loss-blind policy, still labelled selective backprop
        overrides.append("methods.sb.selection.calculator=random")
    spec = load_spec(SPEC, get_registry(), overrides=overrides, seeds=[0])
    report = run_spec(spec, tmp_path / "out", executor=InProcessExecutor(),
                      cache_dir=tmp_path / "cache")
    return {c["text"]: c for c in report.summary["claims"]}


def test_random_policy_labelled_loss_based_fails_the_noisy_share_claims(tmp_path: Path) -> None:
    claims = _run_in_process(tmp_path, break_policy=True)
    for key in ("30% label noise", "50% label noise: flipped"):
        claim = next(c for t, c in claims.items() if t.startswith(key))
        assert not claim["passed"], claim
        (row,) = claim["groups"]
        rate = 0.3 if key.startswith("30") else 0.5
        assert abs(row["value"] - rate) < 0.03  # loss-blind: the share is the noise rate


@pytest.mark.slow
def test_spec_claims_through_the_cli_at_reduced_size(tmp_path: Path) -> None:
    out = tmp_path / "out"
    only = "cells.only=[{dataset: {in: [digits, digits-label30, digits-label50]}}]"
    res = run_harness("run", str(SPEC), "--out", str(out), "--seeds", "0,1,2,3",
                      "--set", only, timeout=900)
    assert res.returncode == 0, res  # every claim holds on the digits cells alone
    summary = load_summary(out)
    claims = {c["text"]: c for c in summary["claims"]}
    for text, low in (("30% label noise", 0.5), ("50% label noise: flipped", 0.7)):
        (row,) = next(c for t, c in claims.items() if t.startswith(text))["groups"]
        assert row["value"] > low
    gap = claims["50% label noise, 32k backprops: uniform beats selective backprop by >= 5 "
                 "points"]
    (row,) = gap["groups"]
    assert row["value"] > 0.1
    rep = run_harness("report", str(out))
    assert rep.returncode == 0, rep
    assert (out / "prioritization-accuracy.png").is_file()
    assert (out / "prioritization-noisy-share.png").is_file()
    assert "Loss-based prioritization" in (out / "report.html").read_text()


def test_policies_work_with_any_classifier_through_the_generic_training() -> None:
    from harness_adapters.generic.models import CNN
    data = load(wrap(InputCorruption, digits(), fraction=0.3), seed=2)
    for name in ("selection/top-loss", "selection/selective-backprop"):
        p = TrainClassifier.Params(batch_size=16, steps=100)
        p.selection = by_name(name, "selection")
        p.optimizer = by_name("torch/adam", "optimizer")
        ctx = RunContext(seed=1)
        model = CNN(CNN.Params(channels=[4], hidden=16)).build(ctx, data)
        out = TrainClassifier(p).run(ctx, data, model)
        counts = out["counts"]
        assert counts["steps"] == 100 and counts["backward_examples"] == 1600
        # one selection forward per candidate (priming included), one per backprop
        assert out["selection"]["primed"] > 0
        assert counts["forward_examples"] == counts["candidates"] + 1600
        assert int(out["backprop_counts"].sum()) == 1600
        if name == "selection/top-loss":
            assert abs(out["selection"]["keep_rate_after_priming"] - 1 / 3) < 0.01


def test_specs_name_a_control_for_every_claim() -> None:
    from harness.controls import unnamed_claims
    spec = load_spec(SPEC, get_registry())
    assert set(spec.claim_ids) == {"noisy-share-30", "noisy-share-50", "label-noise-gap",
                                   "corrupted-inputs-gap", "clean-no-harm",
                                   "clean-fewer-backprops"}
    assert unnamed_claims(spec) == []
    # the controls change SB only: its calculator, nothing else
    for name, calc in (("loss-blind", "random"), ("inverted-priority", "inverted")):
        ctl = spec.controls[name]
        methods = ctl.points[0].methods
        assert methods["sb"].params.selection.params.calculator == calc
        assert methods["uniform"].params.selection.use == "selection/uniform"
    budget = load_spec(SPECS / "loss-prioritization-budget.yaml", get_registry())
    assert len(budget.points) == 16 and budget.claim_ids == []
