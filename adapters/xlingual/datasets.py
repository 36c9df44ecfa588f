"""Dataset adapters: ``xlingual/multiemo``, ``xlingual/chatterbot``, ``xlingual/folder``.

Each loads a parallel :class:`~.corpus.Corpus`, truncates texts to the word budget
(``max_words``; ``max_chars`` for ja/zh), and picks the query ids: ``max_queries`` ids of
the source language drawn with ``query_seed`` (independent of the run's seeds, so every
seed and method sees the same queries; only the demonstrations vary with the seed),
stratified by label by default so that a small subset keeps every label (multiemo's
negative reviews are 10%: a plain draw of 16 has none 18% of the time).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from harness_adapters.bigbench import source as bigbench_source
from pydantic import Field

from harness import Dataset, HarnessError, Params, RunContext

from . import corpus
from .corpus import Corpus

if TYPE_CHECKING:
    from harness.context import Progress


class _Common(Params):
    source: str = Field("en", description="language of the demonstrations")
    max_words: int | None = Field(48, ge=1, description="word budget per text (None: "
                                  "no truncation)")
    max_chars: int | None = Field(96, ge=1, description="character budget per text for "
                                  "ja and zh")
    max_queries: int | None = Field(None, ge=1, description="queries per language (None: "
                                    "all)")
    query_seed: int = Field(0, description="seed of the query subset")
    stratify: bool = Field(True, description="draw the query subset per label, in "
                           "proportion, every label at least once (False: a plain draw, "
                           "which can miss a rare label)")


def _stratified(labels: list[str], k: int, rng: np.random.Generator) -> list[int]:
    """``k`` positions of ``labels``: per label in proportion to its count (largest
    remainders), at least one of each label when ``k`` allows; random within a label."""
    groups: dict[str, list[int]] = {}
    for pos, label in enumerate(labels):
        groups.setdefault(label, []).append(pos)
    names = sorted(groups)
    exact = {g: k * len(groups[g]) / len(labels) for g in names}
    take = {g: int(exact[g]) for g in names}
    if k >= len(names):
        for g in names:
            take[g] = max(1, take[g])
    while sum(take.values()) > k:  # the minimum of one overshot: trim the largest shares
        g = max((g for g in names if take[g] > 1), key=lambda g: take[g] - exact[g])
        take[g] -= 1
    while sum(take.values()) < k:  # largest remainders first (k < len(labels): room left)
        g = min((g for g in names if take[g] < len(groups[g])),
                key=lambda g: (take[g] - exact[g], g))
        take[g] += 1
    picked: list[int] = []
    for g in names:
        order = rng.permutation(len(groups[g]))[:take[g]]
        picked += [groups[g][int(j)] for j in order]
    return sorted(picked)


def select_queries(c: Corpus, max_queries: int | None, seed: int,
                   stratify: bool = True) -> Corpus:
    items = list(c.languages[c.source])
    present = set.intersection(*[{i.id for i in items} for items in c.languages.values()])
    items = [i for i in items if i.id in present] if len(c.languages) > 1 else items
    ids = [i.id for i in items]
    if max_queries is not None and max_queries < len(ids):
        rng = np.random.default_rng(seed)
        if stratify:
            order = _stratified([i.label for i in items], max_queries, rng)
        else:
            order = sorted(int(j) for j in rng.permutation(len(ids))[:max_queries])
        ids = [ids[j] for j in order]
    if not ids:
        raise HarnessError(f"{c.name}: no query id is present in every language")
    c.info["query_ids"] = ids
    return c


class Multiemo(Dataset):
    """BIG-bench's multiemo reviews (11 parallel languages), as the bigbench adapter
    finds tasks (path, tasks folder, installed package, verified PyPI sdist cache)."""

    name = "xlingual/multiemo"
    fingerprint_cacheable = False  # reads files: always loaded to be fingerprinted
    version = "1"

    class Params(_Common):
        languages: list[str] = Field(list(corpus.MULTIEMO_LANGUAGES))
        tasks_dir: str | None = Field(None, description="folder(s) of BIG-bench task "
                                      "folders (default: $HARNESS_BIGBENCH_TASKS)")
        sources: list[Literal["path", "folder", "package", "pypi"]] = Field(
            ["path", "folder", "package", "pypi"], description="where to look, in order")
        pypi_version: str = Field("1.0.0")
        download: bool = Field(True, description="allow downloading the bigbench sdist")
        demo_task: str | None = Field(None, description="ablation: take the "
                                      "demonstrations from this other BIG-bench task "
                                      "(e.g. intent_recognition), breaking the method")

    def _locators(self, cache_dir: Path, download: bool,
                  progress: Progress | None) -> tuple[Any, Any]:
        """``(locate, locate_review)``: a BIG-bench task's folder, and a review task's."""
        p = self.params

        def locate(task: str, order: tuple[str, ...] = tuple(p.sources)) -> Path:
            return bigbench_source.locate(task, tasks_dir=p.tasks_dir, cache_dir=cache_dir,
                                          version=p.pypi_version, download=download,
                                          progress=progress, order=order)

        def locate_review(task: str) -> Path:
            # a tasks folder may hold standalone tasks multiemo_reviews_text_XX; BIG-bench
            # itself ships them as subtasks multiemo/reviews_text_XX
            local = tuple(s for s in p.sources if s != "pypi")
            if local:
                try:
                    return locate(task, local)
                except HarnessError:
                    pass
            folder = locate("multiemo") / task.removeprefix("multiemo_")
            if not (folder / "task.json").is_file():
                raise HarnessError(f"BIG-bench's multiemo has no subtask {folder.name!r}")
            return folder

        return locate, locate_review

    def inputs(self, cache_dir: Path) -> list[Path] | None:
        """The review tasks' folders (and the demonstration task's), found locally."""
        p = self.params
        locate, locate_review = self._locators(cache_dir, download=False, progress=None)
        try:
            paths = [locate_review(f"multiemo_reviews_text_{lang}")
                     for lang in dict.fromkeys([p.source, *p.languages])]
            return paths + ([locate(p.demo_task)] if p.demo_task else [])
        except HarnessError:
            return None

    def load(self, ctx: RunContext) -> Corpus:
        p = self.params
        locate, locate_review = self._locators(ctx.cache_dir, p.download, ctx.progress)
        c = corpus.multiemo(locate_review, p.languages, p.source, p.max_words, p.max_chars)
        if p.demo_task:
            folder = locate(p.demo_task)
            items, _, _ = corpus.bigbench_items(folder, p.source, p.max_words, p.max_chars)
            c.foreign_demos = [corpus.Item(f"{p.demo_task}:{i.id}", i.text, i.label)
                               for i in items]
        return select_queries(c, p.max_queries, p.query_seed, p.stratify)


class Chatterbot(Dataset):
    """Topic classification on chatterbot-corpus (YAML conversations per category per
    language; BSD-3, installed from PyPI with the `xlingual` extra)."""

    name = "xlingual/chatterbot"
    fingerprint_cacheable = False  # reads files: always loaded to be fingerprinted
    version = "1"

    class Params(_Common):
        languages: list[str] = Field(["en", "it", "ja", "zh"])
        categories: list[str] = Field(["food", "movies", "money", "sports", "science"],
                                      description="categories (YAML file names) to classify")

    def inputs(self, cache_dir: Path) -> list[Path] | None:
        """The requested languages' folders of the installed chatterbot-corpus."""
        p = self.params
        try:
            root = corpus.chatterbot_root()
        except HarnessError:
            return None
        return [root / corpus.CHATTERBOT_FOLDERS.get(lang, lang)
                for lang in dict.fromkeys([p.source, *p.languages])]

    def load(self, ctx: RunContext) -> Corpus:
        p = self.params
        c = corpus.chatterbot(p.languages, p.source, p.categories, p.max_words, p.max_chars)
        return select_queries(c, p.max_queries, p.query_seed, p.stratify)


class Folder(Dataset):
    """A user's corpus: ``path/<language>/<label>.txt`` (a text per line) or
    ``path/<language>/<label>/*.txt``."""

    name = "xlingual/folder"
    fingerprint_cacheable = False  # reads files: always loaded to be fingerprinted
    version = "1"

    class Params(_Common):
        path: str = Field(..., description="folder with one sub-folder per language")
        languages: list[str] | None = Field(None, description="default: every sub-folder")
        instruction: str = Field("", description="the task's own instruction "
                                 "(used by xlingual/icl with instruction: '{task}')")

    def inputs(self, cache_dir: Path) -> list[Path] | None:
        return [Path(self.params.path).expanduser()]

    def load(self, ctx: RunContext) -> Corpus:
        p = self.params
        c = corpus.folder(Path(p.path).expanduser(), p.languages, p.source, p.max_words,
                          p.max_chars, name=Path(p.path).name or "folder")
        c.instruction = p.instruction
        return select_queries(c, p.max_queries, p.query_seed, p.stratify)


DATASETS: list[type[Dataset]] = [Multiemo, Chatterbot, Folder]
