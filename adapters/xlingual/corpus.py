"""Parallel labelled corpora for cross-lingual in-context learning, and their loaders.

A :class:`Corpus` holds, per language, items ``(id, text, label)``; the same ``id`` in two
languages is the same example translated (the multiemo reviews are parallel by position),
which is how a query is kept from seeing its own review among the demonstrations.

Loaders:

- :func:`multiemo`: BIG-bench's ``multiemo_reviews_text_XX`` tasks (found as the BIG-bench
  adapter finds tasks: a path, a tasks folder, an installed ``bigbench``, or the verified
  PyPI sdist in the harness cache; :mod:`harness_adapters.bigbench.source`);
- :func:`folder`: a user's folder ``ROOT/<language>/<label>.txt`` (one text per line) or
  ``ROOT/<language>/<label>/*.txt`` (one text per file);
- :func:`chatterbot`: the ``chatterbot-corpus`` package (BSD-3), whose YAML files are
  conversations per category per language; a conversation (its turns joined) is one text
  and its category the label.

Long texts are cut to a word budget, or a character budget for languages written without
spaces (ja, zh): :func:`truncate`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import HarnessError

#: languages whose texts are cut by characters (no spaces between words)
CHARACTER_LANGUAGES = ("ja", "zh")
MULTIEMO_LANGUAGES = ("en", "de", "es", "fr", "it", "ja", "nl", "pl", "pt", "ru", "zh")
#: chatterbot-corpus folder names for ISO codes
CHATTERBOT_FOLDERS = {"en": "english", "de": "german", "fr": "french", "it": "italian",
                      "es": "spanish", "pt": "portuguese", "ru": "russian", "ja": "japanese",
                      "zh": "chinese"}


@dataclass
class Item:
    id: str
    text: str
    label: str


@dataclass
class Corpus:
    """Per language, the items; ``labels`` are the candidate labels in scoring order."""

    name: str
    labels: list[str]
    languages: dict[str, list[Item]]
    source: str = "en"
    instruction: str = ""
    #: demonstrations from another task (a control); None: from the source language
    foreign_demos: list[Item] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def demo_pool(self) -> list[Item]:
        return self.foreign_demos if self.foreign_demos is not None \
            else self.languages[self.source]


def truncate(text: str, language: str, max_words: int | None,
             max_chars: int | None) -> str:
    """``text`` cut to ``max_words`` whitespace-separated words, or for ja/zh to
    ``max_chars`` characters (None: no limit); runs of whitespace become one space."""
    text = " ".join(text.split())
    if language in CHARACTER_LANGUAGES:
        return text if max_chars is None else text[:max_chars]
    if max_words is None:
        return text
    return " ".join(text.split(" ")[:max_words])


def _bigbench_examples(folder: Path) -> list[dict[str, Any]]:
    data = json.loads((folder / "task.json").read_text(encoding="utf-8"))
    examples = data.get("examples")
    if not examples:
        raise HarnessError(f"{folder / 'task.json'} has no examples")
    return examples


def _gold(example: dict[str, Any], where: str) -> str:
    scores = example.get("target_scores")
    if not scores:
        raise HarnessError(f"{where}: an example has no target_scores",
                           hint="cross-lingual ICL needs a multiple-choice task")
    return max(scores, key=lambda k: scores[k])


def bigbench_items(folder: Path, language: str, max_words: int | None,
                   max_chars: int | None) -> tuple[list[Item], list[str], str]:
    """Items (ids are positions), candidate labels and task prefix of a JSON task."""
    examples = _bigbench_examples(folder)
    labels = list(examples[0]["target_scores"])
    items = [Item(str(i), truncate(ex["input"], language, max_words, max_chars),
                  _gold(ex, str(folder))) for i, ex in enumerate(examples)]
    data = json.loads((folder / "task.json").read_text(encoding="utf-8"))
    return items, labels, str(data.get("task_prefix", "")).strip()


def multiemo(locate: Any, languages: list[str], source: str, max_words: int | None,
             max_chars: int | None) -> Corpus:
    """The multiemo review tasks; ``locate(task_name) -> folder`` finds each task."""
    unknown = [x for x in [*languages, source] if x not in MULTIEMO_LANGUAGES]
    if unknown:
        raise HarnessError(f"multiemo has no language {unknown[0]!r}",
                           hint=f"choose from {', '.join(MULTIEMO_LANGUAGES)}")
    langs = [source, *[x for x in languages if x != source]]
    per_lang: dict[str, list[Item]] = {}
    labels: list[str] = []
    instruction, origins = "", {}
    for lang in langs:
        folder = locate(f"multiemo_reviews_text_{lang}")
        items, lang_labels, prefix = bigbench_items(folder, lang, max_words, max_chars)
        if lang == source:
            labels, instruction = lang_labels, prefix
        elif sorted(lang_labels) != sorted(labels) or len(items) != len(per_lang[source]):
            raise HarnessError(f"multiemo_reviews_text_{lang} is not parallel to "
                               f"multiemo_reviews_text_{source}")
        per_lang[lang] = items
        origins[lang] = str(folder)
    src = per_lang[source]
    for lang, items in per_lang.items():
        if [i.label for i in items] != [i.label for i in src]:
            raise HarnessError(f"multiemo_reviews_text_{lang}: labels differ from "
                               f"{source}'s at the same positions (not parallel)")
    return Corpus("multiemo", labels, per_lang, source, instruction,
                  info={"origins": origins})


def folder(root: Path, languages: list[str] | None, source: str, max_words: int | None,
           max_chars: int | None, name: str = "folder") -> Corpus:
    """``root/<language>/<label>.txt`` (a text per line) or ``<label>/*.txt`` (a text per
    file). Ids are ``<label>:<n>`` (the n-th text of that label), so parallel folders keep
    a query's own translation out of its demonstrations."""
    if not root.is_dir():
        raise HarnessError(f"no corpus folder at {root}",
                           hint="give a folder with one sub-folder per language")
    langs = languages or sorted(p.name for p in root.iterdir() if p.is_dir())
    per_lang: dict[str, list[Item]] = {}
    for lang in langs:
        d = root / lang
        if not d.is_dir():
            raise HarnessError(f"{root} has no language folder {lang!r}",
                               hint=f"found: {', '.join(sorted(p.name for p in root.iterdir()))}")
        items: list[Item] = []
        for entry in sorted(d.iterdir()):
            if entry.is_file() and entry.suffix == ".txt":
                label = entry.stem
                texts = [t for t in entry.read_text(encoding="utf-8").splitlines() if t.strip()]
            elif entry.is_dir():
                label = entry.name
                texts = [p.read_text(encoding="utf-8") for p in sorted(entry.glob("*.txt"))]
            else:
                continue
            items += [Item(f"{label}:{n}", truncate(t, lang, max_words, max_chars), label)
                      for n, t in enumerate(texts)]
        if not items:
            raise HarnessError(f"{d} holds no texts", hint="<label>.txt files, one text a "
                               "line, or <label>/ folders of .txt files")
        per_lang[lang] = items
    if source not in per_lang:
        raise HarnessError(f"the source language {source!r} is not among {sorted(per_lang)}")
    labels = sorted({i.label for i in per_lang[source]})
    for lang, items in per_lang.items():
        extra = {i.label for i in items} - set(labels)
        if extra:
            raise HarnessError(f"{root / lang}: labels {sorted(extra)} are not in the "
                               f"source language {source!r}", hint="every label needs "
                               "English demonstrations")
    return Corpus(name, labels, per_lang, source, info={"origin": str(root)})


def chatterbot_root() -> Path:
    try:
        import chatterbot_corpus
    except ImportError:
        raise HarnessError("the chatterbot-corpus package is not installed",
                           hint="pip install 'harness-bench[xlingual]' "
                           "(or pip install chatterbot-corpus)") from None
    return Path(chatterbot_corpus.__file__).parent / "data"


def chatterbot(languages: list[str], source: str, categories: list[str],
               max_words: int | None, max_chars: int | None,
               root: Path | None = None) -> Corpus:
    """Topic classification on chatterbot-corpus: label = the YAML file's category, text =
    one conversation's turns joined by spaces; only ``categories`` present in every
    requested language are kept (a missing one is an error naming the file)."""
    import yaml
    root = root or chatterbot_root()
    per_lang: dict[str, list[Item]] = {}
    for lang in [source, *[x for x in languages if x != source]]:
        sub = CHATTERBOT_FOLDERS.get(lang, lang)
        items: list[Item] = []
        for cat in categories:
            path = root / sub / f"{cat}.yml"
            if not path.is_file():
                raise HarnessError(f"chatterbot-corpus has no {path.relative_to(root)}",
                                   hint="choose categories that exist in every language")
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for n, conv in enumerate(data.get("conversations") or []):
                turns = conv if isinstance(conv, list) else [conv]
                text = " ".join(str(t) for t in turns if t is not None)
                items.append(Item(f"{cat}:{n}", truncate(text, lang, max_words, max_chars),
                                  cat))
        per_lang[lang] = items
    return Corpus("chatterbot", list(categories), per_lang, source,
                  instruction="Classify the topic of each conversation.",
                  info={"origin": str(root)})
