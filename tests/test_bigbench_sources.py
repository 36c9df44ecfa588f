"""Where tasks come from: explicit path, tasks folder, installed package, PyPI sdist cache
(only the requested tasks extracted, integrity checked, human raters read safely)."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from harness_adapters.bigbench import source
from harness_adapters.bigbench.dataset import BigBenchTask

from harness import HarnessError, RunContext


def task_json(name: str, n: int = 4) -> dict:
    return {"canary": "c", "name": name, "description": "d", "keywords": ["k"],
            "metrics": ["multiple_choice_grade"], "preferred_score": "multiple_choice_grade",
            "examples": [{"input": f"q{i}", "target_scores": {"yes": int(i % 2 == 0),
                                                               "no": int(i % 2 == 1)}}
                         for i in range(n)]}


def write_task(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "task.json").write_text(json.dumps(task_json(name)))
    return folder


def make_sdist(path: Path, raters: object | None = None) -> str:
    """A small stand-in for the bigbench sdist: two tasks and the human-rater pickle."""
    if raters is None:
        raters = {"average": {"toy": {"multiple_choice_grade": np.float64(80.0)}},
                  "expert": {"toy": {"multiple_choice_grade": np.float64(100.0)}}}
    files = {"bigbench-9.9/setup.py": b"",
             "bigbench-9.9/bigbench/benchmark_tasks/toy/task.json":
                 json.dumps(task_json("toy")).encode(),
             "bigbench-9.9/bigbench/benchmark_tasks/toy/README.md": b"toy",
             "bigbench-9.9/bigbench/benchmark_tasks/other/task.json":
                 json.dumps(task_json("other")).encode(),
             "bigbench-9.9/bigbench/benchmark_tasks/task_human_eval.pkl": pickle.dumps(raters)}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(tmp_path: Path, **params: object) -> object:
    ctx = RunContext(seed=0, cache_dir=tmp_path / "cache")
    return BigBenchTask(BigBenchTask.Params(**params)).load(ctx)


def test_pypi_cache_extracts_only_requested_tasks(tmp_path: Path) -> None:
    archive = tmp_path / "bigbench-9.9.tar.gz"
    sha = make_sdist(archive)
    task = load(tmp_path, task="toy", sources=["pypi"], archive_url=str(archive),
                archive_sha256=sha, pypi_version="9.9")
    root = tmp_path / "cache" / "bigbench" / "9.9"
    assert task.name == "toy" and len(task.examples) == 4
    assert (root / "toy" / "README.md").is_file() and not (root / "other").exists()
    assert task.human == {"average": {"multiple_choice_grade": 80.0},
                          "expert": {"multiple_choice_grade": 100.0}}
    manifest = json.loads((root / "toy" / ".harness-manifest.json").read_text())
    assert manifest["archive_sha256"] == sha and "task.json" in manifest["files"]
    # a second task comes from the kept archive, without a new download, and leaves the
    # human-rater file the first task's fingerprint stamped untouched
    raters = root / "human_raters.json"
    stamp = raters.stat().st_mtime_ns
    archive.unlink()
    assert load(tmp_path, task="other", sources=["pypi"], archive_url=str(archive),
                archive_sha256=sha, pypi_version="9.9").name == "other"
    assert raters.stat().st_mtime_ns == stamp and not list(root.glob("*human_raters.json.*"))
    # tampering with a cached file is detected
    (root / "toy" / "task.json").write_text(json.dumps(task_json("toy", 5)))
    with pytest.raises(HarnessError, match="integrity check"):
        load(tmp_path, task="toy", sources=["pypi"], archive_url=str(archive),
             archive_sha256=sha, pypi_version="9.9")


def test_pypi_download_with_a_wrong_digest_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bigbench-9.9.tar.gz"
    make_sdist(archive)
    with pytest.raises(HarnessError, match="integrity check failed") as err:
        load(tmp_path, task="toy", sources=["pypi"], archive_url=str(archive),
             archive_sha256="0" * 64, pypi_version="9.9")
    assert "tampered" in err.value.render()
    downloads = tmp_path / "cache" / "bigbench" / "downloads"
    assert not any(downloads.iterdir())  # nothing half-trusted is kept
    with pytest.raises(HarnessError, match="no JSON task named 'nope'"):
        load(tmp_path, task="nope", sources=["pypi"], archive_url=str(archive),
             archive_sha256=make_sdist(archive), pypi_version="9.9")


def test_human_rater_pickle_admits_only_numpy_scalars(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))
    archive = tmp_path / "bigbench-9.9.tar.gz"
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"average": {"toy": Evil()}}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.print"):
        source.read_human_pkl(tmp_path / "evil.pkl")
    sha = make_sdist(archive, raters={"average": {"toy": Evil()}, "expert": {}})
    task = load(tmp_path, task="toy", sources=["pypi"], archive_url=str(archive),
                archive_sha256=sha, pypi_version="9.9")
    assert task.human == {}  # the rater file is ignored, the task still loads


def test_lookup_order_path_folder_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.delenv("HARNESS_BIGBENCH_TASKS", raising=False)
    explicit = write_task(tmp_path / "mine" / "toy", "from-path")
    folder = write_task(tmp_path / "tasks" / "toy", "from-folder")
    (tmp_path / "tasks" / "human_raters.json").write_text(json.dumps(
        {"average": {"from-folder": {"multiple_choice_grade": 55.0}}, "expert": {}}))
    pkg = tmp_path / "site" / "bigbench"
    write_task(pkg / "benchmark_tasks" / "toy", "from-package")
    (pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    sys.modules.pop("bigbench", None)
    no_pypi = ["path", "folder", "package"]
    assert load(tmp_path, task=str(explicit), sources=no_pypi).name == "from-path"
    assert load(tmp_path, task=str(explicit / "task.json")).name == "from-path"
    got = load(tmp_path, task="toy", tasks_dir=str(folder.parent), sources=no_pypi)
    assert got.name == "from-folder" and got.human == {
        "average": {"multiple_choice_grade": 55.0}}
    monkeypatch.setenv("HARNESS_BIGBENCH_TASKS", str(tmp_path / "tasks"))
    assert load(tmp_path, task="toy", sources=no_pypi).name == "from-folder"
    monkeypatch.delenv("HARNESS_BIGBENCH_TASKS")
    assert load(tmp_path, task="toy", sources=no_pypi).name == "from-package"
    with pytest.raises(HarnessError, match="not found") as err:
        load(tmp_path, task="absent", sources=no_pypi)
    assert "HARNESS_BIGBENCH_TASKS" in err.value.render()
    with pytest.raises(HarnessError, match="no BIG-bench task at"):
        load(tmp_path, task=str(tmp_path / "nowhere" / "task.json"))


def test_subtask_syntax_and_validation(tmp_path: Path, bigbench_dir: Path) -> None:
    tasks = str(bigbench_dir / "tasks")
    one = load(tmp_path, task="conlang_translation:adna_from", tasks_dir=tasks,
               sources=["folder"])
    assert [t.name for t in one.leaves()] == ["conlang_translation:adna_from"]
    assert one.human["average"]["rougeLsum"] > 0  # the whole task's raters
    bad = tmp_path / "bad"
    bad.mkdir()
    data = task_json("bad")
    data["metrics"] = ["accuracy"]
    (bad / "task.json").write_text(json.dumps(data))
    with pytest.raises(HarnessError, match="metric 'accuracy' is not supported"):
        load(tmp_path, task=str(bad))


def test_manifest_is_hashed_once_then_trusted_while_stat_data_is_unchanged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "bigbench-9.9.tar.gz"
    sha = make_sdist(archive)
    kw = dict(task="toy", sources=["pypi"], archive_url=str(archive), archive_sha256=sha,
              pypi_version="9.9")
    load(tmp_path, **kw)
    folder = tmp_path / "cache" / "bigbench" / "9.9" / "toy"
    hashed: list[str] = []
    real = source.file_sha256
    monkeypatch.setattr(source, "file_sha256", lambda p: hashed.append(Path(p).name) or real(p))
    load(tmp_path, **kw)
    load(tmp_path, **kw)
    assert (folder / source.VERIFIED).is_file() and hashed == []  # stat data unchanged
    # same size, new bytes, new mtime: the next use hashes again and refuses it
    data = (folder / "README.md").read_bytes()
    (folder / "README.md").write_bytes(data.upper())
    with pytest.raises(HarnessError, match="integrity check"):
        load(tmp_path, **kw)
    assert "README.md" in hashed
    # restored, it passes the full check once and is trusted again
    (folder / "README.md").write_bytes(data)
    hashed.clear()
    load(tmp_path, **kw)
    assert "task.json" in hashed
    hashed.clear()
    load(tmp_path, **kw)
    assert hashed == []
