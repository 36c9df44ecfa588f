"""Fuzz the spec loader through the real CLI entry (in-process ``harness.cli.main``).

Generated spec trees (random keys and values of mixed types put into a valid spec at
random places, and through ``--set``) and generated YAML text (random characters and
bytes, aliases, tags, deep nesting) must end in exit 0 (valid) or 2 (a located error):
never a traceback, never an exception out of ``main``, within a time bound, writing
nothing outside the run's own folder. Deterministic (``derandomize``) and bounded in
examples so the suite stays well under a minute of CPU.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from harness.cli import main

GOOD: dict[str, Any] = {
    "name": "fuzz",
    "seeds": [0],
    "datasets": {"iris": {"use": "sklearn/iris"}},
    "models": {"mlp": {"use": "torch/mlp", "hidden": [4]}},
    "methods": {"train": {"use": "torch/train-classifier", "steps": 1,
                          "optimizer": {"use": "torch/sgd", "lr": 0.1}}},
    "metrics": ["accuracy"],
    "expect": [{"id": "acc", "metric": "accuracy", "at_least": 0.0}],
    "settings": {"threads": 1},
}
CPU_BOUND_S = 10.0  # per example, CPU seconds (the machine may be loaded: not wall time)


def fuzz_settings(n: int, shrink: bool = True) -> settings:
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(max_examples=n, derandomize=True, deadline=None, database=None,
                    phases=phases,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture,
                                           HealthCheck.filter_too_much])


@pytest.fixture(autouse=True, scope="module")
def warm_registry() -> None:
    from harness.registry import get_registry
    get_registry()


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder and cache: the CLI must leave both untouched."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def cli(*args: str) -> tuple[int, str]:
    buf = io.StringIO()
    start = time.process_time()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # noqa: BLE001 - nothing may escape the CLI
            pytest.fail("exception escaped the CLI for " + repr(args)[:300] + ":\n"
                        + traceback.format_exc())
    took = time.process_time() - start
    out = buf.getvalue()
    assert took < CPU_BOUND_S, f"{took:.1f} s of CPU for one spec:\n{out[:2000]}"
    assert "Traceback" not in out, out
    out.encode("utf-8")  # what reaches the terminal is printable text
    return code, out


def check_validate(sandbox: Path, content: str | bytes, *extra: str) -> tuple[int, str]:
    """Write ``content`` as a spec in a fresh folder and validate it: exit 0 or 2, and
    nothing written anywhere but the spec itself."""
    folder = Path(tempfile.mkdtemp(dir=sandbox))
    spec = folder / "spec.yaml"
    if isinstance(content, bytes):
        spec.write_bytes(content)
    else:
        spec.write_text(content, encoding="utf-8", errors="surrogatepass")
    before = listing(sandbox)
    code, out = cli("validate", str(spec), *extra)
    assert code in (0, 2), out
    assert listing(sandbox) == before, "validate wrote files"
    if code == 2:
        assert "error: " in out, out
    return code, out


# -- strategies ------------------------------------------------------------------------
ANY_CHAR = st.characters(codec=None, exclude_categories=())  # control chars, surrogates
keys = st.one_of(st.sampled_from(["use", "seeds", "name", "steps", "lr", "hidden", "where",
                                  "<<", "extends", "x-a", "threads", "device", "sweep",
                                  "only", "exclude", "metric", "at_least", "set"]),
                 st.text(ANY_CHAR, max_size=12))
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(ANY_CHAR, max_size=16),
    st.sampled_from(["sklearn/iris", "torch/mlp", "torch/sgd", "accuracy", "gpu", "cpu",
                     "nl\n", "a" * 300, "d__m", "0.1", "1e20", ".inf", "methods.train.steps",
                     "../../etc", "/dev/zero", "spec.yaml"]))
trees = st.recursive(leaves, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(keys, kids, max_size=4)), max_leaves=12)


def paths_in(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every container path in ``data`` (where a value can be put)."""
    found = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, (dict, list)):
                found += paths_in(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            if isinstance(v, (dict, list)):
                found += paths_in(v, prefix + (i,))
    return found


PLACES = paths_in(GOOD)


@st.composite
def mutated_specs(draw: st.DrawFn) -> Any:
    spec = copy.deepcopy(GOOD)
    for _ in range(draw(st.integers(1, 3))):
        place = draw(st.sampled_from(PLACES))
        target: Any = spec
        for part in place:  # an earlier mutation may have replaced part of the path
            ok = (isinstance(target, dict) and part in target) or (
                isinstance(target, list) and isinstance(part, int) and part < len(target))
            target = target[part] if ok else None
        if not isinstance(target, (dict, list)):
            continue
        value = draw(trees)
        if isinstance(target, dict):
            key = draw(st.one_of(st.sampled_from(sorted(target) or ["k"]), keys))
            if draw(st.booleans()) and key in target:
                del target[key]
            else:
                target[key] = value
        elif target:
            target[draw(st.integers(0, len(target) - 1))] = value
        else:
            target.append(value)
    return spec


def to_text(data: Any, style: str) -> str:
    if style == "json":  # JSON is YAML; \\u escapes reach the loader (surrogates too)
        return json.dumps(data, ensure_ascii=True, default=str)
    try:
        return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, UnicodeError, ValueError):
        return json.dumps(data, ensure_ascii=True, default=str)


