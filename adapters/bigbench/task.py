"""BIG-bench JSON tasks: parsing, prompt formatting and few-shot construction.

Reimplements the JSON-task half of BIG-bench (Srivastava et al., "Beyond the Imitation
Game: Quantifying and extrapolating the capabilities of language models", arXiv
2206.04615; reference code ``bigbench/api/json_task.py`` of google/BIG-bench, PyPI
``bigbench==1.0.0``) so that the prompts this harness builds are the prompts BIG-bench
builds, character for character:

- examples are de-duplicated on their JSON text, keeping first occurrences in order;
- each example is formatted as ``input_prefix + input [+ choice_prefix + choices] +
  output_prefix``; appended choices are the sorted choice strings permuted by a fresh
  ``numpy.random.RandomState(seed)`` for every example (the same permutation for every
  example with the same number of choices), while the choices the model scores keep
  the order of ``target_scores`` in the JSON file;
- a missing ``target`` becomes the first choice with the highest score;
- few-shot prompts follow ``make_nshot_dataset`` as ``evaluate_fixed_shot`` calls it:
  one ``RandomState(seed)`` per evaluation and always ``max_examples=num_examples``
  (which is ``len(examples)`` when the task sets no ``max_examples``), so with one shot
  or more the queries are first drawn by ``rng.choice(..., replace=False)``, i.e. a
  permutation of all examples when nothing limits them (0 shots keep the file order
  unless a limit applies); then for every query ``shots`` distinct other examples are
  drawn without replacement and each contributes ``input + rng.choice(target)``, all
  joined with the task's separator. Each query keeps its position in the file as
  ``query_index``, which pairs the same example across shot counts;
- the task prefix is prepended to every prompt;
- subtasks are the ``task.json`` files one folder down, in sorted path order, named
  ``parent:child``; ``max_examples`` is split evenly (floor) between them;
- the normalized score's range follows BIG-bench, not the task file: ``low_score`` is
  the task's mean chance score for ``multiple_choice_grade`` (mean over examples of the
  mean target score) and the metric's fixed range otherwise (``SCORE_RANGES``). The
  ``low_score``/``high_score`` keys some task files carry are ignored, as BIG-bench does.

Index-based ``rng.choice(len(x))`` draws are used where BIG-bench passes the list itself:
numpy's legacy generator consumes the same random numbers either way (only the
population size matters), which the tests check.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import HarnessError

GENERATIVE_METRICS = ["bleu", "bleurt", "exact_str_match", "case_insensitive_str_match",
                      "sequence_f1", "numeric_match_with_0_1_relative_error", "rouge"]
SCORING_METRICS = ["log_likelihood"]
MULTIPLE_CHOICE_METRICS = ["multiple_choice_grade", "calibration_multiple_choice_brier_score",
                           "expected_calibration_error", "weighted_log_probabilities",
                           "weighted_probabilities", "macro_f1"]
SCORE_RANGES: dict[str, tuple[float, float]] = {
    "bleu": (0.0, 100.0), "sequence_f1": (0.0, 100.0), "bleurt": (-0.1, 1.1),
    "calibration_multiple_choice_brier_score": (0.0, 1.0),
    "expected_calibration_error": (0.0, 1.0), "exact_str_match": (0.0, 1.0),
    "case_insensitive_str_match": (0.0, 1.0), "log_likelihood": (-10.0, 0.0),
    "multiple_choice_grade": (0.0, 1.0), "numeric_match_with_0_1_relative_error": (0.0, 1.0),
    "rouge1": (0.0, 100.0), "rouge2": (0.0, 100.0), "rougeLsum": (0.0, 100.0),
    "weighted_log_probabilities": (-10.0, 0.0), "weighted_probabilities": (-1.0, 1.0),
    "macro_f1": (0.0, 1.0),
}
DEFAULT_REGEX = r"[^\.\?\!\;\n]+"
REQUIRED_KEYS = ("canary", "name", "description", "keywords")
LEAF_KEYS = ("metrics", "examples", "preferred_score")


def _error(task: str, msg: str) -> HarnessError:
    return HarnessError(f"BIG-bench task {task!r}: {msg}",
                        hint="check the task.json against BIG-bench's JSON task schema")


def format_example(sample: dict[str, Any], input_prefix: str, output_prefix: str,
                   choice_prefix: str, seed: int, append_choices: bool = True,
                   task: str = "?") -> dict[str, Any]:
    """Format one raw example in place (as BIG-bench's ``default_format_fn``) and return it."""
    rng = np.random.RandomState(seed=seed)
    if "target_scores" in sample:
        scores = sample["target_scores"]
        if append_choices:
            permuted = rng.permutation(sorted(scores.keys()))
            sample["input"] = sample["input"] + choice_prefix + choice_prefix.join(permuted)
        if "target" not in sample:
            hi, lo = max(scores.values()), min(scores.values())
            if (len(scores) == 1 and hi == 0) or (len(scores) > 1 and hi <= lo):
                raise _error(task, f"no correct choice in example {sample['input'][:80]!r}")
            sample["target"] = [k for k, v in scores.items() if v == hi][0]
        sample["choice"] = list(scores.keys())
    sample["input"] = input_prefix + sample["input"] + output_prefix
    if not isinstance(sample["target"], list):
        sample["target"] = [sample["target"]]
    return sample


def nshot_samples(samples: list[dict[str, Any]], shots: int, seed: int, separator: str = " ",
                  max_examples: int | None = None, *,
                  pool: list[dict[str, Any]] | None = None,
                  leak_query: bool = False) -> list[dict[str, Any]]:
    """BIG-bench's ``make_nshot_dataset``: the query samples with ``shots`` examples prepended.

    Random-number semantics are BIG-bench's: one ``RandomState(seed)`` for the call, the
    query draw first (when ``max_examples`` is given: BIG-bench's ``evaluate_fixed_shot``
    always gives it, see :meth:`JsonTask.samples`), then per query the shot examples
    (without replacement, among the samples not equal to the query, or among ``pool``
    when given) and one target per shot. Every returned sample carries ``query_index``,
    the query's position in ``samples``.
    """
    rng = np.random.RandomState(seed=seed)
    samples = copy.deepcopy(samples)
    order = list(range(len(samples)))
    if shots == 0:
        if max_examples and max_examples < len(samples):
            order = [int(i) for i in rng.choice(len(samples), max_examples, replace=False)]
        return [dict(samples[i], query_index=i) for i in order]
    if len(samples) < shots + 1:
        raise HarnessError(f"{len(samples)} examples are not enough for {shots} shots",
                           hint="lower `shots`")
    if max_examples is not None:
        order = [int(i) for i in rng.choice(len(samples), max_examples, replace=False)]
    out = []
    for i in order:
        sample = samples[i]
        query = copy.deepcopy(sample)
        candidates = pool if pool is not None else [x for x in samples if x != sample]
        picked = [candidates[j] for j in rng.choice(len(candidates), shots, replace=False)]
        if leak_query:  # a deliberate bug: the query, answered, is the last shot
            picked[-1] = sample
        context = separator.join(
            ex["input"] + ex["target"][rng.choice(len(ex["target"]))] for ex in picked)
        query["input"] = context + separator + query["input"]
        query["query_index"] = i
        out.append(query)
    return out


@dataclass
class JsonTask:
    """A BIG-bench JSON task (a leaf with examples, or a container of subtasks)."""

    name: str
    data: dict[str, Any]
    path: str = ""
    subtasks: list[JsonTask] = field(default_factory=list)
    max_examples: int | None = None
    seed: int = 42
    metrics: list[str] = field(default_factory=list)
    preferred_score: str = ""
    low_score: float = 0.0
    high_score: float = 1.0
    task_prefix: str = ""
    output_regex: str | None = None
    stop_string: str | None = None
    separator: str = "\n"
    absolute_normalization: bool = False
    examples: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    origin: str = ""  # the folder the task was read from
    subset: list[str] = field(default_factory=list)  # the subtasks kept, when filtered
    human: dict[str, dict[str, float]] = field(default_factory=dict)  # human-rater scores

    # -- structure -----------------------------------------------------------------
    @property
    def is_container(self) -> bool:
        return bool(self.subtasks)

    def leaves(self) -> list[JsonTask]:
        """The tasks that hold examples, in evaluation order."""
        if not self.subtasks:
            return [self]
        return [leaf for t in self.subtasks for leaf in t.leaves()]

    @property
    def generative_metrics(self) -> list[str]:
        return [m for m in self.metrics if m in GENERATIVE_METRICS]

    @property
    def scoring_metrics(self) -> list[str]:
        return [m for m in self.metrics if m in SCORING_METRICS]

    @property
    def multiple_choice_metrics(self) -> list[str]:
        found = [m for m in self.metrics if m in MULTIPLE_CHOICE_METRICS]
        if "multiple_choice_grade" in found:  # BIG-bench adds the calibration metrics
            found += ["calibration_multiple_choice_brier_score", "expected_calibration_error"]
        return found

    @property
    def num_examples(self) -> int:
        if self.subtasks:
            return sum(t.num_examples for t in self.subtasks)
        if self.max_examples:
            return min(self.max_examples, len(self.examples))
        return len(self.examples)

    def samples(self, shots: int, *, pool: list[dict[str, Any]] | None = None,
                leak_query: bool = False) -> list[dict[str, Any]]:
        """The evaluation samples of this leaf for ``shots`` shots (prompts without the
        task prefix, as BIG-bench keeps them; see :meth:`prompts`).

        As BIG-bench's ``evaluate_fixed_shot``, the query count is always passed on
        (``max_examples=self.num_examples``, all examples when the task sets no limit):
        with shots, the queries come in a seeded random order. ``pool`` (shots drawn from
        other examples) and ``leak_query`` are the ablations of ``bigbench/evaluate``.
        """
        return nshot_samples(self.examples, shots, self.seed, self.separator,
                             self.num_examples, pool=pool, leak_query=leak_query)

    def prompts(self, samples: list[dict[str, Any]]) -> list[str]:
        return [self.task_prefix + s["input"] for s in samples]

    def info(self) -> dict[str, Any]:
        """What metrics need to know about this leaf (JSON-serializable)."""
        return {"name": self.name, "metrics": list(self.metrics),
                "preferred_score": self.preferred_score, "low_score": self.low_score,
                "high_score": self.high_score,
                "absolute_normalization": self.absolute_normalization}

    def fingerprint(self) -> str:
        blob = json.dumps({"data": self.data, "max": self.max_examples, "seed": self.seed,
                           "name": self.name,
                           "subtasks": [t.fingerprint() for t in self.subtasks]},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _subtask_files(folder: Path) -> list[Path]:
    return sorted((d / "task.json" for d in folder.iterdir()
                   if d.is_dir() and (d / "task.json").is_file()), key=str)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, object_pairs_hook=OrderedDict)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}: invalid JSON ({exc})") from None


