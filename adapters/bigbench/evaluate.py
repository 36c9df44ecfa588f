"""Method ``bigbench/evaluate``: BIG-bench's ``JsonTask.evaluate_fixed_shot`` on any LM.

For each leaf task (subtasks in order) and the configured number of shots:

1. build the few-shot samples and prompts (``task_prefix + input``; :mod:`.task`);
2. multiple choice: score every choice as a continuation of the prompt (summed token
   log-probabilities, no length normalization); ``log_prob`` is the scores normalized
   across choices (``x - logsumexp(x)``) unless the task sets absolute normalization;
3. generative: decode, then BIG-bench's post-processing (``model_utils.postprocess_output``):
   keep the first ``max_length`` characters, cut after the first stop string when it
   occurs after position 0, then keep the first match of the output regex (empty if none);
4. scoring (``log_likelihood``): the log-probability of each target.

The calls reach the model in BIG-bench's order and grouping (all choices of a leaf in one
scoring call, then all its prompts in one generation call), so ``lm/dummy`` numbers its
queries as BIG-bench's DummyModel does.

Decoding stops early only where that cannot change the post-processed answer: at
``max_length`` characters, at a stop string found after position 0, or, for the default
regex, once its first match is followed by another character. For a task's own regex
without a stop string, decoding stops at the first newline after the regex's first match
(deviation: BIG-bench always decodes ``max_length`` tokens). Decoding is greedy unless
``decoding: sample`` (BIG-bench's Hugging Face model samples with top-k 40, temperature 1).

``baseline_shots: k`` also scores the choices at ``k`` shots (same draws as a separate
``shots: k`` run) and stores each example's grade there as ``baseline_correct``, so
``bigbench/shot_gain`` can compare the two shot counts on the same examples.

Ablations (each breaks the method on purpose, for the spec's controls):
``ablate_context: true`` scores every choice with an empty context (the model sees only
the choice); ``shots_from: <task>`` draws the shots from another task's examples
(formatted with that task's own prefixes; same random draws); ``leak_query: true``
replaces the last shot by the query itself with its answer (a shot pool that fails to
exclude the query, at its worst); ``leak_answer_key: true`` reads the choices' scores off
the answer key (``target_scores``) instead of the model, a scorer that leaks the labels.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from harness_adapters.lm.base import LanguageModel
from harness_adapters.lm.dummy import DummyLM
from pydantic import Field
from scipy.special import logsumexp

from harness import HarnessError, Method, Params, RunContext

from . import source
from .scoring import chosen
from .task import DEFAULT_REGEX, JsonTask, load_task


def postprocess(text: str, max_length: int | None, stop_string: str | None,
                output_regex: str | None) -> str:
    """BIG-bench's ``postprocess_output`` for one string."""
    if max_length:
        text = text[:max_length]
    if stop_string:
        i = text.find(stop_string)
        if i > 0:
            text = text[: i + len(stop_string)]
    if output_regex:
        found = next(iter(re.findall(output_regex, text)), "")
        if isinstance(found, tuple):
            raise HarnessError(f"output_regex {output_regex!r} has several groups",
                               hint="use non-capturing groups (?:...)")
        text = found
    return text


def early_stop(max_length: int, stop_string: str | None,
               output_regex: str | None) -> Callable[[str], bool]:
    """When decoding may stop (see the module docstring)."""
    pattern = re.compile(output_regex) if output_regex else None

    def until(text: str) -> bool:
        if len(text) >= max_length:
            return True
        if stop_string:
            return text.find(stop_string) > 0
        if pattern is None:
            return False
        m = pattern.search(text)
        if m is None:
            return False
        if output_regex == DEFAULT_REGEX:
            return m.end() < len(text)
        return "\n" in text[m.end():]
    return until


