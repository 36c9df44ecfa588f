"""SupSup (arXiv 2006.14769): masked layers, task inference, training isolation, the spec."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import load_summary, run_harness
from harness_adapters.generic.optimizers import Adam, RMSprop
from harness_adapters.supsup import inference
from harness_adapters.supsup.data import PermutedDigits, RotatedDigits, SplitDigits
from harness_adapters.supsup.masks import (
    MultitaskMaskLinear,
    cache_masks,
    get_subnet,
    masked_layers,
    set_alphas,
    set_num_tasks_learned,
    set_task,
    task_scores,
    topk_mask,
)
from harness_adapters.supsup.metrics import Continual
from harness_adapters.supsup.models import DenseMLP, MaskedCNN, MaskedMLP
from harness_adapters.supsup.train import Finetune, SupSupTrain

from harness import Component, HarnessError, RunContext
from harness.adapter import CellResult


def official_topk(scores: torch.Tensor, k: float) -> torch.Tensor:
    """The official GetSubnet forward, written out: sort, zero the (1-k) smallest."""
    out = scores.clone()
    _, idx = scores.flatten().sort()
    j = int((1 - k) * scores.numel())
    flat = out.flatten()
    flat[idx[:j]] = 0
    flat[idx[j:]] = 1
    return flat.view_as(scores)


def comp(adapter: type, **params: object) -> Component:
    return Component.resolved(adapter.name, adapter, adapter.Params(**params))


@pytest.fixture(scope="module")
def tasks4():
    return PermutedDigits(PermutedDigits.Params(tasks=4)).load(RunContext(seed=0))


# -- masked layers -------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [0.5, 0.3, 0.9])
def test_topk_mask_is_the_official_sort_rule(keep: float) -> None:
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(37, 23, generator=g).abs()
    mask = topk_mask(scores, keep)
    assert torch.equal(mask, official_topk(scores, keep))
    assert int((mask == 0).sum()) == int((1 - keep) * scores.numel())
    tied = torch.ones(10, 10)  # every score tied: the exact sort-based fallback
    assert int((topk_mask(tied, keep) == 0).sum()) == int((1 - keep) * 100)


def test_straight_through_gradients() -> None:
    s = torch.tensor([[-0.3, 0.2], [0.05, -0.01]], requires_grad=True)
    upstream = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    (get_subnet(s, "threshold", 0.5) * upstream).sum().backward()
    assert torch.equal(s.grad, upstream)  # identity
    s.grad = None
    m = get_subnet(s, "topk", 0.5)
    assert torch.equal(m, torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    (m * upstream).sum().backward()
    assert torch.equal(s.grad, upstream * s.detach().sign())  # through |s|


def test_signed_constant_weights_and_kaiming_scores() -> None:
    layer = MultitaskMaskLinear(64, 256, 3, "topk", 0.5, torch.Generator().manual_seed(0))
    c = math.sqrt(2) / math.sqrt(64)
    assert layer.bias is None and not layer.weight.requires_grad
    assert torch.allclose(layer.weight.abs(), torch.full_like(layer.weight, c))
    assert 0.45 < (layer.weight > 0).float().mean() < 0.55
    for s in layer.scores:
        assert s.requires_grad and s.abs().max() <= 1 / math.sqrt(64)
        assert s.std() > 0.8 / math.sqrt(3 * 64)  # uniform on +-1/sqrt(fan_in)
    assert not torch.equal(layer.scores[0], layer.scores[1])


def test_superposition_is_the_alpha_weighted_sum_of_masks(tasks4) -> None:
    model = MaskedMLP(MaskedMLP.Params(hidden=[32], outputs=20)).build(
        RunContext(seed=3), tasks4)
    x = tasks4.task(0).x_test[:5]
    cache_masks(model, 4)
    set_num_tasks_learned(model, 4)
    alphas = torch.tensor([0.1, 0.2, 0.3, 0.4])
    set_alphas(model, alphas)
    set_task(model, -1)
    got = model(x)
    h = x
    layers = list(masked_layers(model))
    for n, layer in enumerate(layers):
        mask = sum(a * layer.mask(t) for t, a in enumerate(alphas))
        h = F.linear(h, layer.weight * mask)
        h = h.relu() if n < len(layers) - 1 else h
    assert torch.allclose(got, h, atol=1e-5)


# -- task inference ------------------------------------------------------------------------

def test_g_objective_reads_only_superfluous_outputs() -> None:
    logits = torch.randn(4, 30, requires_grad=True)
    inference.g_objective(logits, 10).backward()
    assert torch.all(logits.grad[:, :10] == 0)
    assert torch.allclose(logits.grad[:, 10:], logits.detach().softmax(1)[:, 10:] / 4)


def test_oneshot_and_binary_sign_convention(monkeypatch: pytest.MonkeyPatch) -> None:
    grad = torch.tensor([0.3, -0.5, 0.1, -0.2, 0.9])
    monkeypatch.setattr(inference, "alpha_gradient",
                        lambda model, x, alphas, obj, real: grad)
    run = dict(model=None, x=None, learned=5, objective=inference.entropy_objective, real=10)
    assert inference.oneshot(**run) == 1
    assert inference.oneshot(**run, pick="argmax") == 4
    assert inference.binary(**run) == 1
    assert inference.binary(**run, pick="argmax") == 4


def test_batched_oneshot_equals_autograd_through_alphas(tasks4) -> None:
    ctx = RunContext(seed=8)
    model = MaskedMLP(MaskedMLP.Params(hidden=[64, 64], outputs=40)).build(ctx, tasks4)
    method = SupSupTrain(SupSupTrain.Params(optimizer=comp(RMSprop, lr=1e-3), steps=20))
    for t in range(4):
        set_task(model, t)
        data = tasks4.task(t)
        method._train_task(ctx, model, task_scores(model, t), data.x_train, data.y_train, t)
    cache_masks(model, 4)
    set_num_tasks_learned(model, 4)
    batches = [tasks4.task(t % 4).x_test[16 * t:16 * t + 16] for t in range(8)]
    for name, objective in inference.OBJECTIVES.items():
        batched = inference.superposed_gradients(model, batches, 4, objective, 10)
        for b, x in enumerate(batches):
            ref = inference.alpha_gradient(model, x, torch.full((4,), 0.25), objective, 10)
            assert torch.allclose(batched[:, b], ref, rtol=1e-4, atol=1e-7), name
            assert inference.oneshot(model, x, 4, objective, 10) == int(batched[:, b].argmin())
        assert inference.oneshot_batched(model, batches, 4, objective, 10) == [
            int(i) for i in batched.argmin(0)]


def test_binary_halves_by_the_lower_median(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[torch.Tensor] = []
    grads = iter([torch.tensor([0.0, 1.0, -1.0, 2.0, -2.0, 3.0]),
                  torch.tensor([5.0, 0.0, 1.0, 0.0, -1.0, 0.0]),
                  torch.tensor([0.0, 0.0, 2.0, 0.0, 1.0, 0.0])])

    def fake(model, x, alphas, obj, real):
        seen.append(alphas.clone())
        return next(grads)

    monkeypatch.setattr(inference, "alpha_gradient", fake)
    got = inference.binary(None, None, 6, inference.entropy_objective, 10)
    # round 1 keeps {0, 2, 4} (<= lower median 0); round 2 keeps {2, 4} -> {4}
    assert got == 4
    assert torch.allclose(seen[1], torch.tensor([1 / 3, 0, 1 / 3, 0, 1 / 3, 0]))


# -- training isolation --------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", [comp(Adam, lr=1e-2, weight_decay=1e-3),
                                       comp(RMSprop, lr=1e-3)])
def test_training_a_new_task_leaves_weights_and_earlier_scores_bitwise(tasks4, optimizer) -> None:
    ctx = RunContext(seed=5)
    model = MaskedMLP(MaskedMLP.Params(hidden=[64, 64], outputs=50)).build(ctx, tasks4)
    method = SupSupTrain(SupSupTrain.Params(optimizer=optimizer, steps=15, batch_size=64))
    snapshot = lambda: {k: v.clone() for k, v in model.state_dict().items()}  # noqa: E731
    initial = snapshot()
    for t in range(3):
        before = snapshot()
        set_task(model, t)
        data = tasks4.task(t)
        method._train_task(ctx, model, task_scores(model, t), data.x_train, data.y_train, t)
        after = snapshot()
        for key in after:
            task = int(key.rsplit(".", 1)[1]) if ".scores." in key else None
            if task == t:
                assert not torch.equal(after[key], before[key]), key  # trained
            else:
                assert torch.equal(after[key], before[key]), key  # weights, other tasks
        for key in after:
            if ".scores." in key and int(key.rsplit(".", 1)[1]) > t:
                assert torch.equal(after[key], initial[key])


def test_fop_optimizer_component_plugs_in(tasks4) -> None:
    """Any optimizer component composes: FOP over one task's scores touches nothing else."""
    from harness.registry import get_registry
    registry = get_registry()
    if "fop/fop" not in registry.names("optimizer"):
        pytest.skip("fop/fop is not registered")
    fop = registry.get("fop/fop", "optimizer")
    ctx = RunContext(seed=1)
    model = MaskedMLP(MaskedMLP.Params(hidden=[64], outputs=50)).build(ctx, tasks4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    set_task(model, 1)
    data = tasks4.task(1)
    SupSupTrain(SupSupTrain.Params(optimizer=comp(fop), steps=10))._train_task(
        ctx, model, task_scores(model, 1), data.x_train, data.y_train, 1)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]) == (not key.endswith("scores.1")), key