def load_task(source: str | Path | dict[str, Any], *, max_examples: int | None = None,
              seed: int = 42, max_shots: int = 0, parent: str | None = None,
              only: list[str] | None = None) -> JsonTask:
    """Load a JSON task from a ``task.json`` path, its folder, or a dict (BIG-bench rules).

    ``only`` keeps the named subtasks of a container task (names as in their JSON, with or
    without the ``parent:`` prefix); ``max_examples`` is then split among those.
    """
    path = ""
    folders: list[str] = []
    if isinstance(source, dict):
        data = json.loads(json.dumps(source), object_pairs_hook=OrderedDict)
    else:
        p = Path(source)
        if p.is_dir():
            p = p / "task.json"
        if not p.is_file():
            raise HarnessError(f"no BIG-bench task file at {p}")
        path = str(p)
        data = _read_json(p)
        if "examples" not in data:
            files = _subtask_files(p.parent)
            if not files:
                raise _error(str(p), "has neither examples nor subtask folders")
            data["subtasks"] = [_read_json(f) for f in files]
            folders = [f.parent.name for f in files]
    if "name" not in data:
        raise _error(path or "<dict>", "has no name")
    raw_name = data["name"].encode("ascii", errors="replace").decode()
    name = f"{parent}:{raw_name}" if parent else raw_name
    for key in REQUIRED_KEYS:
        if key not in data:
            raise _error(name, f"needs a {key!r} field")
    task = JsonTask(name=name, data=data, path=path, max_examples=max_examples, seed=seed,
                    absolute_normalization=bool(data.get("absolute_normalization", False)))
    sub_max = None
    subs = data.get("subtasks", [])
    if only:
        if not subs:
            raise _error(name, f"has no subtasks to select {only} from")
        folders = folders or [""] * len(subs)
        aliases = [{str(s.get("name", "")), folder,
                    str(s.get("name", "")).encode("ascii", errors="replace").decode()}
                   for s, folder in zip(subs, folders, strict=True)]
        wanted = {o.split(":", 1)[1] if o.startswith(f"{name}:") else o for o in only}
        known = set().union(*aliases)
        missing = sorted(w for w in wanted if w not in known)
        if missing:
            raise HarnessError(f"BIG-bench task {name!r} has no subtask {missing[0]!r}",
                               hint="its subtasks: " + ", ".join(
                                   sorted(a for a in known if a)))
        subs = [s for s, names in zip(subs, aliases, strict=True) if names & wanted]
        data["subtasks"] = subs
    if max_examples and subs:
        sub_max = max_examples // len(subs)
        if sub_max < 1:
            raise _error(name, f"max_examples ({max_examples}) must be >= the number of "
                         f"subtasks ({len(subs)})")
    task.subtasks = [load_task(s, max_examples=sub_max, seed=seed, max_shots=max_shots,
                               parent=name) for s in subs]
    names = [t.name for t in task.subtasks]
    if len(set(names)) != len(names):
        raise _error(name, "has duplicated subtask names")
    if task.subtasks:
        return task
    _fill_leaf(task, max_shots)
    return task


