"""RxRx1 adapters: the synthetic screen's design, the real-data loader on generated
folders in both layouts, and the corrections' defining properties."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from harness_adapters.rxrx1.adapt import TVN, AdaBN, Oracle
from harness_adapters.rxrx1.images import RxRx1Images
from harness_adapters.rxrx1.metrics import batch_probe
from harness_adapters.rxrx1.model import CellCNNModel
from harness_adapters.rxrx1.regularize import CoralPenalty, GainBiasAugment, coral_distance
from harness_adapters.rxrx1.screen import NEGATIVE, POSITIVE, groups_of, split_xy
from harness_adapters.rxrx1.standardize import (
    BatchStandardize,
    ControlStandardize,
    SelfStandardize,
)
from harness_adapters.rxrx1.synthetic import (
    CHANNEL_CV,
    SyntheticParams,
    SyntheticScreen,
    generate,
    split_masks,
)

from harness import HarnessError, RunContext

SMALL = {"experiments_per_cell_type": 3, "sirnas": 8, "replicates": 2, "image_size": 8}


@pytest.fixture(scope="module")
def screen():
    return SyntheticScreen(SyntheticScreen.Params(**SMALL)).load(RunContext(seed=0))


def test_plate_groups_rotate_and_controls_on_every_plate():
    p = SyntheticParams(**SMALL)
    gen = generate(p, np.random.default_rng(0))
    rows, groups = gen["rows"], gen["groups"]
    assert gen["batch"].shape == (12 * 4 * (2 * 2 + 2 + 4) * 2, 6, 8, 8)
    shifts = set()
    for e in range(12):
        plates = []
        for pl in range(1, 5):
            sel = (rows["experiment"] == e) & (rows["plate"] == pl)
            wt = rows["well_type"][sel]
            assert (wt == NEGATIVE).sum() == 2 * 4 and (wt == POSITIVE).sum() == 2 * 2
            treat = set(rows["y"][sel & (rows["well_type"] == 0)].tolist())
            g = [i for i in range(4) if set(groups[i].tolist()) == treat]
            assert len(g) == 1  # one plate group per plate
            plates.append(g[0])
        assert sorted(plates) == [0, 1, 2, 3]
        assert all((plates[i] - plates[0]) % 4 == i for i in range(4))  # a rotation
        shifts.add(plates[0])
    assert len(shifts) > 1


def test_split_is_wilds_official():
    gen = generate(SyntheticParams(**SMALL), np.random.default_rng(0))
    rows = gen["rows"]
    m = split_masks(rows)
    train_e = set(rows["experiment"][m["train"]].tolist())
    test_e = set(rows["experiment"][m["test"]].tolist())
    assert not train_e & test_e and len(train_e) == 8 and len(test_e) == 4
    assert set(rows["site"][m["train"]].tolist()) == {1}
    assert set(rows["site"][m["id_test"]].tolist()) == {2}
    assert set(rows["experiment"][m["id_test"]].tolist()) == train_e
    assert set(rows["site"][m["test"]].tolist()) == {1, 2}


def test_oracle_is_the_same_biology_without_batch_effects(screen):
    twin = screen.meta["oracle"]
    clean = SyntheticScreen(SyntheticScreen.Params(**SMALL, oracle="all")).load(
        RunContext(seed=0))
    assert torch.equal(clean.x_train, twin.x_train) and torch.equal(clean.y_test, screen.y_test)
    assert not torch.allclose(screen.x_train, twin.x_train)
    half = SyntheticScreen(SyntheticScreen.Params(**SMALL, oracle="train")).load(
        RunContext(seed=0))
    assert torch.equal(half.x_train, twin.x_train) and torch.equal(half.x_test, screen.x_test)


def test_batch_gain_variation_follows_the_real_statistics():
    p = SyntheticParams(experiments_per_cell_type=12, sirnas=4, replicates=1, image_size=8)
    gen = generate(p, np.random.default_rng(1))
    rows = gen["rows"]
    cv = {}
    for ct in (0, 2):  # HepG2 and RPE
        ratios = []
        for e in np.unique(rows["experiment"][rows["cell_type"] == ct]):
            sel = rows["experiment"] == e
            ratios.append(gen["batch"][sel].mean((0, 2, 3)) / gen["clean"][sel].mean((0, 2, 3)))
        r = np.array(ratios)
        cv[ct] = (r.std(0) / r.mean(0)).mean()
    assert cv[0] > 2 * cv[2]
    assert cv[0] == pytest.approx(np.mean(CHANNEL_CV["HEPG2"]), rel=0.6)


def test_per_experiment_standardization_and_its_ablations(screen):
    out = BatchStandardize().prepare(RunContext(seed=0), screen)
    x = torch.cat([split_xy(out, s)[0] for s in ("train", "test", "id_test")])
    exp = torch.cat([groups_of(out, s)["experiment"] for s in ("train", "test", "id_test")])
    for e in exp.unique():
        v = x[exp == e]
        assert torch.allclose(v.mean((0, 2, 3)), torch.zeros(6), atol=1e-4)
        assert torch.allclose(v.std((0, 2, 3)), torch.ones(6), atol=1e-3)
    pooled = BatchStandardize(BatchStandardize.Params(statistics="pooled")).prepare(
        RunContext(seed=0), screen)
    allx = torch.cat([split_xy(pooled, s)[0] for s in ("train", "test", "id_test")])
    assert torch.allclose(allx.mean((0, 2, 3)), torch.zeros(6), atol=1e-4)
    shuffled = BatchStandardize(BatchStandardize.Params(statistics="shuffled")).prepare(
        RunContext(seed=0), screen)
    xs = torch.cat([split_xy(shuffled, s)[0] for s in ("train", "test", "id_test")])
    means = torch.stack([xs[exp == e].mean((0, 2, 3)) for e in exp.unique()])
    assert means.abs().max() > 0.3  # each experiment got another's statistics


def test_control_standardization_uses_negative_controls_only(screen):
    out = ControlStandardize().prepare(RunContext(seed=0), screen)
    g = groups_of(out, "test")
    x = out.x_test
    for e in g["experiment"].unique():
        ctrl = x[(g["experiment"] == e) & (g["well_type"] == NEGATIVE)]
        assert torch.allclose(ctrl.mean((0, 2, 3)), torch.zeros(6), atol=0.3)
    self_std = SelfStandardize().prepare(RunContext(seed=0), screen)
    assert torch.allclose(self_std.x_test.mean((2, 3)), torch.zeros(1), atol=1e-4)


def _model(screen):
    return CellCNNModel(CellCNNModel.Params(channels=[4, 8])).build(RunContext(seed=0), screen)


def test_adabn_uses_each_experiments_statistics_and_restores_the_model(screen):
    model = _model(screen)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    corr = AdaBN()
    corr.prepare(RunContext(seed=0), screen)
    logits = corr.predict(model, screen.x_test, "test")
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    g = groups_of(screen, "test")["experiment"]
    e0 = g == g[0]
    # an experiment's logits do not depend on the other experiments in the split
    alone = AdaBN()
    sub = screen.with_(x_test=screen.x_test[e0], y_test=screen.y_test[e0],
                       meta={**screen.meta, "groups": {**screen.meta["groups"], "test": {
                           k: v[e0] for k, v in screen.meta["groups"]["test"].items()}}})
    alone.prepare(RunContext(seed=0), sub)
    assert torch.allclose(alone.predict(model, sub.x_test, "test"), logits[e0], atol=1e-5)
    # its input batch norm makes an experiment-wide channel gain irrelevant
    scaled = sub.with_(x_test=sub.x_test * torch.tensor([3.0, 1, 1, 0.5, 1, 2])[:, None, None])
    alone.prepare(RunContext(seed=0), scaled)
    assert torch.allclose(alone.predict(model, scaled.x_test, "test"), logits[e0], atol=1e-3)


def test_tvn_centers_controls_and_refits_a_head(screen):
    model = _model(screen)
    corr = TVN(TVN.Params(whiten=False, coral=False, head_steps=5))
    data = corr.prepare(RunContext(seed=0), screen)
    corr.finish(RunContext(seed=0), model, data)
    z = corr.embed(model, screen.x_test, "test")
    g = groups_of(screen, "test")
    for e in g["experiment"].unique():
        c = z[(g["experiment"] == e) & (g["well_type"] == NEGATIVE)]
        assert torch.allclose(c.mean(0), torch.zeros(z.shape[1]), atol=1e-4)
    assert corr.predict(model, screen.x_test, "test").shape == (len(screen.x_test),
                                                                 screen.num_classes)


def test_coral_penalty_and_gain_bias_augment(screen):
    a = torch.randn(20, 5)
    assert coral_distance(a, a).item() == pytest.approx(0.0, abs=1e-7)
    assert coral_distance(a, 2 * a + 1).item() > 0.5
    model = _model(screen)
    batch = torch.arange(0, len(screen.x_train), len(screen.x_train) // 32)[:32]  # all exps
    x, y = screen.x_train[batch], screen.y_train[batch]
    plain = torch.nn.functional.cross_entropy(model(x), y)
    coral = CoralPenalty(CoralPenalty.Params(weight=10.0))
    coral.prepare(RunContext(seed=0), screen)
    assert coral.train_loss(model, x, y, batch).item() > plain.item()
    aug = [GainBiasAugment(), GainBiasAugment()]
    losses = [c.prepare(RunContext(seed=3), screen) and c.train_loss(model, x, y, batch).item()
              for c in aug]
    assert losses[0] == losses[1] != pytest.approx(plain.item(), abs=1e-6)


def test_oracle_needs_a_twin_and_train_only_keeps_test_batch_effects(screen):
    out = Oracle(Oracle.Params(train_only=True)).prepare(RunContext(seed=0), screen)
    assert torch.equal(out.x_train, screen.meta["oracle"].x_train)
    assert torch.equal(out.x_test, screen.x_test)
    with pytest.raises(HarnessError, match="no batch-free twin"):
        Oracle().prepare(RunContext(seed=0), screen.with_(meta={**screen.meta, "oracle": None}))


def test_batch_probe_sees_a_batch_signal_and_chance_without_one():
    rng = np.random.default_rng(0)
    exp = np.repeat([0, 1, 2], 60)
    ct = np.zeros(180, int)
    emb = rng.standard_normal((180, 8))
    assert batch_probe(emb, exp, ct, 0) < 0.5
    emb[:, 0] += 3 * exp
    assert batch_probe(emb, exp, ct, 0) > 0.9


# ---- the real-data loader on generated folders -------------------------------------------

def _fake_rxrx1(root: Path, layout: str) -> None:
    from PIL import Image
    rng = np.random.default_rng(0)
    rows = []
    exps = {"HUVEC-01": "train", "HUVEC-02": "train", "HUVEC-03": "val", "RPE-01": "test"}
    for exp, ds in exps.items():
        for plate in (1, 2):
            for well, wt, sirna in (("B02", "treatment", 0),
                                                   ("B03", "treatment", 1),
                                                   ("C02", "negative_control", 2)):
                for site in (1, 2):
                    rows.append({"site_id": f"{exp}_{plate}_{well}_{site}",
                                 "well_id": f"{exp}_{plate}_{well}", "cell_type": exp[:-3],
                                 "dataset": ds, "experiment": exp, "plate": plate,
                                 "well": well, "site": site, "well_type": wt,
                                 "sirna": f"s{sirna}", "sirna_id": sirna})
                    d = root / "images" / exp / f"Plate{plate}"
                    d.mkdir(parents=True, exist_ok=True)
                    if layout == "rxrx1":
                        for c in range(1, 7):
                            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(
                                d / f"{well}_s{site}_w{c}.png")
                    else:
                        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
                            d / f"{well}_s{site}.png")
    with (root / "metadata.csv").open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)


@pytest.mark.parametrize("layout,channels", [("rxrx1", 6), ("wilds", 3)])
def test_loader_reads_both_layouts_with_the_official_split(tmp_path, layout, channels):
    _fake_rxrx1(tmp_path / "data", layout)
    ds = RxRx1Images(RxRx1Images.Params(root=str(tmp_path / "data"), image_size=8))
    ctx = RunContext(seed=0, cache_dir=tmp_path / "cache")
    data = ds.load(ctx)
    assert data.x_train.shape == (2 * 2 * 3, channels, 8, 8)
    assert data.meta["design"]["layout"] == layout
    assert set(groups_of(data, "train")["site"].tolist()) == {1}
    assert set(groups_of(data, "id_test")["site"].tolist()) == {2}
    assert len(data.x_test) == 2 * 3 * 2 and len(data.meta["splits"]["val"][0]) == 12
    assert sorted(data.y_test.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    assert (groups_of(data, "test")["well_type"] == NEGATIVE).sum() == 4
    assert 0 <= data.x_train.min() and data.x_train.max() <= 1
    assert list((tmp_path / "cache" / "rxrx1").glob("*.npz"))
    # the second load reads the cache, not the images
    for png in (tmp_path / "data" / "images").rglob("*.png"):
        png.unlink()
    again = ds.load(ctx)
    assert torch.equal(again.x_train, data.x_train)


def test_loader_moves_val_experiments_and_explains_a_missing_folder(tmp_path):
    _fake_rxrx1(tmp_path / "data", "wilds")
    data = RxRx1Images(RxRx1Images.Params(root=str(tmp_path / "data"), image_size=4,
                                          val_experiments=["HUVEC-02"], cache=False)
                       ).load(RunContext(seed=0))
    assert len(data.meta["splits"]["val"][0]) == 24
    with pytest.raises(HarnessError) as err:
        RxRx1Images(RxRx1Images.Params(root=str(tmp_path / "nope"))).load(RunContext(seed=0))
    assert "CC BY-NC-SA 4.0" in (err.value.hint or "") and "rxrx.ai" in (err.value.hint or "")


def test_generic_trainer_takes_a_correction_component(screen):
    from harness_adapters.generic.optimizers import OPTIMIZERS
    from harness_adapters.generic.selection import UniformSelection
    from harness_adapters.generic.training import TrainClassifier

    from harness import Component

    adam = next(o for o in OPTIMIZERS if o.name == "torch/adam")
    params = TrainClassifier.Params(
        optimizer=Component.resolved("torch/adam", adam, adam.Params()),
        selection=Component.resolved("selection/uniform", UniformSelection,
                                     UniformSelection.Params()),
        correction=Component.resolved("rxrx1/per-experiment", BatchStandardize,
                                      BatchStandardize.Params()),
        steps=3, batch_size=16)
    out = TrainClassifier(params).run(RunContext(seed=0), screen, _model(screen))
    assert isinstance(out["correction"], BatchStandardize)
    assert out["data"].x_train.mean().abs() < 0.1 < screen.x_train.mean().abs()
    assert out["counts"]["steps"] == 3 and out["test_logits"].shape[0] == len(screen.x_test)


REDUCED = ["--seeds", "0", "--set", "datasets.screen.experiments_per_cell_type=3",
           "--set", "datasets.screen.sirnas=8", "--set", "datasets.screen.replicates=2",
           "--set", "datasets.screen.image_size=8", "--set", "methods.bench.training.epochs=2",
           "--set", "methods.bench.only=[per-experiment, tvn]"]


@pytest.mark.slow
def test_spec_runs_reduced_and_reports_paired_numbers(tmp_path: Path) -> None:
    from conftest import SPECS, load_summary, run_harness

    res = run_harness("run", str(SPECS / "rxrx1.yaml"), *REDUCED, "--out", str(tmp_path / "o"))
    assert res.returncode in (0, 1), res.output  # claims may fail at 2 epochs
    summary = load_summary(tmp_path / "o")
    m = summary["cells"][0]["metrics"]
    assert m["gap_share.none"] == 0 and m["gap_share.oracle"] == pytest.approx(1)
    assert set(k.split(".")[1] for k in m if k.startswith("unseen_acc.")) == {
        "none", "oracle", "per-experiment", "tvn"}
    assert 0 <= m["probe.none"] <= 1 and "unseen_acc.none.HEPG2" in m
    assert {c["id"] for c in summary["claims"]} >= {"per-experiment-gap", "none-drop"}
    assert list((tmp_path / "o" / "cells").glob("*/artifacts/embeddings.png"))
    rep = run_harness("report", str(tmp_path / "o"))
    assert rep.returncode == 0 and "RxRx1 batch correction" in (
        tmp_path / "o" / "report.html").read_text()
