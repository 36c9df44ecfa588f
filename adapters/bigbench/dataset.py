"""Dataset ``bigbench/task``: a BIG-bench JSON task by name or path, with its subtasks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness import Dataset, HarnessError, Params, RunContext

if TYPE_CHECKING:
    from harness.context import Progress

from . import source
from .task import JsonTask, load_task

SOURCES = ("path", "folder", "package", "pypi")


class BigBenchTask(Dataset):
    """A BIG-bench JSON task (by name or path) with its subtasks, BIG-bench's formatting."""

    name = "bigbench/task"
    fingerprint_cacheable = False  # reads files: always loaded to be fingerprinted
    version = "1"

    class Params(Params):
        task: str = Field(..., description="task name (e.g. intent_recognition), "
                          "`task:subtask`, or a path to a task.json or its folder")
        subtasks: list[str] | None = Field(None, description="keep only these subtasks")
        max_examples: int | None = Field(None, ge=1, description="BIG-bench's max_examples "
                                         "(split evenly between subtasks)")
        seed: int = Field(42, description="BIG-bench's random_seed: choice order of "
                          "appended choices, example subsets and few-shot draws")
        tasks_dir: str | None = Field(None, description="folder(s) of task folders "
                                      "(default: $HARNESS_BIGBENCH_TASKS)")
        sources: list[Literal["path", "folder", "package", "pypi"]] = Field(
            list(SOURCES), description="where to look, in this order")
        pypi_version: str = Field("1.0.0", description="bigbench sdist version to fetch")
        download: bool = Field(True, description="allow downloading the sdist from PyPI")
        archive_url: str | None = Field(None, description="fetch this sdist (URL or path) "
                                        "instead of PyPI's")
        archive_sha256: str | None = Field(None, description="SHA-256 of archive_url")

    def _name(self) -> tuple[str, list[str]]:
        name, only = self.params.task, list(self.params.subtasks or [])
        if ":" in name and not name.endswith(".json"):
            name, sub = name.split(":", 1)
            only.append(sub)
        return name, only

    def _locate(self, cache_dir: Path, download: bool, progress: Progress | None) -> Path:
        p = self.params
        return source.locate(self._name()[0], tasks_dir=p.tasks_dir, cache_dir=cache_dir,
                             version=p.pypi_version, download=download,
                             archive_url=p.archive_url, archive_sha256=p.archive_sha256,
                             progress=progress, order=tuple(p.sources))

    def inputs(self, cache_dir: Path) -> list[Path] | None:
        """The task's folder and where its human-rater scores may be (nothing is
        downloaded: a task not found locally is loaded instead)."""
        try:
            folder = self._locate(cache_dir, download=False, progress=None)
        except HarnessError:
            return None
        return [folder, *source.human_rater_candidates(folder)]

    def load(self, ctx: RunContext) -> JsonTask:
        p = self.params
        name, only = self._name()
        folder = self._locate(ctx.cache_dir, download=p.download, progress=ctx.progress)
        task = load_task(folder, max_examples=p.max_examples, seed=p.seed, only=only or None)
        if not task.leaves() or not task.leaves()[0].examples:
            raise HarnessError(f"BIG-bench task {name!r} has no examples")
        task.origin = str(folder)
        task.subset = [leaf.name for leaf in task.leaves()] if only else []
        task.human = source.human_scores(folder, task.name)
        return task
