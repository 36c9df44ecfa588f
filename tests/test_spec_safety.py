"""Hostile and careless spec files (issue 18, specs part): every class ends in a clean,
located error (exit 2) and never a traceback, a hang or a blow-up. In-process: the real
CLI entry (``harness.cli.main``) with its output captured."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import time
import traceback
from pathlib import Path

import pytest

from harness.cells import cell_id
from harness.cli import main

GOOD = """\
name: ok
seeds: [0]
datasets:
  iris: {use: sklearn/iris}
models:
  mlp: {use: torch/mlp, hidden: [4]}
methods:
  train: {use: torch/train-classifier, steps: 2}
metrics: [accuracy]
"""


@pytest.fixture(autouse=True, scope="module")
def warm_registry() -> None:
    """Load the plugins once, outside the per-case time bounds."""
    from harness.registry import get_registry
    get_registry()


def cli(*args: str) -> tuple[int, str]:
    """Run ``harness ARGS`` in-process: (exit code, stdout + stderr). An exception that
    escapes ``main`` fails the test with its traceback."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # noqa: BLE001 - the point: nothing may escape
            pytest.fail("exception escaped the CLI:\n" + traceback.format_exc())
    return code, buf.getvalue()


def validate(tmp_path: Path, text: str | bytes, *extra: str) -> tuple[int, str]:
    spec = tmp_path / "spec.yaml"
    if isinstance(text, bytes):
        spec.write_bytes(text)
    else:
        spec.write_text(text, encoding="utf-8", errors="surrogatepass")
    return cli("validate", str(spec), *extra)


def bad(tmp_path: Path, text: str | bytes, *needles: str, extra: tuple[str, ...] = ()) -> str:
    start = time.process_time()  # CPU time: the machine may be loaded
    code, out = validate(tmp_path, text, *extra)
    assert code == 2, out
    assert "Traceback" not in out
    out.encode("utf-8")  # printable: no lone surrogates reach the terminal
    for needle in needles:
        assert needle in out, f"{needle!r} not in:\n{out}"
    assert time.process_time() - start < 20
    return out


# -- 1. resource bombs -----------------------------------------------------------------
def laughs(levels: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return GOOD + "x-bomb:\n" + "".join(f"  {line}\n" for line in lines)


def test_billion_laughs_is_refused_at_a_line(tmp_path: Path) -> None:
    bad(tmp_path, laughs(), "spec.yaml:", "expands to more than")


def test_billion_laughs_through_merge_keys(tmp_path: Path) -> None:
    text = GOOD + "x-a: &a {k0: 1, k1: 1, k2: 1, k3: 1, k4: 1, k5: 1, k6: 1, k7: 1}\n"
    for i in range(1, 9):
        keys = ", ".join(f"m{j}: *{'a' if i == 1 else f'a{i - 1}'}" for j in range(8))
        text += f"x-a{i}: &a{i} {{{keys}}}\n"
    bad(tmp_path, text, "expands to more than")


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a {<<: *a}\n",
                                  "a: &a [1, [2, *a]]\n"])
def test_recursive_alias(tmp_path: Path, text: str) -> None:
    bad(tmp_path, GOOD + text, "recursive alias", "spec.yaml:10")


@pytest.mark.parametrize("opener,closer", [("[", "]"), ("{a: ", "}")])
def test_deep_flow_nesting_is_no_recursion_error(tmp_path: Path, opener: str,
                                                 closer: str) -> None:
    bad(tmp_path, GOOD + "x: " + opener * 3000 + "1" + closer * 3000 + "\n",
        "spec.yaml:10", "nests deeper than")


def test_deep_block_nesting(tmp_path: Path) -> None:
    deep = "".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "v\n"
    bad(tmp_path, GOOD + deep, "nests deeper than")


def test_file_size_limit(tmp_path: Path) -> None:
    bad(tmp_path, GOOD + "x-pad: " + "a" * (1024 * 1024) + "\n", "limit")


def test_huge_integer_literal(tmp_path: Path) -> None:
    bad(tmp_path, GOOD.replace("seeds: [0]", "seeds: [" + "9" * 6000 + "]"), "spec.yaml:2")


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_spec_and_extends_fifo_do_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    code, out = cli("validate", str(fifo))
    assert code == 2 and "FIFO" in out and "Traceback" not in out
    child = tmp_path / "child.yaml"
    child.write_text("name: c\nextends: pipe.yaml\nmethods: {t: torch/train-classifier}\n")
    code, out = cli("validate", str(child))
    assert code == 2 and "FIFO" in out and "child.yaml:2" in out, out


