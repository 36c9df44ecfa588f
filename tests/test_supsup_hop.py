"""HopSupSup (adapters/supsup/hopfield.py, hopsupsup.py): the Hopfield memory (Storkey
rule, fixed points, recall from corrupted patterns, fixed size), the unit-mask model, the
gradient recovery end to end, the ablations, and the spec with its controls (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import load_summary, run_harness
from harness_adapters.generic.optimizers import SGD
from harness_adapters.supsup.data import PermutedDigits, SplitDigits
from harness_adapters.supsup.hopfield import HopfieldMemory, HopMaskBN, HopMLP, pattern
from harness_adapters.supsup.hopsupsup import HopSupSup
from harness_adapters.supsup.metrics import Hopfield
from harness_adapters.supsup.models import MaskedMLP

from harness import Component, HarnessError, RunContext
from harness.adapter import CellResult


def random_patterns(k: int, d: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 2, (d,), generator=g).float() * 2 - 1 for _ in range(k)]


# -- the Hopfield memory ---------------------------------------------------------------
def test_storkey_rule_written_out() -> None:
    """One pattern: W = (x x^T - I) / d (the local field of an empty net is 0); two: the
    Storkey increment with the official full local field h = W x."""
    d = 16
    x1, x2 = random_patterns(2, d)
    mem = HopfieldMemory(d)
    mem.store(x1)
    torch.testing.assert_close(mem.W, (torch.outer(x1, x1) - torch.eye(d)) / d)
    W1 = mem.W.clone()
    mem.store(x2)
    h = W1 @ x2
    expected = W1 + (torch.outer(x2, x2) - torch.eye(d) - torch.outer(x2, h)
                     - torch.outer(h, x2)) / d
    torch.testing.assert_close(mem.W, expected)
    torch.testing.assert_close(mem.W, mem.W.T)
    assert mem.count == 2
    torch.testing.assert_close(mem.start(), (x1 + x2) / 2)


@pytest.mark.parametrize("rule", ["storkey", "hebbian"])
def test_stored_patterns_are_fixed_points_and_attract_corrupted_ones(rule: str) -> None:
    d, k = 256, 8
    pats = random_patterns(k, d)
    mem = HopfieldMemory(d, rule)  # type: ignore[arg-type]
    for x in pats:
        mem.store(x)
    g = torch.Generator().manual_seed(1)
    for x in pats:
        assert torch.equal(mem.update(x.clone(), sweeps=1), x)        # a fixed point
        flip = torch.randperm(d, generator=g)[: d // 10]               # 10% of the bits
        noisy = x.clone()
        noisy[flip] *= -1
        assert torch.equal(mem.update(noisy), x)                      # recalled
        # an attractor is a minimum: the stored state has lower energy than its corruption
        assert mem.energy(x) < mem.energy(noisy)


def test_memory_size_does_not_depend_on_the_number_of_patterns() -> None:
    d = 64
    sizes = []
    for k in (0, 1, 5, 20):
        mem = HopfieldMemory(d)
        for x in random_patterns(k, d):
            mem.store(x)
        sizes.append(mem.state_floats())
    assert sizes == [d * d + d + 1] * 4
    grows = HopfieldMemory(d, kind="patterns")     # ABLATION: the patterns kept
    for x in random_patterns(5, d):
        grows.store(x)
    assert grows.state_floats() == d * d + d + 1 + 5 * d
    plain = HopfieldMemory(d)
    for x in random_patterns(5, d):
        plain.store(x)
    torch.testing.assert_close(grows.weights(), plain.weights())  # same W, rebuilt
    empty = HopfieldMemory(d, kind="empty")        # ABLATION: stores nothing
    for x in random_patterns(5, d):
        empty.store(x)
    assert not empty.W.any() and empty.count == 0 and not empty.start().any()


def test_memory_rejects_a_pattern_that_is_not_plus_minus_one() -> None:
    mem = HopfieldMemory(4)
    with pytest.raises(ValueError):
        mem.store(torch.tensor([1.0, 0.0, 1.0, -1.0]))
    with pytest.raises(ValueError):
        mem.store(torch.ones(5))


# -- the model -------------------------------------------------------------------------
def test_mask_bn_is_batchnorm_scaled_by_the_unit_mask() -> None:
    layer = HopMaskBN(6, 2, "storkey", "hopfield")
    x = torch.randn(10, 6, generator=torch.Generator().manual_seed(0))
    plain = torch.nn.functional.batch_norm(x, None, None, training=True)
    torch.testing.assert_close(layer(x), plain)        # scores 0: every unit on
    with torch.no_grad():
        layer.scores[1].copy_(torch.tensor([1.0, -1, 1, -1, 1, -1]))
    layer.task = 1
    torch.testing.assert_close(layer(x), plain * torch.tensor([1.0, 0, 1, 0, 1, 0]))
    torch.testing.assert_close(pattern(torch.tensor([1.0, 0.0])), torch.tensor([1.0, -1.0]))


def test_hop_mlp_has_fixed_signed_constant_weights() -> None:
    ctx = RunContext(seed=0)
    data = SplitDigits(SplitDigits.Params(tasks=2)).load(ctx)
    model = HopMLP(HopMLP.Params(hidden=[32, 16])).build(ctx, data)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(32, 64), (16, 32), (10, 16)]
    for m in linears:
        assert not m.weight.requires_grad and m.bias is None
        assert len(m.weight.abs().unique()) == 1
    assert model(data.x_test[:5]).shape == (5, 10)


# -- training and recovery end to end --------------------------------------------------
def sgd() -> Component:
    return Component.resolved("torch/sgd", SGD, SGD.Params(lr=0.1, momentum=0.9,
                                                           weight_decay=1e-4))


def run_hop(tmp: Path, memory: str = "hopfield", **params: object) -> dict[str, float]:
    ctx = RunContext(seed=0, work_dir=tmp)
    data = SplitDigits(SplitDigits.Params(tasks=3)).load(ctx)
    model = HopMLP(HopMLP.Params(hidden=[2048], memory=memory)).build(ctx, data)  # type: ignore[arg-type]
    method = HopSupSup(HopSupSup.Params(optimizer=sgd(), steps=10, recovery_batch=16,
                                        recovery_passes=5, plots=False, **params))
    out = method.run(ctx, data, model)
    assert out["continual"]["params_unchanged"]      # the weights never move
    return Hopfield().compute(ctx, CellResult(None, model, out))


def test_recovery_finds_the_stored_masks_and_the_ablations_break_it(tmp_path: Path) -> None:
    ok = run_hop(tmp_path / "ok")
    assert ok["hop_exact_fraction"] == 1 and ok["gg_minus_hop"] == 0
    assert ok["hop_state_floats_growth"] == 0
    assert ok["hop_state_floats"] == 2048 * 2048 + 2048 + 1
    empty = run_hop(tmp_path / "empty", memory="empty")
    assert empty["hop_exact_fraction"] == 0 and empty["gg_minus_hop"] > 0.3
    blind = run_hop(tmp_path / "blind", recovery_data="none")
    assert blind["hop_exact_fraction"] < 1 and blind["hop_nearest_right"] < 1
    grows = run_hop(tmp_path / "grows", memory="patterns")
    assert grows["hop_state_floats_growth"] == 2 * 2048 and grows["hop_exact_fraction"] == 1


def test_user_errors() -> None:
    ctx = RunContext(seed=0)
    data = PermutedDigits(PermutedDigits.Params(tasks=2)).load(ctx)
    masked = MaskedMLP(MaskedMLP.Params(hidden=[8])).build(ctx, data)
    with pytest.raises(HarnessError, match="hop-mlp"):
        HopSupSup(HopSupSup.Params(steps=1)).run(ctx, data, masked)
    with pytest.raises(HarnessError, match="task sequence"):
        HopMLP(HopMLP.Params()).build(ctx, object())
    small = HopMLP(HopMLP.Params(hidden=[8], tasks=1))
    with pytest.raises(HarnessError, match="fewer"):
        small.build(ctx, data)


# -- the spec --------------------------------------------------------------------------
@pytest.mark.slow
def test_spec_claims_pass_and_each_control_fails_its_claims(tmp_path: Path) -> None:
    out = tmp_path / "hop"
    proc = run_harness("run", "specs/supsup-hop.yaml", "--controls", "--seeds", "0",
                       "--set", "datasets.split.tasks=3", "--set",
                       "methods.hopsupsup.steps=10", "--out", str(out), timeout=600)
    assert proc.returncode == 0, proc
    summary = load_summary(out)
    assert {c["id"]: c["passed"] for c in summary["claims"]} == {
        "hop-accuracy": True, "hop-masks-exact": True, "hop-memory-constant": True}
    cols = {c["name"]: c["claims"] for c in summary["controls"]["controls"]}
    for name in ("memory-empty", "recovery-without-data"):
        assert cols[name]["hop-accuracy"] == cols[name]["hop-masks-exact"] == "FAIL", name
        assert cols[name]["hop-memory-constant"] == "PASS", name
    assert cols["memory-grows"] == {"hop-accuracy": "PASS", "hop-masks-exact": "PASS",
                                    "hop-memory-constant": "FAIL"}
