"""The plan cache: a re-run whose every cell is recorded gives the same summary, claims,
controls table, output and exit code without importing torch or an adapter module; any
change it depends on falls back to planning the spec (and still gives the right result).
(Timings are in benchmarks/cli_startup.py, not here.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from test_plugins import install

HEAVY = ("torch", "numpy", "scipy", "harness_toy")

PROBE = """
import sys
from harness.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
# a plugin package's __init__ is imported when it implements a hook the run calls
# (hnn's harness_run_finished); its adapter modules are not
print("HEAVY", [m for m in {heavy!r} if m in sys.modules]
      + [m for m in sys.modules if m.startswith("harness_adapters.") and m.count(".") > 1],
      file=sys.stderr)
sys.exit(code)
"""

SPEC = """\
name: coins
seeds: [0, 1, 2]
datasets:
  coin: {use: toy/coin, n: 400, bias: 0.7}
methods:
  count: toy/count
metrics: [toy/head-rate]
sweep:
  datasets.coin.n: [200, 400]
expect:
  - {id: heads, metric: head_rate, at_least: 0.5}
  - {id: many-heads, metric: head_rate, at_least: 0.9, xfail: "a 0.7 coin"}
controls:
  - name: tails
    text: "a coin biased to tails"
    set: {datasets.coin.bias: 0.2}
    must_fail: [heads]
"""


@pytest.fixture(scope="module")
def toy_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    install("harness-toy", site)
    return site


class Runner:
    def __init__(self, tmp: Path, site: Path) -> None:
        self.tmp, self.site = tmp, site
        self.cache = tmp / "cache"
        self.spec = tmp / "coins.yaml"
        self.spec.write_text(SPEC)
        self.out = tmp / "out"

    def run(self, *extra: str) -> tuple[int, str, str, list[str]]:
        env = {**os.environ, "HARNESS_CACHE": str(self.cache), "PYTHONPATH": str(self.site),
               "PYTHONHASHSEED": "0"}
        argv = ["run", str(self.spec), "--out", str(self.out), *extra]
        proc = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        lines = proc.stderr.splitlines()
        heavy = next((ln for ln in lines if ln.startswith("HEAVY")), "")
        assert heavy, proc.stdout + proc.stderr
        err = "\n".join(ln for ln in lines if not ln.startswith("HEAVY"))
        return proc.returncode, proc.stdout, err, eval(heavy[len("HEAVY"):])

    def summary(self) -> dict:
        data = json.loads((self.out / "summary.json").read_text())
        data.pop("created")
        return data

    def entries(self) -> list[Path]:
        return sorted((self.cache / "plans").glob("*.json"))


@pytest.fixture
def runner(tmp_path: Path, toy_site: Path) -> Runner:
    return Runner(tmp_path, toy_site)


def test_hit_gives_the_same_run_without_torch(runner: Runner) -> None:
    code, out, err, heavy = runner.run("--controls")
    assert code == 0, err
    assert "torch" in heavy and "6 ran, 0 reused" in err
    first = runner.summary()
    assert len(runner.entries()) == 1
    code2, out2, err2, heavy2 = runner.run("--controls")
    assert heavy2 == [], err2
    assert code2 == 0 and out2 == out
    assert "0 ran, 6 reused, 0 failed; claims: 1 PASS, 1 XFAIL" in err2
    second = runner.summary()
    assert second == first
    assert [c["status"] for c in second["claims"]] == ["PASS", "XFAIL"]
    assert second["controls"]["verdicts"]["heads"]["falsified_by"] == ["tails"]
    assert second["controls"]["ok"] is True
    # without --controls: another key, planned once, then a hit too
    code3, _, _, heavy3 = runner.run()
    code4, _, err4, heavy4 = runner.run()
    assert (code3, code4) == (0, 0) and "torch" in heavy3 and heavy4 == [], err4
    assert "controls" not in runner.summary()


def test_failing_claims_keep_their_exit_code(runner: Runner) -> None:
    runner.spec.write_text(SPEC.replace("at_least: 0.5}", "at_least: 0.8}"))
    code, out, _, _ = runner.run()
    code2, out2, err2, heavy2 = runner.run()
    assert (code, code2) == (1, 1) and heavy2 == [] and out2 == out
    assert "claims: 1 FAIL, 1 XFAIL (not ok)" in err2


def _edit_spec(r: Runner) -> None:
    r.spec.write_text(SPEC.replace("at_least: 0.5}", "at_least: 0.8}"))


def _add_comment(r: Runner) -> None:
    r.spec.write_text(SPEC + "# a comment\n")


def _touch_plugin(r: Runner) -> None:
    plugin = r.site / "harness_toy" / "plugin.py"
    st = plugin.stat()
    os.utime(plugin, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def _delete_record(r: Runner) -> None:
    record = next((r.out / "cells").glob("*/record.json"))
    record.unlink()


def _corrupt_record(r: Runner) -> None:
    record = next((r.out / "cells").glob("*/record.json"))
    record.write_text("{not json")


def _corrupt_entry(r: Runner) -> None:
    for entry in r.entries():
        entry.write_text('{"schema": 1, "key": "x", "plans": [')


def _entry_of_other_layout(r: Runner) -> None:
    for entry in r.entries():
        data = json.loads(entry.read_text())
        data["plans"][0]["cells"][0].pop("identity")
        entry.write_text(json.dumps(data))


def _fingerprint_changed(r: Runner) -> None:
    for path in (r.cache / "fingerprints").glob("*.json"):
        data = json.loads(path.read_text())
        data["fingerprint"] = "0" * 16
        path.write_text(json.dumps(data))


@pytest.mark.parametrize("change, extra, ran, claims", [
    (_add_comment, (), "0 ran, 6 reused", "1 PASS, 1 XFAIL"),
    (_edit_spec, (), "0 ran, 6 reused", "1 FAIL, 1 XFAIL (not ok)"),
    (None, ("--set", "datasets.coin.bias=0.95"), "6 ran, 0 reused", "1 PASS, 1 XPASS (not ok)"),
    (None, ("--seeds", "0,1"), "0 ran, 4 reused", "1 PASS, 1 XFAIL"),
    (None, ("--only", "n=200"), "0 ran, 3 reused", "1 PASS, 1 XFAIL"),
    (_touch_plugin, (), "0 ran, 6 reused", "1 PASS, 1 XFAIL"),
    (_delete_record, (), "1 ran, 5 reused", "1 PASS, 1 XFAIL"),
    (_corrupt_record, (), "1 ran, 5 reused", "1 PASS, 1 XFAIL"),
    (_corrupt_entry, (), "0 ran, 6 reused", "1 PASS, 1 XFAIL"),
    (_entry_of_other_layout, (), "0 ran, 6 reused", "1 PASS, 1 XFAIL"),
    (_fingerprint_changed, (), "6 ran, 0 reused", "1 PASS, 1 XFAIL"),
    (None, ("--force",), "6 ran, 0 reused", "1 PASS, 1 XFAIL"),
])
def test_a_change_falls_back_to_planning(runner: Runner, change, extra, ran, claims) -> None:
    code, _, err, _ = runner.run()
    assert code == 0 and "6 ran" in err, err
    if change is not None:
        change(runner)
    code2, _, err2, heavy2 = runner.run(*extra)
    assert "torch" in heavy2, err2  # planned: the spec loaded, the data fingerprinted
    assert f"{ran}, 0 failed; claims: {claims}" in err2, err2
    assert code2 == (0 if "not ok" not in claims else 1)
    if "--force" not in extra:  # the new plan is stored: the next run is a hit again
        code3, _, err3, heavy3 = runner.run(*extra)
        assert heavy3 == [] and code3 == code2 and f"claims: {claims}" in err3, err3


def test_renamed_folder_is_planned_again(runner: Runner) -> None:
    assert runner.run()[0] == 0
    shutil.move(runner.out, runner.tmp / "moved")
    runner.out = runner.tmp / "moved"
    code, _, err, heavy = runner.run()
    assert code == 0 and "torch" in heavy and "0 ran, 6 reused" in err, err


def test_t_quantile_table_matches_scipy() -> None:
    from scipy.special import stdtrit

    from harness.stats import T975, t975
    assert [t975(df) for df in range(1, len(T975) + 1)] == [
        float(stdtrit(df, 0.975)) for df in range(1, len(T975) + 1)]
    assert t975(40) == float(stdtrit(40, 0.975))


FILE_SPEC = """\
name: coin-file
seeds: [0, 1]
datasets:
  flips: {{use: toy/coin-file, path: {path}, name_inputs: {named}}}