TOKENS = ["[", "]", "{", "}", ": ", "- ", "\n", "  ", ", ", "&a ", "*a", "&b ", "*b", "<<: ",
          "? ", "!!python/tuple ", "!!python/object:os.system ", "!!binary ", "!!set ",
          "!!str ", "!!int ", "!!float ", "!foo ", "!<tag:x> ", '"', "'", "\\ud800", "\\x00",
          "\x00", "\x07", "\ufeff", "%YAML 1.1\n", "---\n", "...\n", "# c\n", "|\n", ">-\n",
          ".inf", ".nan", "-.inf", "0x1f", "0o17", "1e20", "1.0e400", "9" * 5000, "~",
          "2020-13-45", "name: ", "seeds: ", "methods: ", "extends: ", "sweep: ", "use: ",
          "threads: ", "device: gpu", "settings: ", "x-a: ", "datasets: ", "models: "]
yaml_texts = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(ANY_CHAR, max_size=6)),
                      max_size=40).map("".join)
GOOD_TEXT = to_text(GOOD, "yaml")


# -- the fuzz tests --------------------------------------------------------------------
@fuzz_settings(250)
@given(spec=mutated_specs(), style=st.sampled_from(["yaml", "json"]))
def test_fuzz_spec_trees(sandbox: Path, spec: Any, style: str) -> None:
    check_validate(sandbox, to_text(spec, style))


@fuzz_settings(100)
@given(path=st.sampled_from(["methods.train.steps", "methods.train.optimizer.lr", "seeds",
                             "name", "settings.threads", "settings.device", "models.mlp",
                             "sweep", "cells", "expect.0.at_least", "models.mlp.hidden.0",
                             "methods.train.optimizer", "x.y", "seeds.0", "metrics.0"]),
       value=st.one_of(trees.map(lambda t: json.dumps(t, default=str)), yaml_texts))
def test_fuzz_set_values(sandbox: Path, path: str, value: str) -> None:
    check_validate(sandbox, GOOD_TEXT, "--set", f"{path}={value}")


@fuzz_settings(300)
@given(text=yaml_texts, where=st.sampled_from(["alone", "after", "before", "inside"]))
def test_fuzz_yaml_text(sandbox: Path, text: str, where: str) -> None:
    lines = GOOD_TEXT.splitlines(keepends=True)
    content = {"alone": text, "after": GOOD_TEXT + text, "before": text + GOOD_TEXT,
               "inside": "".join(lines[:4]) + text + "".join(lines[4:])}[where]
    check_validate(sandbox, content)


