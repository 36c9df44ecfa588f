"""Where BIG-bench tasks come from, as a user would obtain them.

A task name is looked up, in order, in

1. an explicit path (a ``task.json`` or its folder);
2. a configured tasks folder (``tasks_dir`` param, else the ``HARNESS_BIGBENCH_TASKS``
   environment variable; ``os.pathsep``-separated folders are searched in order);
3. an installed ``bigbench`` package (``bigbench/benchmark_tasks/<name>``);
4. the harness cache, filled on demand from the ``bigbench`` source distribution on PyPI:
   the archive is downloaded once (with progress), its SHA-256 checked against the digest
   PyPI publishes (pinned here for 1.0.0), and only the requested task folders (and the
   human-rater scores) are extracted. Extracted files are listed with their SHA-256 in a
   manifest that is re-checked on every later use (in full once, then by size and
   modification time while those stay as they were at the last full check).

Human-rater scores (``average`` and ``expert`` per task, BIG-bench's metric names, 0-100
scale) are found beside the tasks: a ``human_raters.json`` in or above the tasks folder,
or BIG-bench's ``task_human_eval.pkl`` (read with an unpickler that admits nothing but
numpy scalars, then cached as JSON).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import tarfile
import urllib.request
from importlib import util as import_util
from pathlib import Path
from typing import Any

from harness import HarnessError
from harness.context import Progress
from harness.fingerprint import file_sha256
from harness.results import atomic_write_text

PINNED = {"1.0.0": (
    "https://files.pythonhosted.org/packages/95/f8/c019b3579df548a04cac12342cfcb878e50ddf6cf"
    "cd7fddba8cfc721c157/bigbench-1.0.0.tar.gz",
    "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2")}
log = logging.getLogger("harness.bigbench")
PYPI_JSON = "https://pypi.org/pypi/bigbench/{version}/json"
HUMAN_PKL = "task_human_eval.pkl"


def _has_task(folder: Path) -> bool:
    return (folder / "task.json").is_file()


def configured_dirs(tasks_dir: str | None) -> list[Path]:
    text = tasks_dir if tasks_dir else os.environ.get("HARNESS_BIGBENCH_TASKS", "")
    return [Path(p).expanduser() for p in text.split(os.pathsep) if p]


def package_dir() -> Path | None:
    spec = import_util.find_spec("bigbench")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        bench = Path(loc) / "benchmark_tasks"
        if bench.is_dir():
            return bench
    return None


def cache_root(cache_dir: Path, version: str) -> Path:
    return cache_dir / "bigbench" / version


def locate(task: str, *, tasks_dir: str | None, cache_dir: Path, version: str,
           download: bool, archive_url: str | None = None, archive_sha256: str | None = None,
           progress: Progress | None = None,
           order: tuple[str, ...] = ("path", "folder", "package", "pypi")) -> Path:
    """The folder holding ``task``'s ``task.json`` (see the module docstring)."""
    tried: list[str] = []
    if "path" in order:
        p = Path(task).expanduser()
        if p.name == "task.json" and p.is_file():
            return p.parent
        if p.is_dir() and _has_task(p):
            return p
        if os.sep in task or task.endswith(".json"):
            raise HarnessError(f"no BIG-bench task at {task}",
                               hint="give a task.json file, its folder, or a task name")
    if "folder" in order:
        for d in configured_dirs(tasks_dir):
            tried.append(str(d))
            if _has_task(d / task):
                return d / task
    if "package" in order:
        pkg = package_dir()
        if pkg is not None:
            tried.append(str(pkg))
            if _has_task(pkg / task):
                return pkg / task
    if "pypi" in order:
        root = cache_root(cache_dir, version)
        if _has_task(root / task):
            verify_manifest(root / task)
            return root / task
        tried.append(str(root))
        if download:
            fetch_tasks([task], cache_dir=cache_dir, version=version, archive_url=archive_url,
                        archive_sha256=archive_sha256, progress=progress)
            if _has_task(root / task):
                return root / task
            raise HarnessError(f"BIG-bench {version} has no JSON task named {task!r}",
                               hint="task names are folder names under "
                               "bigbench/benchmark_tasks (programmatic tasks are not supported)")
    raise HarnessError(f"BIG-bench task {task!r} not found (looked in: "
                       f"{', '.join(tried) or 'nowhere'})",
                       hint="set tasks_dir or HARNESS_BIGBENCH_TASKS, pip install bigbench, "
                       "or allow the download from PyPI (download: true)")


