"""Spec loading: YAML locations, extends, overrides, components, sweeps (in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import add_test_adapters

from harness import Component, Method, Params, component_field
from harness.cells import derive_seed, expand
from harness.errors import SpecError, SpecErrors
from harness.registry import get_registry
from harness.spec import load_spec
from harness.yamlfile import deep_merge, parse_yaml

BASE = """\
name: base
seeds: [0, 1]
datasets:
  iris: {use: sklearn/iris, test_size: 0.3}
models:
  mlp: {use: torch/mlp, hidden: [8]}
methods:
  train:
    use: torch/train-classifier
    steps: 5
    optimizer: {use: torch/sgd, lr: 0.1}
metrics: [accuracy]
"""


@pytest.fixture(scope="module")
def registry():
    return get_registry()


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_locations_for_every_key() -> None:
    doc = parse_yaml(BASE, "s.yaml")
    assert doc.where(("models", "mlp", "hidden")).line == 6
    assert doc.where(("methods", "train", "optimizer", "lr")).line == 11
    assert doc.where(("models", "mlp", "nothing", "deeper")).line == 6  # nearest ancestor


def test_yaml_11_booleans_as_keys_stay_text() -> None:
    doc = parse_yaml("on: 1\nyes: 2\n", "s.yaml")
    assert doc.data == {"on": 1, "yes": 2}


def test_duplicate_key_is_an_error() -> None:
    with pytest.raises(SpecError, match="duplicate key 'a'"):
        parse_yaml("a: 1\nb: 2\na: 3\n", "s.yaml")


def test_anchor_merge_keys_work() -> None:
    doc = parse_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n", "s.yaml")
    assert doc.data["other"] == {"x": 1, "y": 3}


def test_deep_merge() -> None:
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"c": 3}, "d": [2]}) == {
        "a": {"b": 1, "c": 3}, "d": [2]}


def test_components_resolve_with_defaults(tmp_path: Path, registry) -> None:
    spec = load_spec(write(tmp_path, BASE), registry)
    method = spec.points[0].methods["train"]
    assert method.adapter.name == "torch/train-classifier"
    assert method.params.optimizer.adapter.name == "torch/sgd"
    assert method.params.optimizer.params.lr == 0.1
    assert method.params.selection.adapter.name == "selection/uniform"  # default component
    cfg = method.config()
    assert cfg["optimizer"] == {"use": "torch/sgd", "lr": 0.1, "momentum": 0.0,
                                "nesterov": False, "weight_decay": 0.0}
    assert cfg["batch_size"] == 32


def test_string_component_is_adapter_name_or_reference(tmp_path: Path, registry) -> None:
    text = BASE.replace("optimizer: {use: torch/sgd, lr: 0.1}", "optimizer: torch/adam")
    spec = load_spec(write(tmp_path, text), registry)
    assert spec.points[0].methods["train"].params.optimizer.adapter.name == "torch/adam"


def test_extends_deep_merges_and_child_wins(tmp_path: Path, registry) -> None:
    write(tmp_path, BASE, "base.yaml")
    child = write(tmp_path, "extends: base.yaml\nname: child\nmodels:\n  mlp: {hidden: [4]}\n")
    spec = load_spec(child, registry)
    assert spec.name == "child"
    mlp = spec.points[0].models["mlp"]
    assert mlp.adapter.name == "torch/mlp" and mlp.params.hidden == [4]
    assert spec.seeds == [0, 1]


def test_extends_error_points_at_the_child_line(tmp_path: Path, registry) -> None:
    write(tmp_path, BASE, "base.yaml")
    child = write(tmp_path, "extends: base.yaml\nname: child\nmodels:\n  mlp: {hiden: [4]}\n")
    with pytest.raises(SpecError) as err:
        load_spec(child, registry)
    assert "spec.yaml:4" in str(err.value) and "did you mean 'hidden'" in str(err.value)


def test_overrides_and_seeds(tmp_path: Path, registry) -> None:
    spec = load_spec(write(tmp_path, BASE), registry,
                     overrides=["methods.train.optimizer.lr=0.5", "models.mlp.hidden=[3, 3]"],
                     seeds=[7])
    assert spec.points[0].methods["train"].params.optimizer.params.lr == 0.5
    assert spec.points[0].models["mlp"].params.hidden == [3, 3]
    assert spec.seeds == [7]


def test_sweep_expands_into_named_points(tmp_path: Path, registry) -> None:
    text = BASE + ("sweep:\n  methods.train.optimizer.lr: [0.1, 0.01]\n"
                   "  models.mlp.hidden: [[4], [8]]\n")
    spec = load_spec(write(tmp_path, text), registry)
    names = [p.name for p in spec.points]
    assert names == ["lr=0.1,hidden=[4]", "lr=0.1,hidden=[8]", "lr=0.01,hidden=[4]",
                     "lr=0.01,hidden=[8]"]
    assert spec.points[2].methods["train"].params.optimizer.params.lr == 0.01
    cells = expand(spec)
    assert len(cells) == 4 * 2
    assert cells[0].name == "iris/mlp/train/lr=0.1,hidden=[4]/seed=0"


def test_cell_filters(tmp_path: Path, registry) -> None:
    text = BASE.replace("  mlp: {use: torch/mlp, hidden: [8]}\n",
                        "  mlp: {use: torch/mlp, hidden: [8]}\n  big: {use: torch/mlp}\n")
    text += "cells:\n  exclude: [{model: big, seed: 1}]\n"
    with pytest.raises(SpecErrors, match="unknown axis 'seed'"):  # not silently ignored
        load_spec(write(tmp_path, text), registry)
    spec = load_spec(write(tmp_path, text.replace("seed: 1", "dataset: iris")), registry)
    assert [c.model for c in expand(spec)] == ["mlp", "mlp"]


def test_reference_to_top_level_component(tmp_path: Path, registry) -> None:
    # a component param given as a string naming a top-level component resolves to it
    class Compare(Method):
        """test-only"""
        name = "test/compare"

        class Params(Params):
            other: Component = component_field("model")

    add_test_adapters(registry, Compare)
    try:
        text = BASE.replace("metrics:", "  cmp: {use: test/compare, other: mlp}\nmetrics:")
        spec = load_spec(write(tmp_path, text), registry)
        other = spec.points[0].methods["cmp"].params.other
        assert other.adapter.name == "torch/mlp" and other.params.hidden == [8]
        assert other.label == "mlp"
    finally:
        del registry.adapters["test/compare"]
        registry._pm.unregister(name="test-test/compare")


def test_seed_derivation_is_stable() -> None:
    assert derive_seed(0, "iris/mlp/train") == derive_seed(0, "iris/mlp/train")
    assert derive_seed(0, "iris/mlp/train") != derive_seed(1, "iris/mlp/train")
    assert derive_seed(0, "a") == 8010819546481585132  # fixed forever: results depend on it


def test_cell_seeds_differ_by_group_and_data_seed_is_shared(tmp_path: Path, registry) -> None:
    text = BASE.replace("  mlp: {use: torch/mlp, hidden: [8]}\n",
                        "  mlp: {use: torch/mlp, hidden: [8]}\n  big: {use: torch/mlp}\n")
    cells = expand(load_spec(write(tmp_path, text), registry))
    s0 = [c for c in cells if c.spec_seed == 0]
    assert s0[0].seed != s0[1].seed
    assert s0[0].data_seed == s0[1].data_seed
    assert len({c.id for c in cells}) == len(cells)


def test_a_component_field_of_another_kind_never_refers_to_a_top_level_name(
        tmp_path: Path, registry) -> None:
    # a method named like an adapter must not be picked up by the optimizer field
    text = BASE.replace("optimizer: {use: torch/sgd, lr: 0.1}", "optimizer: train")
    with pytest.raises(SpecError) as err:
        load_spec(write(tmp_path, text), registry)
    assert "unknown optimizer adapter 'train'" in str(err.value)