@fuzz_settings(100)
@given(data=st.binary(max_size=300), prefix=st.booleans())
def test_fuzz_bytes(sandbox: Path, data: bytes, prefix: bool) -> None:
    check_validate(sandbox, (GOOD_TEXT.encode() if prefix else b"") + data)


@fuzz_settings(40)
@given(depth=st.integers(1, 4000), opener=st.sampled_from(["[", "{a: ", "- ", "a:\n"]),
       anchors=st.integers(0, 12), fan=st.integers(1, 12))
def test_fuzz_nesting_and_alias_bombs(sandbox: Path, depth: int, opener: str, anchors: int,
                                      fan: int) -> None:
    closer = {"[": "]", "{a: ": "}"}.get(opener, "")
    if opener in ("- ", "a:\n"):
        nested = "".join("  " * i + opener.strip() + ("\n" if opener == "a:\n" else " ")
                         for i in range(min(depth, 400))) + "1\n"
    else:
        nested = opener * depth + "1" + closer * depth + "\n"
    bomb = "x-b0: &b0 [1]\n" + "".join(
        f"x-b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * fan)}]\n" for i in range(1, anchors + 1))
    check_validate(sandbox, GOOD_TEXT + bomb + "x-deep: " + nested)


@fuzz_settings(40)
@given(parent=mutated_specs(), targets=st.lists(st.sampled_from(
    ["parent.yaml", "spec.yaml", ".", "missing.yaml", "/dev/null", "sub", "parent.yaml"]),
    min_size=1, max_size=3), child=trees)
def test_fuzz_extends(sandbox: Path, parent: Any, targets: list[str], child: Any) -> None:
    folder = Path(tempfile.mkdtemp(dir=sandbox))
    (folder / "sub").mkdir()
    (folder / "parent.yaml").write_text(to_text(parent, "json"))
    spec = {"extends": targets, "name": "child"}
    if isinstance(child, dict):
        spec.update({k: v for k, v in child.items() if k != "extends"})
    (folder / "spec.yaml").write_text(to_text(spec, "json"))
    before = listing(sandbox)
    code, out = cli("validate", str(folder / "spec.yaml"))
    assert code in (0, 2), out
    assert listing(sandbox) == before


@pytest.mark.slow
@fuzz_settings(6, shrink=False)
@given(seeds=st.lists(st.integers(0, 3), min_size=1, max_size=2, unique=True),
       steps=st.integers(1, 3), hidden=st.lists(st.integers(1, 4), max_size=2),
       lr=st.one_of(st.floats(1e-4, 1.0), st.sampled_from([0.1, 0.1000001])),
       name=st.sampled_from(["m", "m__x", "m_", "M.1+2-3"]))
def test_fuzz_run_toy_spec(sandbox: Path, seeds: list[int], steps: int, hidden: list[int],
                           lr: float, name: str) -> None:
    spec = copy.deepcopy(GOOD)
    spec.update(seeds=seeds, models={name: {"use": "torch/mlp", "hidden": hidden}},
                methods={"train": {"use": "torch/train-classifier", "steps": steps,
                                   "optimizer": {"use": "torch/sgd", "lr": 0.1}}},
                sweep={"methods.train.optimizer.lr": [0.1, lr]})
    folder = Path(tempfile.mkdtemp(dir=sandbox))
    path = folder / "spec.yaml"
    path.write_text(to_text(spec, "yaml"))
    out = folder / "out"
    before = listing(sandbox)
    code, text = cli("run", str(path), "--out", str(out))
    assert code in (0, 1, 2), text
    assert not [p for p in listing(sandbox) - before
                if not p.startswith(str(out.relative_to(sandbox)))
                and not p.startswith("cache")], "run wrote outside --out and the cache"
    if code != 2:
        records = list((out / "cells").glob("*/record.json"))
        names = {json.loads(r.read_text())["cell"]["name"] for r in records}
        assert len(records) == len(names) == len(seeds) * len({0.1, lr}), text
        assert (out / "summary.json").is_file()