@pytest.mark.timeout(60)
@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_devices_are_not_read(tmp_path: Path) -> None:
    code, out = cli("validate", "/dev/zero")
    assert code == 2 and "character device" in out
    child = tmp_path / "child.yaml"
    child.write_text("name: c\nmethods: {t: torch/train-classifier}\nextends: /dev/zero\n")
    code, out = cli("validate", str(child))
    assert code == 2 and "child.yaml:3" in out and "character device" in out, out


# -- 2. characters ---------------------------------------------------------------------
@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\ufffe"])
def test_control_characters_are_located(tmp_path: Path, char: str) -> None:
    bad(tmp_path, GOOD.replace("name: ok", f"name: o{char}k"), "spec.yaml:1:", "invalid character")


@pytest.mark.parametrize("where", ["name", "key", "value", "sweep"])
def test_lone_surrogates_are_rejected_at_load(tmp_path: Path, where: str) -> None:
    text = {"name": GOOD.replace("name: ok", 'name: "o\\ud800k"'),
            "key": GOOD.replace("  mlp:", '  "m\\udc80":'),
            "value": GOOD + 'description: "x\\udfff"\n',
            "sweep": GOOD + 'sweep:\n  models.mlp.hidden: ["\\ud83d"]\n'}[where]
    bad(tmp_path, text, "spec.yaml:", "surrogate")


def test_surrogate_in_set_value(tmp_path: Path) -> None:
    bad(tmp_path, GOOD, "surrogate", extra=("--set", 'description="\\ud800"'))


# -- 3. strict types and ranges --------------------------------------------------------
@pytest.mark.parametrize("seeds,needle", [
    ("[18446744073709551616]", "less than or equal to 9223372036854775807"),
    ("[-1]", "greater than or equal to 0"),
    ("[true]", "valid integer"), ("['1']", "valid integer"), ("[1.0]", "valid integer"),
    ("[1, 2, 1]", "seed 1 is given twice"),
])
def test_seeds_are_strict(tmp_path: Path, seeds: str, needle: str) -> None:
    bad(tmp_path, GOOD.replace("seeds: [0]", f"seeds: {seeds}"), "spec.yaml:2", needle)


def test_duplicate_seed_is_located_at_the_duplicate(tmp_path: Path) -> None:
    bad(tmp_path, GOOD.replace("seeds: [0]", "seeds:\n  - 0\n  - 0"), "spec.yaml:4", "seeds[1]")


def test_control_seeds_are_strict(tmp_path: Path) -> None:
    text = GOOD + ("expect: [{id: c, metric: accuracy, at_least: 0}]\ncontrols:\n"
                   "  - {name: z, set: {methods.train.steps: 1}, seeds: [3, 3], "
                   "must_fail: [c]}\n")
    bad(tmp_path, text, "spec.yaml:12", "controls[0].seeds[1]", "given twice")


@pytest.mark.parametrize("value,needle", [
    ("1e20", "valid integer"), ("1.0e20", "valid integer"), ("100000000000000000000",
                                                            "less than or equal"),
    ("0", "greater than or equal to 1"), ("true", "valid integer"), ("'4'", "valid integer")])
def test_threads_are_a_sane_positive_int(tmp_path: Path, value: str, needle: str) -> None:
    bad(tmp_path, GOOD + f"settings: {{threads: {value}}}\n", "spec.yaml:10",
        "settings.threads", needle)


@pytest.mark.parametrize("value", ["gpu", "cuda:x", "CPU", "cpu\n"])
def test_device_must_be_known(tmp_path: Path, value: str) -> None:
    bad(tmp_path, GOOD + f"settings: {{device: {value!r}}}\n".replace("'", '"'),
        "settings.device", "unknown device")


def test_an_adapter_device_param_takes_known_devices_only(tmp_path: Path) -> None:
    bad(tmp_path, GOOD.replace("{use: torch/mlp, hidden: [4]}", "{use: lm/causal, device: gpu}"),
        "spec.yaml:6", "models.mlp.device", "unknown device")


@pytest.mark.parametrize("flag", ["deterministic", "common_random_numbers"])
def test_settings_flags_are_real_booleans(tmp_path: Path, flag: str) -> None:
    bad(tmp_path, GOOD + f"settings: {{{flag}: 'yes'}}\n", f"settings.{flag}", "boolean")


@pytest.mark.parametrize("where,value", [
    ("optimizer", ".inf"), ("optimizer", ".nan"), ("optimizer", "-.inf"), ("steps", ".inf")])