def _fill_leaf(task: JsonTask, max_shots: int) -> None:
    data, name = task.data, task.name
    for key in LEAF_KEYS:
        if key not in data:
            raise _error(name, f"needs a {key!r} field")
    task.metrics = list(data["metrics"])
    known = GENERATIVE_METRICS + MULTIPLE_CHOICE_METRICS + SCORING_METRICS
    for metric in task.metrics:
        if metric not in known:
            raise _error(name, f"metric {metric!r} is not supported")
    distinct, seen = [], set()
    for ex in data["examples"]:
        key = json.dumps(ex)
        if key not in seen:
            seen.add(key)
            distinct.append(ex)
    task.duplicates = len(data["examples"]) - len(distinct)
    if len(distinct) < max_shots + 1:
        raise _error(name, f"{len(distinct)} distinct examples are not enough for "
                     f"{max_shots} shots")
    for ex in distinct:
        if not isinstance(ex, dict):
            raise _error(name, "examples must be objects")
        if "input" not in ex or not ("target" in ex or "target_scores" in ex):
            raise _error(name, "an example lacks an input, or both target and target_scores")
        if task.multiple_choice_metrics and "target_scores" not in ex:
            raise _error(name, "multiple-choice metrics need target_scores in every example")
        if (task.generative_metrics or task.scoring_metrics) and "target" not in ex:
            raise _error(name, "generative metrics need a target in every example")
    examples = copy.deepcopy(distinct)
    task.examples = [
        format_example(ex, data.get("example_input_prefix", "\nQ: "),
                       data.get("example_output_prefix", "\nA: "),
                       data.get("choice_prefix", "\n  choice: "), task.seed,
                       data.get("append_choices_to_input", True), name)
        for ex in examples]
    task.separator = data.get("few_shot_example_separator", "\n")
    preferred = data["preferred_score"]
    if preferred == "rouge":
        raise _error(name, "preferred_score 'rouge' must be one of rouge1, rouge2, rougeLsum")
    if preferred not in SCORE_RANGES:
        raise _error(name, f"preferred_score {preferred!r} has no known score range")
    task.preferred_score = preferred
    task.low_score, task.high_score = SCORE_RANGES[preferred]
    if preferred == "multiple_choice_grade":
        # chance: mean over examples of the mean target score (BIG-bench's summation order)
        total = 0.0
        for ex in distinct:
            vals = ex["target_scores"].values()
            total += sum(vals) / len(vals)
        task.low_score = total / len(distinct)
    if task.high_score <= task.low_score:
        raise _error(name, f"high score {task.high_score} must exceed low score "
                     f"{task.low_score}")
    task.task_prefix = str(data.get("task_prefix", ""))
    task.output_regex = data.get("output_regex")
    task.stop_string = data.get("stop_string")
    if task.output_regex is None and task.stop_string is None:
        task.output_regex = DEFAULT_REGEX
    try:
        if task.output_regex is not None:
            re.compile(task.output_regex)
    except re.error as exc:
        raise _error(name, f"output_regex does not compile: {exc}") from None
