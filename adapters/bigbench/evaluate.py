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

``ablate_context: true`` scores every choice with an empty context (the model sees only
the choice), which breaks the method on purpose.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from harness_adapters.lm.base import LanguageModel
from harness_adapters.lm.dummy import DummyLM
from pydantic import Field
from scipy.special import logsumexp

from harness import HarnessError, Method, Params, RunContext

from .scoring import chosen
from .task import DEFAULT_REGEX, JsonTask


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
        ablate_context: bool = Field(False, description="score choices without their "
                                     "context (breaks the method on purpose)")

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
        with ctx.progress.task(f"{data.name} {p.shots}-shot", total=len(leaves)) as tick:
            for leaf in leaves:
                if len(leaf.examples) < p.shots + 1:
                    raise HarnessError(f"{leaf.name}: {len(leaf.examples)} examples are not "
                                       f"enough for {p.shots} shots", hint="lower shots")
                examples += self._leaf(ctx, leaf, model, max_length, timing)
                tick(1)
        if isinstance(model, DummyLM):
            ctx.artifact("transcript.md").write_text(model.transcript(), encoding="utf-8")
        if timing["multiple_choice_examples"] and timing["score_s"] > 0:
            timing["mc_examples_per_s"] = timing["multiple_choice_examples"] / timing["score_s"]
        return {"examples": examples, "task": data.name, "shots": p.shots,
                "leaves": [leaf.info() for leaf in leaves], "human_raters": data.human,
                "origin": data.origin, "subset": data.subset, "model": model.describe(),
                "timing": timing}

    def _leaf(self, ctx: RunContext, leaf: JsonTask, model: LanguageModel, max_length: int,
              timing: dict[str, Any]) -> list[dict[str, Any]]:
        p = self.params
        samples = leaf.samples(p.shots)
        prompts = leaf.prompts(samples)
        if p.multiple_choice and leaf.multiple_choice_metrics:
            contexts = [""] * len(prompts) if p.ablate_context else prompts
            t0 = time.perf_counter()
            absolute = model.loglikelihood(contexts, [s["choice"] for s in samples])
            timing["score_s"] += time.perf_counter() - t0
            timing["multiple_choice_examples"] += len(samples)
            for s, lp in zip(samples, absolute, strict=True):
                norm = list(np.array(lp, dtype=np.float64) - logsumexp(lp))
                s["absolute_log_prob"] = [float(x) for x in lp]
                s["normalized_log_prob"] = [float(x) for x in norm]
                s["log_prob"] = s["absolute_log_prob"] if leaf.absolute_normalization \
                    else s["normalized_log_prob"]
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
        return row