# -- the PyPI source distribution -------------------------------------------------------
def archive_source(version: str, archive_url: str | None,
                   archive_sha256: str | None) -> tuple[str, str]:
    if archive_url:
        if not archive_sha256:
            raise HarnessError("archive_url needs archive_sha256", hint="give the SHA-256 "
                               "of the archive so that its integrity can be checked")
        return archive_url, archive_sha256
    if version in PINNED:
        return PINNED[version]
    try:
        with urllib.request.urlopen(PYPI_JSON.format(version=version), timeout=30) as r:
            meta = json.load(r)
    except Exception as exc:
        raise HarnessError(f"cannot ask PyPI about bigbench {version}: {exc}",
                           hint="check the network, or use version 1.0.0") from None
    for f in meta.get("urls", []):
        if f.get("packagetype") == "sdist":
            return f["url"], f["digests"]["sha256"]
    raise HarnessError(f"bigbench {version} has no source distribution on PyPI")


def download_archive(url: str, sha256: str, dest: Path, progress: Progress) -> Path:
    """Download ``url`` to ``dest`` (atomically) and check its SHA-256."""
    if dest.is_file():
        if file_sha256(dest) == sha256:
            return dest
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + f".part{os.getpid()}")
    h = hashlib.sha256()
    try:
        src = url if "://" in url else Path(url).resolve().as_uri()
        with urllib.request.urlopen(src, timeout=60) as r, open(part, "wb") as out, \
                progress.task(f"download {dest.name} (MiB)",
                              (int(r.headers.get("Content-Length") or 0) >> 20) or None
                              ) as tick:
            for block in iter(lambda: r.read(1 << 20), b""):
                out.write(block)
                h.update(block)
                tick(1)
    except HarnessError:
        raise
    except Exception as exc:
        part.unlink(missing_ok=True)
        raise HarnessError(f"download of {url} failed: {type(exc).__name__}: {exc}",
                           hint="check the network, or give the tasks folder with "
                           "tasks_dir") from None
    if h.hexdigest() != sha256:
        part.unlink(missing_ok=True)
        raise HarnessError(f"integrity check failed for {url}: SHA-256 {h.hexdigest()} "
                           f"!= expected {sha256}", hint="the download is corrupt or was "
                           "tampered with; it was deleted, run again to retry")
    os.replace(part, dest)
    return dest



def fetch_tasks(tasks: list[str], *, cache_dir: Path, version: str,
                archive_url: str | None = None, archive_sha256: str | None = None,
                progress: Progress | None = None) -> list[str]:
    """Extract ``tasks`` (folder names) and the human-rater file from the sdist into the
    cache; returns the tasks found."""
    url, sha = archive_source(version, archive_url, archive_sha256)
    root = cache_root(cache_dir, version)
    archive = download_archive(url, sha, cache_dir / "bigbench" / "downloads" /
                               url.rsplit("/", 1)[-1], progress or Progress())
    tmp = root.with_name(root.name + f".extract{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    found: set[str] = set()
    wanted = set(tasks)
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if "benchmark_tasks" not in parts:
                continue
            rel = parts[parts.index("benchmark_tasks") + 1:]
            if not rel or ".." in rel or not member.isfile():
                continue
            if not (rel[0] in wanted or rel == (HUMAN_PKL,)):
                continue
            data = tar.extractfile(member)
            if data is None:
                continue
            out = tmp.joinpath(*rel)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data.read())
            if rel[0] in wanted:
                found.add(rel[0])
    root.mkdir(parents=True, exist_ok=True)
    for name in sorted(found):
        write_manifest(tmp / name, archive_sha=sha)
        dest = root / name
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp / name, dest)
    if (tmp / HUMAN_PKL).is_file():
        try:
            raters = read_human_pkl(tmp / HUMAN_PKL)
            _write_if_changed(root / "human_raters.json",
                              json.dumps(raters, indent=1, sort_keys=True))
        except (pickle.UnpicklingError, KeyError, AttributeError, ValueError) as exc:
            log.warning("ignoring BIG-bench's human-rater file: %s", exc)
    shutil.rmtree(tmp, ignore_errors=True)
    return sorted(found)


