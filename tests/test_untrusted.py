"""Untrusted files: code a spec names needs --trust-code; verify treats records as
untrusted; git provenance runs no repository hooks; report embeds nothing from outside the
folder and writes atomically; query cannot write; corrupt records and index are set aside."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import load_summary
from faultkit import cli, faults_site  # noqa: F401 (the fixture)

from harness.provenance import git_state
from harness.report import write_html

pytestmark = pytest.mark.usefixtures("faults_site")

SPEC = """\
name: untrusted
seeds: [0, 1]
methods:
  a: {use: fault/cell, value: 1}
  b: {use: fault/cell, value: 2}
metrics: [fault/value]
"""


@pytest.fixture
def run(tmp_path: Path, capsys) -> tuple[Path, Path]:
    spec = tmp_path / "spec" / "s.yaml"
    spec.parent.mkdir()
    spec.write_text(SPEC)
    out = tmp_path / "o"
    assert cli("run", str(spec), "--out", str(out)) == 0
    capsys.readouterr()
    return spec, out


def record_paths(out: Path) -> list[Path]:
    return sorted(out.glob("cells/*/record.json"))


def test_query_is_read_only(run, tmp_path: Path, capsys) -> None:
    _, out = run
    assert cli("query", str(out), "SELECT count(*) FROM cells") == 0
    assert capsys.readouterr().out.splitlines()[1] == "4"
    for sql in (f"VACUUM INTO '{tmp_path / 'copy.db'}'",
                f"ATTACH '{tmp_path / 'new.db'}' AS x",
                "CREATE TABLE t(a)", "DELETE FROM cells", "PRAGMA journal_mode=DELETE",
                "INSERT INTO metrics VALUES ('a', 'b', 1)"):
        assert cli("query", str(out), sql) == 2, sql
        assert "read-only" in capsys.readouterr().err
    assert not (tmp_path / "copy.db").exists() and not (tmp_path / "new.db").exists()
    assert cli("query", str(out), "SELECT count(*) FROM metrics") == 0
    assert capsys.readouterr().out.splitlines()[1] == "4"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                   check=True, capture_output=True, timeout=30)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_provenance_runs_no_repository_hook(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "f.txt").write_text("x\n")
    _git(repo, "add", "f.txt")
    _git(repo, "commit", "-qm", "c")
    marker = tmp_path / "ran"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho ran >> {marker}\ncat\n")
    hook.chmod(0o755)
    _git(repo, "config", "core.fsmonitor", str(hook))
    _git(repo, "config", "core.hooksPath", str(tmp_path))
    (repo / "f.txt").write_text("changed\n")
    state = git_state(str(repo))
    assert not marker.exists(), "git ran the repository's fsmonitor hook"
    assert len(state["commit"]) == 40 and state["dirty"] is True
    # a clean filter is code too: with one configured, dirty is not checked
    _git(repo, "config", "filter.evil.clean", str(hook))
    (repo / ".gitattributes").write_text("* filter=evil\n")
    git_state.cache_clear()
    state = git_state(str(repo))
    assert not marker.exists() and state["dirty"] is None and len(state["commit"]) == 40


def test_report_embeds_nothing_from_outside_and_writes_atomically(run, tmp_path: Path) -> None:
    _, out = run
    summary = load_summary(out)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG secret-bytes")
    art = out / "cells" / summary["cells"][0]["id"] / "artifacts"
    art.mkdir(parents=True, exist_ok=True)
    (art / "plot.png").symlink_to(secret)
    outside = tmp_path / "elsewhere" / "artifacts"
    outside.mkdir(parents=True)
    (outside / "x.png").write_bytes(b"\x89PNG elsewhere-bytes")
    summary["cells"][1]["id"] = "../../elsewhere"
    (out / "report.html").write_text("old")
    page = write_html(summary, out).read_text()
    import base64
    for blob in (b"\x89PNG secret-bytes", b"\x89PNG elsewhere-bytes"):
        assert base64.b64encode(blob).decode() not in page
    assert page.startswith("<!doctype html>")
    assert not list(out.glob(".report.html.*"))


def test_verify_never_leaves_the_folder_nor_runs_code_a_record_names(run, tmp_path: Path,
                                                                     capsys) -> None:
    spec, out = run
    victim = tmp_path / "victim"
    (victim / "artifacts").mkdir(parents=True)
    (victim / "artifacts" / "keep.txt").write_text("keep")
    paths = record_paths(out)
    rec = json.loads(paths[0].read_text())
    rec["cell_id"] = os.path.relpath(victim, out / "cells")  # ../../victim
    paths[0].write_text(json.dumps(rec))
    marker = tmp_path / "evil-ran"
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    rec = json.loads(paths[1].read_text())
    rec["cell"]["metrics"] = [{"use": "evaluate/metric", "path": str(evil)}]
    paths[1].write_text(json.dumps(rec))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = cli("verify", str(out))
    text = capsys.readouterr().out
    assert code == 1
    assert (victim / "artifacts" / "keep.txt").read_text() == "keep"
    assert "differs from the spec's" in text and not marker.exists()
    assert "identical  b/seed=0" in text and "2/3 metrics identical" in text  # the rest verify
    # without the spec, cells come from the records: code they name needs --trust-code
    spec.unlink()
    assert cli("verify", str(out)) == 2
    assert "--trust-code" in capsys.readouterr().err and not marker.exists()


def test_code_a_spec_names_needs_trust_code(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "spec"
    (folder / "m").mkdir(parents=True)
    spec = folder / "s.yaml"
    spec.write_text(SPEC.replace("metrics: [fault/value]",
                                 "metrics: [fault/value, {use: evaluate/metric, path: ./m}]"))
    code = cli("run", str(spec), "--out", str(tmp_path / "o"))
    err = capsys.readouterr().err
    assert code == 2 and "evaluate/metric path='./m'" in err and "--trust-code" in err
    assert not (tmp_path / "o" / "cells").exists()
    assert "Traceback" not in err


def test_corrupt_records_and_index_are_set_aside_and_rebuilt(run, capsys) -> None:
    spec, out = run
    paths = record_paths(out)
    bad = json.loads(paths[0].read_text())
    bad["metrics"] = "not a dict"
    paths[0].write_text(json.dumps(bad))
    bad = json.loads(paths[1].read_text())
    del bad["cell"]
    paths[1].write_text(json.dumps(bad))
    paths[2].unlink()
    paths[2].mkdir()  # a folder where the record was
    (out / "index.sqlite").write_bytes(b"garbage " * 100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli("run", str(spec), "--out", str(out)) == 0
    err = capsys.readouterr().err
    assert "3 ran, 1 reused, 0 failed" in err and "Traceback" not in err
    messages = " ".join(str(w.message) for w in caught)
    assert messages.count("is corrupt") == 4 and "rebuilt" in messages
    assert len(list(out.glob("cells/*/record.corrupt-*.json"))) == 3
    assert list(out.glob("index.corrupt-*.sqlite"))
    assert cli("query", str(out), "SELECT count(*) FROM cells WHERE status = 'ok'") == 0
    assert capsys.readouterr().out.splitlines()[1] == "4"
    assert all(c["status"] == "ok" for c in load_summary(out)["cells"])


def test_corrupt_summary_is_a_clean_error(run, capsys) -> None:
    _, out = run
    (out / "summary.json").write_text("{not json")
    for command in ("show", "report"):
        assert cli(command, str(out)) == 2
        err = capsys.readouterr().err
        assert "summary is corrupt" in err and "Traceback" not in err
    assert sys.modules.get("harness.results") is not None