class Evaluate(Method):
    """BIG-bench JSON-task evaluation: multiple choice, generation and scoring, k shots."""

    name = "bigbench/evaluate"
    version = "1"

    class Params(Params):
        shots: int = Field(0, ge=0, description="number of few-shot examples")
        max_length: int | None = Field(None, ge=1, description="generation length, tokens "
                                       "and characters (default: the model's, 256)")
        decoding: Literal["greedy", "sample"] = "greedy"
        top_k: int = Field(40, ge=0, description="top-k when sampling (BIG-bench: 40)")
        temperature: float = Field(1.0, gt=0)
        multiple_choice: bool = Field(True, description="run the multiple-choice metrics")
        generative: bool = Field(True, description="run the generative metrics")
        log_likelihood_targets: bool = Field(True, description="score the targets for the "
                                             "log_likelihood metric (BIG-bench's "
                                             "generate_probs_for_targets)")
        baseline_shots: int | None = Field(None, ge=0, description="also score the "
                                           "choices at this many shots, per example "
                                           "(`baseline_correct`, for bigbench/shot_gain)")
        ablate_context: bool = Field(False, description="ablation: score choices without "
                                     "their context (breaks the method on purpose)")
        shots_from: str | None = Field(None, description="ablation: draw the shots from "
                                       "this other BIG-bench task (name or path)")
        leak_query: bool = Field(False, description="ablation: the last shot is the query "
                                 "itself with its answer (a leaking shot pool)")
        leak_answer_key: bool = Field(False, description="ablation: the choices' scores "
                                      "are read off the answer key (target_scores) instead "
                                      "of the model")

    def run(self, ctx: RunContext, data: JsonTask, model: LanguageModel) -> dict[str, Any]:
        if not isinstance(data, JsonTask):
            raise HarnessError("bigbench/evaluate needs a bigbench/task dataset")
        if not isinstance(model, LanguageModel):
            raise HarnessError("bigbench/evaluate needs a language model (lm/causal, lm/dummy)")
        p = self.params
        max_length = p.max_length or model.default_max_length
        examples: list[dict[str, Any]] = []
        timing = {"score_s": 0.0, "generate_s": 0.0, "multiple_choice_examples": 0,
                  "generated_examples": 0}
        leaves = data.leaves()
        pool = self._foreign_shots(ctx, data) if p.shots_from else None
        with ctx.progress.task(f"{data.name} {p.shots}-shot", total=len(leaves)) as tick:
            for leaf in leaves:
                if len(leaf.examples) < p.shots + 1:
                    raise HarnessError(f"{leaf.name}: {len(leaf.examples)} examples are not "
                                       f"enough for {p.shots} shots", hint="lower shots")
                examples += self._leaf(ctx, leaf, model, max_length, timing, pool)
                tick(1)
        if isinstance(model, DummyLM):
            ctx.artifact("transcript.md").write_text(model.transcript(), encoding="utf-8")
        if timing["multiple_choice_examples"] and timing["score_s"] > 0:
            timing["mc_examples_per_s"] = timing["multiple_choice_examples"] / timing["score_s"]
        return {"examples": examples, "task": data.name, "shots": p.shots,
                "leaves": [leaf.info() for leaf in leaves], "human_raters": data.human,
                "origin": data.origin, "subset": data.subset, "model": model.describe(),
                "timing": timing}

    def _foreign_shots(self, ctx: RunContext, data: JsonTask) -> list[dict[str, Any]]:
        """The examples of the ``shots_from`` task (all its leaves), formatted by its rules."""
        name = str(self.params.shots_from)
        sibling = Path(data.origin).parent / name if data.origin else None
        if sibling is not None and (sibling / "task.json").is_file():
            folder = sibling
        else:
            folder = source.locate(name, tasks_dir=None, cache_dir=ctx.cache_dir,
                                   version="1.0.0", download=True, progress=ctx.progress)
        other = load_task(folder, seed=data.leaves()[0].seed)
        pool = [ex for leaf in other.leaves() for ex in leaf.examples]
        if other.name == data.name:
            raise HarnessError(f"shots_from names the evaluated task {name!r} itself",
                               hint="name another task")
        return pool

    def _score_choices(self, leaf: JsonTask, model: LanguageModel, samples: list[dict[str, Any]],
                       timing: dict[str, Any]) -> None:
        prompts = leaf.prompts(samples)
        contexts = [""] * len(prompts) if self.params.ablate_context else prompts
        t0 = time.perf_counter()
        if self.params.leak_answer_key:  # the best-scored choices get all the mass
            absolute = [[0.0 if s["target_scores"][c] == max(s["target_scores"].values())
                         else -1e4 for c in s["choice"]] for s in samples]
        else:
            absolute = model.loglikelihood(contexts, [s["choice"] for s in samples])
        timing["score_s"] += time.perf_counter() - t0
        timing["multiple_choice_examples"] += len(samples)
        for s, lp in zip(samples, absolute, strict=True):
            norm = list(np.array(lp, dtype=np.float64) - logsumexp(lp))
            s["absolute_log_prob"] = [float(x) for x in lp]
            s["normalized_log_prob"] = [float(x) for x in norm]
            s["log_prob"] = s["absolute_log_prob"] if leaf.absolute_normalization \
                else s["normalized_log_prob"]

    def _leaf(self, ctx: RunContext, leaf: JsonTask, model: LanguageModel, max_length: int,
              timing: dict[str, Any], pool: list[dict[str, Any]] | None
              ) -> list[dict[str, Any]]:
        p = self.params
        samples = leaf.samples(p.shots, pool=pool, leak_query=p.leak_query)
        prompts = leaf.prompts(samples)
        if p.multiple_choice and leaf.multiple_choice_metrics:
            self._score_choices(leaf, model, samples, timing)
            if p.baseline_shots is not None:
                base = leaf.samples(p.baseline_shots, pool=pool,
                                    leak_query=p.leak_query)
                self._score_choices(leaf, model, base, timing)
                grade = {b["query_index"]: float(b["target_scores"][chosen(b)]) for b in base}
                for s in samples:
                    s["baseline_correct"] = grade[s["query_index"]]
        if p.generative and leaf.generative_metrics:
            t0 = time.perf_counter()
            raw = model.generate(prompts, max_new_tokens=max_length,
                                 until=early_stop(max_length, leaf.stop_string,
                                                  leaf.output_regex),
                                 do_sample=p.decoding == "sample", temperature=p.temperature,
                                 top_k=p.top_k, generator=ctx.derive(leaf.name).generator)
            timing["generate_s"] += time.perf_counter() - t0
            timing["generated_examples"] += len(samples)
            responses = [postprocess(r, max_length, leaf.stop_string, leaf.output_regex)
                         for r in raw]
            if isinstance(model, DummyLM):
                model.record_responses(prompts, responses)
            for s, r, out in zip(samples, raw, responses, strict=True):
                s["raw_response"], s["generative_response"] = r, out
        if p.log_likelihood_targets and leaf.scoring_metrics:
            gen = model.loglikelihood(prompts, [s["target"] for s in samples])
            for s, lp in zip(samples, gen, strict=True):
                s["log_prob_gen"] = [float(x) for x in lp]
        return [self._row(leaf, i, prompt, s) for i, (prompt, s) in
                enumerate(zip(prompts, samples, strict=True))]

    def _row(self, leaf: JsonTask, i: int, prompt: str, s: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {"task": leaf.name, "shots": self.params.shots, "index": i,
                               "example": int(s["query_index"]), "prompt": prompt,
                               "target": list(s["target"])}
        if "log_prob" in s:
            pick = chosen(s)
            row.update(choices=list(s["choice"]), target_scores=dict(s["target_scores"]),
                       scores=s["log_prob"], absolute_scores=s["absolute_log_prob"],
                       normalized_scores=s["normalized_log_prob"], prediction=pick,
                       correct=float(s["target_scores"][pick]))
        if "generative_response" in s:
            row.update(output=s["generative_response"], raw_output=s["raw_response"],
                       exact=float(s["generative_response"] in s["target"]))
        elif "log_prob" in s:
            row["output"] = row["prediction"]
        if "log_prob_gen" in s:
            row["log_prob_gen"] = s["log_prob_gen"]
        if "baseline_correct" in s:
            row["baseline_correct"] = s["baseline_correct"]
        return row
