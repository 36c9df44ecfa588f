"""Issue 17: `harness schema` validates every shipped spec, every spec in the docs and
extending specs (`extends`, `x-` keys, a metric's `where:`, controls, report rows)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, SPECS

from harness.registry import get_registry
from harness.schema import spec_schema
from harness.yamlfile import parse_yaml, read_yaml_file

jsonschema = pytest.importorskip("jsonschema")
BLOCK = re.compile(r"^```ya?ml\n(.*?)^```", re.S | re.M)


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = spec_schema(get_registry())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator: Any, data: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
            for e in validator.iter_errors(data)]


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_spec_validates(validator, path: Path) -> None:
    assert _errors(validator, read_yaml_file(path).data) == []


TOP_KEYS = {"name", "description", "extends", "seeds", "datasets", "models", "methods",
            "metrics", "sweep", "cells", "expect", "report", "controls", "settings"}


def doc_specs() -> list[tuple[str, str]]:
    """Every YAML block in README.md and docs/*.md that is a spec or a part of one (a
    mapping of top-level spec keys)."""
    found = []
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, match in enumerate(BLOCK.finditer(md.read_text(encoding="utf-8"))):
            text = match.group(1)
            try:
                data = parse_yaml(text, f"{md.name}#{i}").data
            except Exception:  # a fragment with placeholders: not a spec
                continue
            keys = {k for k in data if not str(k).startswith("x-")} if isinstance(
                data, dict) else set()
            if keys and keys <= TOP_KEYS:
                found.append((f"{md.name}#{i}", text))
    return found


def test_the_docs_have_spec_blocks() -> None:
    names = [n for n, _ in doc_specs()]
    assert "README.md#0" in names and "spec-reference.md#4" in names, names
    assert len(names) >= 10, names


@pytest.mark.parametrize("name,text", doc_specs(), ids=[n for n, _ in doc_specs()])
def test_every_spec_in_the_docs_validates(validator, name: str, text: str) -> None:
    """A whole spec as it is; a part of one (`expect:` alone, `sweep:` alone) as the part
    an extending spec would add."""
    data = parse_yaml(text, name).data
    if not {"name", "methods"} <= set(data):
        data = {"extends": "base.yaml", **data}
    assert _errors(validator, data) == []


EXTENDING = [
    "extends: base.yaml\nname: child\n",
    "extends: [a.yaml, b.yaml]\n",
    "extends: base.yaml\ndatasets:\n  cancer: null\nmethods:\n  train: {steps: 5}\n",
    "extends: base.yaml\nx-opt: &o {use: torch/adam, lr: 0.01}\n"
    "methods:\n  train: {use: torch/train-classifier, optimizer: *o}\ncontrols: null\n",
    "extends: base.yaml\nmetrics: [accuracy, {use: macro-f1, where: {dataset: wine}}]\n"
    "expect:\n  - {metric: accuracy, where: {lr: {in: [0.1, 0.01]}}, at_least: 0.5}\n",
]


@pytest.mark.parametrize("text", EXTENDING, ids=range(len(EXTENDING)))
def test_extending_specs_validate(validator, text: str) -> None:
    assert _errors(validator, parse_yaml(text, "child.yaml").data) == []


FULL = """\
name: full
x-train: &train {use: torch/train-classifier, steps: 5}
datasets: {iris: sklearn/iris}
models: {mlp: {use: torch/mlp, hidden: [8]}}
methods: {train: *train}
metrics: [accuracy, {use: macro-f1, where: {dataset: iris}}]
expect:
  - {id: acc, metric: accuracy, at_least: 0.5}
report:
  - {metric: macro_f1, where: {model: mlp}}
controls:
  - {name: one-step, set: {methods.train.steps: 1}, must_fail: [acc]}
"""


def test_a_full_spec_validates_and_mistakes_do_not(validator) -> None:
    assert _errors(validator, parse_yaml(FULL, "full.yaml").data) == []
    for bad in (FULL.replace("name: full\n", ""),                        # no name
                FULL.replace("methods: {train: *train}\n", ""),          # no methods
                FULL + "metircs: []\n",                                  # unknown key
                FULL.replace("hidden: [8]", "hiden: [8]"),               # unknown param
                FULL.replace("where: {dataset: iris}}]", "wher: {}}]"),  # metric key typo
                FULL.replace("methods: {train: *train}", "methods: {train: null}")):
        assert _errors(validator, parse_yaml(bad, "bad.yaml").data), bad
    child = "extends: base.yaml\nmodels: {mlp: {use: torch/mlp, hiden: [8]}}\n"
    assert _errors(validator, parse_yaml(child, "child.yaml").data)