def test_supsup_run_end_to_end_small(tasks4, tmp_path: Path) -> None:
    ctx = RunContext(seed=7, work_dir=tmp_path)
    model = MaskedMLP(MaskedMLP.Params(hidden=[128, 128], outputs=200)).build(ctx, tasks4)
    out = SupSupTrain(SupSupTrain.Params(optimizer=comp(RMSprop, lr=1e-3), steps=40,
                                         inference=["oneshot/entropy", "oneshot/g"])
                      ).run(ctx, tasks4, model)
    m = Continual(Continual.Params()).compute(ctx, CellResult(tasks4, model, out))
    assert m["task0_bitwise_unchanged"] == 1.0 and m["params_unchanged"] == 1.0
    assert m["forgetting"] == 0.0 and m["max_forgetting"] == 0.0
    assert m["avg_accuracy"] > 0.8
    assert m["task_inference_accuracy"] > 0.9 and m["task_inference_accuracy_oneshot_g"] > 0.9
    # a task whose every batch was inferred right is classified by its own mask on the same
    # examples: GN equals GG exactly (this fails if GN used another mask or other examples)
    prim = out["continual"]["inference"]["oneshot/entropy"]
    for i, (right, gn) in enumerate(zip(prim["per_task"], prim["per_task_gn"], strict=True)):
        if right == 1.0:
            assert gn == out["continual"]["final_gg"][i], i
    assert m["task_inference_accuracy_at_1"] == 1.0 and "task_inference_accuracy_at_4" in m
    assert (tmp_path / "accuracy_per_task.png").stat().st_size > 1000
    assert (tmp_path / "inference_vs_tasks.png").stat().st_size > 1000
    json.dumps(out["continual"])  # small and JSON-able: kept in the record