methods:
  count: toy/count
metrics: [toy/head-rate]
expect:
  - {{id: heads, metric: head_rate, at_least: 0.5}}
"""


@pytest.mark.parametrize("named", [True, False])
def test_data_read_from_a_file_is_checked_by_its_stamp(runner: Runner, named: bool) -> None:
    flips = runner.tmp / "flips.txt"
    flips.write_text("1\n1\n0\n1\n")
    runner.spec.write_text(FILE_SPEC.format(path=flips, named=str(named).lower()))
    code, _, err, heavy = runner.run()
    assert code == 0 and "2 ran, 0 reused" in err and "torch" in heavy, err
    code, _, err, heavy = runner.run()
    assert code == 0 and "0 ran, 2 reused" in err, err
    if not named:  # the file cannot be vouched for without loading it: planned every time
        assert "torch" in heavy and runner.entries() == [], err
        return
    assert heavy == [], err  # a hit: nothing imported, the file's stamp unchanged
    st = flips.stat()
    os.utime(flips, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same bytes, newer
    code, _, err, heavy = runner.run()
    assert code == 0 and "torch" in heavy and "0 ran, 2 reused" in err, err
    flips.write_text("0\n0\n0\n1\n")  # new data: new fingerprint, the cells run again
    code, _, err, heavy = runner.run()
    assert code == 1 and "torch" in heavy and "2 ran, 0 reused" in err, err
    assert "claims: 1 FAIL" in err
    code, _, err, heavy = runner.run()
    assert code == 1 and heavy == [] and "0 ran, 2 reused" in err, err
