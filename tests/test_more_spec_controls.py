"""One control of each spec its paper's test file does not cover (hnn-two-body,
supsup-scale, pplm-discrim, qss-transfer), at reduced size through the real CLI: the
spec's own control `set:` applied, its `must_fail` claims fail (and, where it is cheap,
pass for the unbroken method at the same size)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SPECS, load_summary, run_harness

pytestmark = pytest.mark.slow


def claims(out: Path) -> dict[str, dict]:
    return {c["id"]: c for c in load_summary(out)["claims"]}


def test_two_body_zero_field_control_fails_the_test_loss_claim(tmp_path: Path) -> None:
    """At 300 steps the real HNN's test loss is 0.91x the baseline's (the claim's bound is
    1.10x); a zero field's is hundreds of times the baseline's."""
    zero = run_harness("run", str(SPECS / "hnn-two-body.yaml"), "--out",
                       str(tmp_path / "zero"), "--seeds", "0",
                       "--set", "datasets.two-body.trials=40",
                       "--set", "datasets.two-body.eval_rollouts=2",
                       "--set", "datasets.two-body.eval_points=50",
                       "--set", "methods.train.total_steps=300",
                       "--set", "models.hnn.field_type=zero", timeout=600)
    assert zero.returncode == 1, zero
    broken = claims(tmp_path / "zero")["two-body-test-loss"]
    assert not broken["passed"]
    assert broken["groups"][0]["value"] > 10


def test_supsup_scale_shared_scores_control_breaks_the_bitwise_claims(tmp_path: Path) -> None:
    small = ["--set", "cells={only: [{tasks: 10}]}",
             "--set", "methods.supsup.steps=2", "--set", "methods.supsup.checkpoint_batches=1",
             "--set", "metrics=[{use: supsup/continual, per_task: 2}]"]
    main = run_harness("run", str(SPECS / "supsup-scale.yaml"), "--out",
                       str(tmp_path / "main"), *small, timeout=600)
    assert main.returncode in (0, 1), main  # the 50/250-task claims have no cell here
    assert claims(tmp_path / "main")["params-bitwise"]["passed"]
    assert claims(tmp_path / "main")["task0-bitwise"]["passed"]
    shared = run_harness("run", str(SPECS / "supsup-scale.yaml"), "--out",
                         str(tmp_path / "shared"), *small,
                         "--set", "methods.supsup.scores=shared", timeout=600)
    assert shared.returncode == 1, shared
    assert not claims(tmp_path / "shared")["params-bitwise"]["passed"]
    assert not claims(tmp_path / "shared")["task0-bitwise"]["passed"]


def test_pplm_discrim_flipped_gradient_control_fails_the_positive_claim(tmp_path: Path) -> None:
    """specs/pplm-discrim.yaml's flipped-gradient control at toy size (4 prefixes, 8
    tokens, a head on 60 sentences): the control's `set:` goes through the real CLI and
    the claim it must break fails. At this size the head is near chance (0.55), so this
    checks the plumbing; the full-size `--controls` run (docs/pplm.md) checks the effect."""
    from harness_adapters.bigbench.source import locate

    from harness.cachedir import default_cache
    from harness.errors import HarnessError
    try:  # multiemo comes from the bigbench sdist on PyPI: fetched once into the cache
        locate("multiemo", tasks_dir=None, cache_dir=default_cache(), version="1.0.0",
               download=True)
    except HarnessError as exc:
        pytest.skip(f"BIG-bench's multiemo task cannot be had here: {exc.render()}")
    out = tmp_path / "flipped"
    res = run_harness("run", str(SPECS / "pplm-discrim.yaml"), "--out", str(out),
                      "--seeds", "0", "--set", "methods.discrim.gradient_sign=-1",
                      "--set", "datasets.prompts.prefixes=[The lake, The chicken, The house, "
                               "The food]",
                      "--set", "methods.discrim.length=8", "--set", "methods.discrim.samples=1",
                      "--set", "methods.discrim.num_iterations=3",
                      "--set", "methods.discrim.head_examples=60",
                      "--set", "methods.discrim.judge_examples=500",
                      "--set", "methods.discrim.test_examples=40",
                      "--set", "methods.discrim.head_epochs=5", timeout=900)
    assert res.returncode == 1, res
    found = claims(out)["discrim-positive"]
    assert not found["passed"]
    metrics = load_summary(out)["cells"][0]["metrics"]
    assert metrics["positive_rate.s0.04"] <= metrics["positive_rate.base"]


def test_qss_transfer_with_its_controls_at_full_size(tmp_path: Path) -> None:
    """specs/qss-transfer.yaml is tabular and small (about 20 s with its controls on 2
    cores): run it whole. Each control fails its claim; the transfer claim passes."""
    out = tmp_path / "transfer"
    res = run_harness("run", str(SPECS / "qss-transfer.yaml"), "--out", str(out),
                      "--controls", "--jobs", "2", timeout=900)
    assert res.returncode == 0, res
    summary = load_summary(out)
    assert claims(out)["qss-transfer-faster"]["status"] == "PASS"
    assert claims(out)["qsa-no-benefit"]["status"] == "XFAIL"
    cols = {c["name"]: c["claims"] for c in summary["controls"]["controls"]}
    assert cols["values-discarded"]["qss-transfer-faster"] == "FAIL"
    assert cols["stale-inverse"]["qss-transfer-faster"] == "FAIL"
    assert cols["qsa-same-task-pretraining"]["qsa-no-benefit"] == "FAIL"