def test_gn_accuracy_counts_wrong_batches_as_the_labels_rule_says(
        tasks4, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forced guesses (right, wrong, right, ...): with unshared labels only the right
    batches score; with shared labels the wrong ones score with the wrong mask."""
    ctx = RunContext(seed=2)
    model = MaskedMLP(MaskedMLP.Params(hidden=[32], outputs=20)).build(ctx, tasks4)
    cache_masks(model, 4)
    set_num_tasks_learned(model, 4)
    monkeypatch.setattr(inference, "oneshot_batched",
                        lambda m, views, *a, **k: [1 if j % 2 == 0 else 3
                                                   for j in range(len(views))])
    x, y = tasks4.task(1).x_test, tasks4.task(1).y_test

    def expected(shared: bool) -> float:
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(9))
        correct = 0
        for j, s in enumerate(range(0, len(x), 16)):
            idx = order[s:s + 16]
            if j % 2 and not shared:
                continue
            set_task(model, 1 if j % 2 == 0 else 3)
            with torch.no_grad():
                correct += int((model(x[idx]).argmax(1) == y[idx]).sum())
        return correct / len(x)

    for shared in (False, True):
        r = inference.evaluate_gn(
            model, x, y, 1, 4, algorithm="oneshot", objective="entropy", real=10, batch=16,
            examples=None, pick="argmin", unshared_labels=not shared,
            generator=torch.Generator().manual_seed(9))
        assert r["gn_accuracy"] == pytest.approx(expected(shared), abs=1e-12)
        assert r["right_batches"] == math.ceil(r["batches"] / 2)


def test_binary_round_limit_follows_the_run_task_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Official: rounds while their number <= log2(args.num_tasks) + 1 (all tasks of the
    run, not the learned ones). 3 learned of 64: up to 7 rounds; of 3: 2 rounds."""
    calls = []

    def stuck(model, x, alphas, obj, real):  # every candidate ties: nothing is eliminated
        calls.append(1)
        return torch.zeros(3)

    monkeypatch.setattr(inference, "alpha_gradient", stuck)
    inference.binary(None, None, 3, inference.entropy_objective, 10, total_tasks=64)
    assert len(calls) == 7
    calls.clear()
    inference.binary(None, None, 3, inference.entropy_objective, 10)
    assert len(calls) == 2                      # floor(log2(3) + 1)


@pytest.mark.parametrize("ablation", [{"scores": "shared"}, {"train_weights": True}])
def test_ablations_break_the_bitwise_checks(tasks4, tmp_path: Path, ablation) -> None:
    ctx = RunContext(seed=3, work_dir=tmp_path)
    model = MaskedMLP(MaskedMLP.Params(hidden=[64], outputs=50, mask="threshold")
                      ).build(ctx, tasks4)
    out = SupSupTrain(SupSupTrain.Params(optimizer=comp(RMSprop, lr=1e-3), steps=30,
                                         inference=["oneshot/entropy"], plots=False,
                                         **ablation)).run(ctx, tasks4, model)
    m = Continual(Continual.Params()).compute(ctx, CellResult(tasks4, model, out))
    assert m["task0_bitwise_unchanged"] == 0.0 and m["params_unchanged"] == 0.0
    assert m["forgetting"] > (0.05 if "scores" in ablation else 0.0)
    layers = list(masked_layers(model))
    if "scores" in ablation:   # tasks 1..3 never trained their own scores
        assert all(torch.equal(layer.mask(1), layer.mask(3)) for layer in layers)


def test_upper_bound_trains_one_network_per_task(tasks4, tmp_path: Path) -> None:
    from harness_adapters.supsup.baselines import Separate

    def build() -> tuple[RunContext, torch.nn.Module]:
        ctx = RunContext(seed=7, work_dir=tmp_path)
        return ctx, DenseMLP(DenseMLP.Params(hidden=[64])).build(ctx, tasks4)

    ctx, model = build()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = Separate(Separate.Params(optimizer=comp(RMSprop, lr=1e-3), steps=40)
                   ).run(ctx, tasks4, model)
    m = Continual(Continual.Params()).compute(ctx, CellResult(tasks4, model, out))
    ctx2, model2 = build()
    ft = Finetune(Finetune.Params(optimizer=comp(RMSprop, lr=1e-3), steps=40)).run(
        ctx2, tasks4, model2)["continual"]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # copies
    assert m["forgetting"] == 0.0 and m["avg_accuracy"] > 0.85
    assert m["avg_accuracy"] > sum(ft["final_gg"]) / 4 + 0.2
    # task 0: the same initial network, optimizer stream and batches as fine-tuning's
    # first task, so the same accuracy; later tasks start from the initial weights again
    assert out["continual"]["final_gg"][0] == ft["acc_after_learning"][0]


def test_nns_allocates_masks_by_the_official_confidence_rule(tasks4, tmp_path: Path) -> None:
    from harness_adapters.supsup.nns import NNs
    ctx = RunContext(seed=0, work_dir=tmp_path)

    def run(confidence: float) -> dict:
        model = MaskedMLP(MaskedMLP.Params(hidden=[64], outputs=100, mask="threshold",
                                           tasks=8)).build(ctx, tasks4)
        out = NNs(NNs.Params(optimizer=comp(RMSprop, lr=1e-3), steps=20, check_every=10,
                             inference=["oneshot/entropy"], plots=False,
                             confidence=confidence)).run(ctx, tasks4, model)
        m = Continual(Continual.Params()).compute(ctx, CellResult(tasks4, model, out))
        return {**out["continual"], **m}

    never, always = run(0.0), run(1e9)
    assert never["masks_allocated"] == 1 and never["allocations"] == []
    # with fewer than min_superposed (5) allocated, the untrained slots take part in the
    # superposition and the argmax may pick one of them (official behaviour)
    assert set(never["assigned"]) <= set(range(5))
    # always below the bar: a new mask at every check (steps 10, 20, ..., 70) until the
    # 8 slots are used up
    assert always["masks_allocated"] == 8
    assert [a["step"] for a in always["allocations"]] == [10, 20, 30, 40, 50, 60, 70]
    assert always["masks_allocated_minus_tasks"] == 4


def test_finetune_forgets(tasks4, tmp_path: Path) -> None:
    ctx = RunContext(seed=7, work_dir=tmp_path)
    model = DenseMLP(DenseMLP.Params(hidden=[64])).build(ctx, tasks4)
    out = Finetune(Finetune.Params(optimizer=comp(RMSprop, lr=1e-3), steps=40)
                   ).run(ctx, tasks4, model)
    m = Continual(Continual.Params()).compute(ctx, CellResult(tasks4, model, out))
    assert m["forgetting"] > 0.2 and m["params_unchanged"] == 0.0
    assert m["task0_bitwise_unchanged"] == 0.0 and "task_inference_accuracy" not in m


def test_user_errors(tasks4) -> None:
    ctx = RunContext(seed=0)
    plain = MaskedMLP(MaskedMLP.Params(hidden=[16])).build(ctx, tasks4)  # 10 outputs
    with pytest.raises(HarnessError, match="superfluous"):
        SupSupTrain(SupSupTrain.Params(inference=["oneshot/g"], steps=1)).run(ctx, tasks4, plain)
    with pytest.raises(HarnessError, match="dense"):
        Finetune(Finetune.Params(steps=1)).run(ctx, tasks4, plain)
    with pytest.raises(HarnessError, match="masked"):
        SupSupTrain(SupSupTrain.Params(steps=1)).run(
            ctx, tasks4, DenseMLP(DenseMLP.Params()).build(ctx, tasks4))
    with pytest.raises(HarnessError, match="fewer"):
        MaskedMLP(MaskedMLP.Params(outputs=5)).build(ctx, tasks4)


# -- data and the CNN ------------------------------------------------------------------------

def test_task_sequences() -> None:
    a = PermutedDigits(PermutedDigits.Params(tasks=3)).load(RunContext(seed=4))
    b = PermutedDigits(PermutedDigits.Params(tasks=3)).load(RunContext(seed=4))
    assert torch.equal(a.perms, b.perms)
    for t in range(3):
        assert torch.equal(a.perms[t].sort().values, torch.arange(64))
    assert not torch.equal(a.perms[0], torch.arange(64))  # task 0 is permuted too
    t1 = a.task(1)
    assert torch.equal(t1.x_test, a.x_test[:, a.perms[1]]) and torch.equal(t1.y_test, a.y_test)
    assert abs(float(a.x_train.mean())) < 1e-5 and abs(float(a.x_train.std()) - 1) < 1e-3
    rot = RotatedDigits(RotatedDigits.Params(tasks=4)).load(RunContext(seed=4))
    assert rot.meta["angles"] == [0, 90, 180, 270]
    img = rot.x_train[0].view(8, 8)
    assert torch.allclose(rot.task(1).x_train[0].view(8, 8), torch.rot90(img, 1))
    split = SplitDigits(SplitDigits.Params()).load(RunContext(seed=4))
    assert set(split.task(2).y_train.tolist()) == {4, 5}


def test_masked_cnn_learns_a_task(tasks4) -> None:
    ctx = RunContext(seed=2)
    model = MaskedCNN(MaskedCNN.Params(channels=[8], hidden=32)).build(ctx, tasks4)
    set_task(model, 0)
    data = tasks4.task(0)
    SupSupTrain(SupSupTrain.Params(optimizer=comp(Adam, lr=1e-2), steps=60))._train_task(
        ctx, model, task_scores(model, 0), data.x_train, data.y_train, 0)
    with torch.no_grad():
        acc = (model(data.x_test).argmax(1) == data.y_test).float().mean()
    assert acc > 0.5  # chance is 0.1; no weight is ever trained


# -- the spec through the real CLI -----------------------------------------------------------

SMALL = ["--set", "datasets.permuted.tasks=4", "--seeds", "0",
         *[arg for m in ("supsup", "supsup-one-example", "finetune", "upper-bound", "nns")
           for arg in ("--set", f"methods.{m}.steps=60")]]


@pytest.mark.slow
def test_spec_small_with_controls(tmp_path: Path) -> None:
    """4 tasks, 60 steps, seed 0, through the CLI with --controls: the SupSup claims pass,
    and every control makes its must_fail claims fail for real (the bitwise claims under
    shared scores and trained weights, the inference claims under the flipped sign)."""
    run_harness("run", "specs/supsup.yaml", "--out", str(tmp_path), *SMALL, "--controls")
    summary = load_summary(tmp_path)
    claims = {c["id"]: c for c in summary["claims"]}
    for cid in ("task0-bitwise", "params-bitwise", "no-forgetting", "gg-accuracy",
                "gg-vs-finetune", "inference-batch", "gn-close-to-gg"):
        assert claims[cid]["passed"], cid
    cols = {c["name"]: c["claims"] for c in summary["controls"]["controls"]}
    for name in ("scores-shared", "weights-trained"):
        for cid in ("task0-bitwise", "params-bitwise", "no-forgetting"):
            assert cols[name][cid] == "FAIL", (name, cid)
    assert cols["scores-shared"]["gg-accuracy"] == "FAIL"
    assert cols["weights-trained"]["inference-batch"] == "PASS"   # only the bitwise ones
    for cid in ("inference-batch", "gn-close-to-gg", "inference-one-example"):
        assert cols["argmax-pick"][cid] == "FAIL", cid
    assert cols["argmax-pick"]["task0-bitwise"] == "PASS"
    assert cols["nns-never-allocates"]["nns-masks"] == "FAIL"
    agg = summary["aggregates"]["permuted/supermasks/supsup"]
    assert agg["task_inference_accuracy"]["mean"] >= 0.95
    art = tmp_path / "cells" / "permuted__supermasks__supsup__seed=0" / "artifacts"
    assert (art / "accuracy_per_task.png").exists() and (art / "inference_vs_tasks.png").exists()