def test_non_finite_params(tmp_path: Path, where: str, value: str) -> None:
    text = GOOD.replace("steps: 2}", f"steps: {value}}}" if where == "steps" else
                        f"steps: 2, optimizer: {{use: torch/sgd, lr: {value}}}}}")
    bad(tmp_path, text, "spec.yaml:8", "methods.train")


WITH_OPT = GOOD.replace("steps: 2}", "steps: 2, optimizer: {use: torch/sgd, lr: 0.1}}")


@pytest.mark.parametrize("key", ["optimizer.lr", "epochs", "grad_clip"])
def test_non_finite_in_a_sweep(tmp_path: Path, key: str) -> None:
    bad(tmp_path, WITH_OPT + f"sweep:\n  methods.train.{key}: [1.0, .inf]\n",
        "spec.yaml:11", "finite")


def test_non_finite_through_set(tmp_path: Path) -> None:
    bad(tmp_path, WITH_OPT, "finite", extra=("--set", "methods.train.optimizer.lr=.nan"))
    bad(tmp_path, WITH_OPT, "finite", extra=("--set", "methods.train.epochs=.inf"))


@pytest.mark.parametrize("text", [
    "sweep:\n  models.mlp.hidden: [!!binary aGk=]\n",
    "x-a: !!python/tuple [1, 2]\n",
    "x-a: !!python/object/apply:os.getcwd []\n",
    "x-a: !!python/object:os.PathLike {}\n",
    "x-a: !!set {a, b}\n", "x-a: !!omap [{a: 1}]\n",
    "x-a: !local {a: 1}\n", "x-a: !local [1]\n", "x-a: !local text\n",
    "description: !!python/name:os.system\n",
])
def test_unknown_yaml_tags_are_errors(tmp_path: Path, text: str) -> None:
    bad(tmp_path, GOOD + text, "spec.yaml:1", "unsupported YAML tag")


def test_tag_in_set_value(tmp_path: Path) -> None:
    bad(tmp_path, GOOD, "unsupported YAML tag", extra=("--set", "description=!!binary aGk="))


# -- 4. names and cell ids -------------------------------------------------------------
@pytest.mark.parametrize("name", ['"nl\\n"', '"a" ', "x" * 65, "y" * 300, '"tab\\tx"', "-x",
                                  '"caf\\u00e9"'])
def test_spec_names_are_strict(tmp_path: Path, name: str) -> None:
    bad(tmp_path, GOOD.replace("name: ok", f"name: {name}") if name != '"a" ' else
        GOOD.replace("name: ok", 'name: "a "'), "spec.yaml:1", "letters, digits")


@pytest.mark.parametrize("name", ['"m\\n"', "m" * 65, "z" * 300, '"a/b"', '"..x"'])
def test_component_names_are_strict_and_located_at_the_key(tmp_path: Path, name: str) -> None:
    bad(tmp_path, GOOD.replace("  mlp:", f"  {name}:"), "spec.yaml:6", "letters, digits")


def test_cells_that_looked_alike_get_different_ids(tmp_path: Path) -> None:
    from harness.cells import expand
    from harness.registry import get_registry
    from harness.spec import load_spec
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: alike\ndatasets:\n  d: {use: sklearn/iris}\n"
                    "  d__m: {use: sklearn/iris}\n"
                    "models:\n  m__x: {use: torch/mlp}\n  x: {use: torch/mlp}\n"
                    "methods:\n  train: {use: torch/train-classifier, steps: 1,"
                    " optimizer: {use: torch/sgd, lr: 0.5}}\n"
                    "sweep:\n  methods.train.optimizer.lr: [0.1, 0.1000001]\n")
    cells = expand(load_spec(spec, get_registry()))
    assert len(cells) == 8
    assert len({c.id for c in cells}) == 8 and len({c.name for c in cells}) == 8
    assert len({c.seed for c in cells}) == 8
    ids = {c.name: c.id for c in cells}
    assert ids["d/m__x/train/lr=0.1/seed=0"] != ids["d__m/x/train/lr=0.1/seed=0"]
    assert "d/m__x/train/lr=0.1000001/seed=0" in ids


def test_plain_cell_ids_are_unchanged() -> None:
    # identities of finished records: the ids of ordinary names stay what they were
    assert cell_id("iris/mlp/train/seed=0") == "iris__mlp__train__seed=0"
    assert (cell_id("d/m/t/selection=selection/uniform,backward_budget=16000/seed=1",
                    ["selection/uniform", "16000"])
            == "d__m__t__selection=selection__uniform_backward_budget=16000__seed=1")