def write_manifest(folder: Path, archive_sha: str) -> None:
    files = {str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*"))
             if p.is_file()}
    (folder / ".harness-manifest.json").write_text(
        json.dumps({"archive_sha256": archive_sha, "files": files}, indent=1))
    _mark_verified(folder, _listed_stamp(folder, sorted(files)))


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` unless ``path`` already holds it: extracting a second task must not
    touch the human-rater file that the first task's data fingerprint stamped (its
    modification time would invalidate that fingerprint and every stored plan using it)."""
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    atomic_write_text(path, text)


VERIFIED = ".harness-verified"


def _listed_stamp(folder: Path, rels: list[str]) -> str:
    """A hash of the manifest's and every listed file's size and modification time."""
    h = hashlib.sha256()
    for rel in [".harness-manifest.json", *rels]:
        try:
            st = (folder / rel).stat()
        except OSError:
            return "absent"
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def verify_manifest(folder: Path) -> None:
    """Check a cached task folder against its manifest: every file's SHA-256, unless no
    listed file's size or modification time changed since the last full check passed
    (recorded in ``.harness-verified``, as git's index trusts unchanged stat data)."""
    path = folder / ".harness-manifest.json"
    if not path.is_file():
        raise HarnessError(f"cached task {folder} has no manifest",
                           hint=f"delete {folder} and run again to re-extract it")
    files = json.loads(path.read_text())["files"]
    stamp = _listed_stamp(folder, sorted(files))
    marker = folder / VERIFIED
    try:
        if marker.read_text() == stamp:
            return
    except OSError:
        pass
    for rel, digest in files.items():
        p = folder / rel
        if not p.is_file() or file_sha256(p) != digest:
            raise HarnessError(f"cached task file {p} fails its integrity check",
                               hint=f"delete {folder} and run again to re-extract it")
    _mark_verified(folder, stamp)


def _mark_verified(folder: Path, stamp: str) -> None:
    part = folder / f"{VERIFIED}.{os.getpid()}"
    try:
        part.write_text(stamp)
        os.replace(part, folder / VERIFIED)
    except OSError:  # a read-only cache is checked in full every time
        part.unlink(missing_ok=True)


# -- human raters -------------------------------------------------------------------------
class _ScalarsOnly(pickle.Unpickler):
    """Admits plain containers and numpy scalars, nothing else."""

    ALLOWED = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_human_pkl(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        raw = _ScalarsOnly(f).load()
    return {who: {task: {m: float(v) for m, v in scores.items()}
                  for task, scores in raw[who].items()} for who in ("average", "expert")}


def human_rater_candidates(task_folder: Path) -> list[Path]:
    """Where a task's human-rater scores may be, in the order they are looked for."""
    return [d / name for d in [task_folder.parent, task_folder.parent.parent]
            for name in ("human_raters.json", HUMAN_PKL)]


def find_human_raters(task_folder: Path) -> Path | None:
    """A ``human_raters.json`` (or BIG-bench's pickle) in or above the task's folder."""
    for path in human_rater_candidates(task_folder):
        if path.is_file():
            return path
    return None


def human_scores(task_folder: Path, task_name: str) -> dict[str, dict[str, float]]:
    """``{"average": {...}, "expert": {...}}`` for ``task_name`` (empty when unknown)."""
    path = find_human_raters(task_folder)
    if path is None:
        return {}
    try:
        data = read_human_pkl(path) if path.suffix == ".pkl" else json.loads(path.read_text())
    except Exception:
        return {}
    return {who: dict(data.get(who, {}).get(task_name) or {}) for who in ("average", "expert")
            if data.get(who, {}).get(task_name)}