@pytest.mark.parametrize("a,va,b,vb", [
    ("d/m__x/t/seed=0", [], "d__m/x/t/seed=0", []), ("a_/b/seed=0", [], "a/_b/seed=0", []),
    ("d/m/t/h=[32]/seed=0", ["[32]"], "d/m/t/h=[[32]]/seed=0", ["[[32]]"]),
    ("d/m/t/s=a b/seed=0", ["a b"], "d/m/t/s=a_b/seed=0", ["a_b"]),
    ("d/m/t/s=a,b/seed=0", ["a,b"], "d/m/t/s=a_b/seed=0", ["a_b"]),
    ("d/m/t/s=a/b/seed=0", ["a/b"], "d/m/t/s=a__b/seed=0", ["a__b"]),
    ("x" * 200 + "/seed=0", [], "x" * 200 + "/seed=1", []),
])
def test_cell_ids_are_injective(a: str, va: list[str], b: str, vb: list[str]) -> None:
    assert cell_id(a, va) != cell_id(b, vb)
    assert len(cell_id(a, va)) <= 133 and len(cell_id(b, vb)) <= 133


def test_expansion_refuses_colliding_ids(tmp_path: Path, monkeypatch) -> None:
    import harness.cells
    monkeypatch.setattr(harness.cells, "cell_id", lambda name, values=(): "same")
    bad(tmp_path, GOOD.replace("seeds: [0]", "seeds: [0, 1]"), "same id 'same'")


# -- 5. locations ----------------------------------------------------------------------
def test_alias_error_names_the_alias_line(tmp_path: Path) -> None:
    text = "x-bad: &opt {use: torch/sgd, lr: oops}\n" + GOOD.replace(
        "steps: 2}", "steps: 2, optimizer: *opt}")
    bad(tmp_path, text, "spec.yaml:9", "methods.train.optimizer.lr")


def test_merge_of_two_aliases_is_valid_and_earlier_wins(tmp_path: Path) -> None:
    text = GOOD.replace("  train: {use: torch/train-classifier, steps: 2}",
                        "  train:\n    <<: [*b, *a]\n    use: torch/train-classifier")
    text = "x-a: &a {steps: 3, batch_size: 7}\nx-b: &b {steps: 2}\n" + text
    code, out = validate(tmp_path, text)
    assert code == 0, out
    from harness.yamlfile import parse_yaml
    doc = parse_yaml(text, "s.yaml")
    assert doc.data["methods"]["train"] == {"steps": 2, "batch_size": 7,
                                            "use": "torch/train-classifier"}
    assert doc.where(("methods", "train", "steps")).line == 11  # the `<<:` line


def test_merge_error_names_the_merge_line(tmp_path: Path) -> None:
    text = "x-b: &b {stepz: 2}\n" + GOOD.replace(
        "  train: {use: torch/train-classifier, steps: 2}",
        "  train:\n    use: torch/train-classifier\n    <<: *b")
    bad(tmp_path, text, "spec.yaml:11", "methods.train.stepz")


def test_extends_error_in_the_parent_names_the_extending_line(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("name: base\nmethods: {t: [unclosed\n")
    child = tmp_path / "child.yaml"
    child.write_text("name: child\nextends: base.yaml\n")
    code, out = cli("validate", str(child))
    assert code == 2 and "base.yaml:" in out and "child.yaml:2" in out, out


def test_extends_not_utf8_names_the_extending_line(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_bytes(b"name: \xff\n")
    child = tmp_path / "child.yaml"
    child.write_text("name: child\nextends: [base.yaml]\n")
    code, out = cli("validate", str(child))
    assert code == 2 and "child.yaml:2" in out and "UTF-8" in out, out


def test_extends_with_a_nul_in_the_path(tmp_path: Path) -> None:
    bad(tmp_path, GOOD + 'extends: "a\\0b.yaml"\n', "spec.yaml:10", "not found")


# -- 6. --out --------------------------------------------------------------------------
def _spec(tmp_path: Path) -> str:
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD.replace("seeds: [0]", "seeds: [0, 1]"))
    return str(spec)


def test_out_is_an_existing_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("precious\n")
    code, text = cli("run", _spec(tmp_path), "--out", str(out))
    assert code == 2 and "is a file, not a folder" in text and "Traceback" not in text
    assert out.read_text() == "precious\n"


def test_out_below_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    code, text = cli("run", _spec(tmp_path), "--out", str(tmp_path / "f" / "out"))
    assert code == 2 and "cannot write there" in text, text


def test_out_read_only(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: simulate the read-only file system
        import tempfile

        def refuse(*a, **k):
            raise OSError(errno.EROFS, "Read-only file system", str(out))
        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    else:
        out.chmod(0o500)
    try:
        code, text = cli("run", _spec(tmp_path), "--out", str(out))
    finally:
        out.chmod(0o700)
    assert code == 2 and "cannot write there" in text and "Traceback" not in text, text


@pytest.mark.slow
def test_full_disk_mid_run_exits_1_and_keeps_finished_cells(tmp_path: Path, monkeypatch) -> None:
    import harness.results as results
    out = tmp_path / "out"
    real = results.atomic_write_text
    records: list[Path] = []

    def write(path: Path, text: str) -> None:
        if path.name == "record.json":
            if records:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            records.append(path)
        real(path, text)
    monkeypatch.setattr(results, "atomic_write_text", write)
    code, text = cli("run", _spec(tmp_path), "--out", str(out))
    assert code == 1 and "No space left on device" in text and "Traceback" not in text, text
    assert len(records) == 1 and '"status": "ok"' in records[0].read_text()
    monkeypatch.setattr(results, "atomic_write_text", real)
    code, text = cli("run", _spec(tmp_path), "--out", str(out))  # resumes, the first is kept
    assert code == 0 and "1 ran, 1 reused" in text, text


def test_extends_fan_out_is_bounded(tmp_path: Path) -> None:
    # each file extends the next one 10 times: 10^6 loads without a bound
    for i in range(6):
        (tmp_path / f"f{i}.yaml").write_text(
            f"name: f{i}\nextends: [{', '.join([f'f{i + 1}.yaml'] * 10)}]\n")
    (tmp_path / "f6.yaml").write_text("name: last\nmethods: {t: torch/train-classifier}\n")
    start = time.process_time()
    code, out = cli("validate", str(tmp_path / "f0.yaml"))
    assert code == 2 and "more than 64 files" in out and "Traceback" not in out, out
    assert time.process_time() - start < 10


def test_a_bad_sweep_value_names_its_own_line(tmp_path: Path) -> None:
    bad(tmp_path, GOOD + "sweep:\n  methods.train.steps:\n    - 1\n    - many\n",
        "spec.yaml:13", "valid integer")


def test_sweep_values_that_name_one_point_are_an_error(tmp_path: Path) -> None:
    bad(tmp_path, GOOD + "sweep:\n  methods.train.steps: [1, '1']\n", "spec.yaml:10",
        "same name 'steps=1'")


def test_a_spec_path_with_undecodable_bytes(tmp_path: Path) -> None:
    name = os.fsdecode(b"sp\xffec.yaml")  # as argv hands it over (surrogateescape)
    try:
        (tmp_path / name).write_text(GOOD)
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses such names")
    code, out = cli("validate", str(tmp_path / name))
    assert code == 2 and "not valid UTF-8" in out and "Traceback" not in out, out
    out.encode("utf-8")


def test_no_cells_names_the_filter_key(tmp_path: Path) -> None:
    bad(tmp_path, GOOD + "cells:\n  exclude: [{model: mlp}]\n  only:\n    - {model: mlp}\n",
        "spec.yaml:12", "cells.only", "no cells")


def test_a_huge_flat_list_is_refused_while_composing(tmp_path: Path) -> None:
    bad(tmp_path, GOOD + "x-big: [" + ",".join(["0"] * 120_000) + "]\n", "spec.yaml:10",
        "more than 100000 values")


@pytest.mark.slow
def test_full_disk_in_the_sqlite_index_exits_1(tmp_path: Path, monkeypatch) -> None:
    import sqlite3

    import harness.results as results

    def full(self, records) -> None:
        raise sqlite3.OperationalError("database or disk is full")
    monkeypatch.setattr(results.ResultsDir, "index", full)
    code, text = cli("run", _spec(tmp_path), "--out", str(tmp_path / "out"))
    assert code == 1 and "disk is full" in text and "Traceback" not in text, text
    assert list((tmp_path / "out" / "cells").glob("*/record.json"))  # the record is kept


@pytest.mark.parametrize("old,new", [("steps: 2", "steps: true"),
                                     ("steps: 2", "steps: 2, eval_every: true")])
def test_booleans_are_not_numbers(tmp_path: Path, old: str, new: str) -> None:
    bad(tmp_path, GOOD.replace(old, new), "spec.yaml:8", "is a boolean, not a number")
