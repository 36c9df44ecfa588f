"""Method ``xlingual/icl``: few-shot cross-lingual in-context classification.

Winata et al., "Language Models are Few-shot Multilingual Learners" (arXiv 2109.07684):
k labelled English examples in the context, a query in another language, no parameter
update; label chosen by the label's likelihood as a continuation (``direct``) or by
maximum-confidence prediction (``mcp``, a true/false question per label). See
:mod:`.prompts` for the prompt format and :mod:`.scoring` for the decision rules and the
content-free calibration of Zhao et al. 2021.

Demonstration sets: the queries (the same ids in every language) are cut into groups of
``group_size``; for each group and each k one set of k English demonstrations is drawn
from the run context (``ctx.derive("demos/k<k>/g<group>")``), excluding the group's own ids
so no query sees its own review (in any language) among its demonstrations. The set is
shared by every query of the group, every language and both scorings, so the
demonstrations' encoding is computed once per (language, k, group, scoring) call and
reused for every query of it (the LM's shared-prefix packing). Sharing changes the
variance of the estimate (queries of a group are correlated through their demonstrations),
not its expectation.

Deviations: the official code (github gentaiscool/few-shot-lm) could not be read here;
templates follow the paper's description and are params. k demonstrations in total (not
per class); MCP demonstrations carry ``mcp_negatives`` false lines per true line, shuffled.
Long texts are truncated by the dataset (word or character budget, in its params).

Ablations (controls, they break the method on purpose): ``query: content_free`` replaces
every query by the content-free string; ``permute_labels: true`` shifts the candidate label
words cyclically at scoring time (label i is scored with label i+1's word) while the
demonstrations keep the true words.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Literal

import numpy as np
from harness_adapters.lm.base import LanguageModel
from pydantic import Field

from harness import HarnessError, Method, Params, RunContext

from . import prompts, scoring
from .corpus import Corpus, Item
from .prompts import Templates


class CrossLingualICL(Method):
    """k English demonstrations, target-language queries; direct and MCP scoring."""

    name = "xlingual/icl"
    version = "1"

    class Params(Params):
        shots: list[int] = Field([0, 3], description="numbers of demonstrations k (the "
                                 "paper: 0, 1, 3, 5)")
        scorings: list[Literal["direct", "mcp"]] = Field(["direct", "mcp"])
        calibrate: bool = Field(True, description="also score the content-free input and "
                                "report the calibrated rules (*_cal)")
        languages: list[str] | None = Field(None, description="query languages (default: "
                                            "all of the dataset's)")
        group_size: int = Field(25, ge=1, description="queries sharing one demonstration "
                                "set")
        mcp_negatives: int = Field(1, ge=0, description="false lines per demonstration")
        direct_template: str = Field(Templates.direct)
        mcp_template: str = Field(Templates.mcp)
        true_word: str = Field(Templates.true)
        false_word: str = Field(Templates.false)
        separator: str = Field(Templates.separator)
        instruction: str = Field("", description="text before the demonstrations; "
                                 "'{task}' = the dataset's own instruction (the paper: none)")
        content_free: str = Field("N/A", description="input used for calibration")
        query: Literal["text", "content_free"] = Field(
            "text", description="ablation: content_free replaces every query by the "
            "content-free input (breaks the method)")
        permute_labels: bool = Field(False, description="ablation: score label i with "
                                     "label i+1's word (breaks the method)")

    def templates(self, corpus: Corpus) -> Templates:
        p = self.params
        instruction = corpus.instruction if p.instruction == "{task}" else p.instruction
        t = Templates(p.direct_template, p.mcp_template, p.true_word, p.false_word,
                      p.separator, instruction)
        t.check()
        return t

    def run(self, ctx: RunContext, data: Corpus, model: LanguageModel) -> dict[str, Any]:
        if not isinstance(data, Corpus):
            raise HarnessError("xlingual/icl needs an xlingual dataset (xlingual/multiemo, "
                               "xlingual/chatterbot, xlingual/folder)")
        if not isinstance(model, LanguageModel):
            raise HarnessError("xlingual/icl needs a language model (lm/causal, lm/dummy)")
        p = self.params
        t = self.templates(data)
        langs = p.languages or list(data.languages)
        missing = [x for x in langs if x not in data.languages]
        if missing:
            raise HarnessError(f"xlingual/icl: language {missing[0]!r} is not in the "
                               f"dataset", hint=f"it has {', '.join(data.languages)}")
        queries = data.info.get("query_ids") or [i.id for i in data.languages[data.source]]
        groups = [queries[i:i + p.group_size] for i in range(0, len(queries), p.group_size)]
        pool = data.demo_pool()
        demo_labels = sorted({d.label for d in pool})
        demos = {(k, g): self.draw(ctx, pool, k, set(ids), f"k{k}/g{g}")
                 for k in p.shots for g, ids in enumerate(groups)}
        mcp_rng = {key: ctx.derive(f"mcp/k{key[0]}/g{key[1]}").rng for key in demos}
        mcp_lines = {key: prompts.mcp_lines(t, ds, demo_labels, p.mcp_negatives, mcp_rng[key])
                     for key, ds in demos.items()}
        labels = data.labels
        words = labels[1:] + labels[:1] if p.permute_labels else list(labels)
        majority = Counter(d.label for d in pool).most_common(1)[0][0]
        rand = ctx.derive("random").rng
        rows: list[dict[str, Any]] = []
        timing = {"score_s": 0.0, "queries": 0}
        work = [(lang, k, g) for lang in langs for k in p.shots for g in range(len(groups))]
        preds: dict[tuple[str, int, int], dict[str, np.ndarray]] = {}
        with ctx.progress.task(f"{data.name} icl", total=len(work)) as tick:
            for lang, k, g in self.walk(work, ctx):
                by_id = {i.id: i for i in data.languages[lang]}
                items = [by_id[i] for i in groups[g] if i in by_id]
                t0 = time.perf_counter()
                preds[lang, k, g] = self.score_group(model, t, items, demos[k, g],
                                                     mcp_lines[k, g], words)
                timing["score_s"] += time.perf_counter() - t0
                timing["queries"] += len(items)
                tick(1)
        for lang, k, g in work:  # rows (and the random rule's draws) in canonical order
            by_id = {i.id: i for i in data.languages[lang]}
            items = [by_id[i] for i in groups[g] if i in by_id]
            for n, item in enumerate(items):
                pred = {rule: labels[int(v[n])] for rule, v in preds[lang, k, g].items()}
                pred["random"] = labels[int(rand.integers(len(labels)))]
                pred["majority"] = majority
                rows.append({"language": lang, "shots": k, "group": g,
                             "id": item.id, "gold": item.label, "pred": pred})
        if timing["score_s"] > 0:
            timing["queries_per_s"] = timing["queries"] / timing["score_s"]
        return {"examples": rows, "labels": labels, "languages": langs,
                "source": data.source, "shots": list(p.shots), "corpus": data.name,
                "rules": sorted({r for row in rows for r in row["pred"]}),
                "demonstrations": {f"k{k}/g{g}": [d.id for d in ds]
                                   for (k, g), ds in demos.items()},
                "model": model.describe(), "timing": timing}

    @staticmethod
    def walk(work: list[tuple[str, int, int]], ctx: RunContext) -> list[tuple[str, int, int]]:
        """The order the scoring calls run in, by seed modulo 3, so that three seeds
        running side by side compute the calls that do not depend on the seed (k=0) once
        and share them through the language model's score memo: the first walks the
        languages forwards, the second backwards (the two meet in the middle), the third
        makes its own calls (k > 0) first and the shared ones last, by when the other two
        have made them. Two seeds side by side are the first two; seeds run one after
        another find every shared call already made. The results do not depend on the
        order: each call is scored on its own."""
        seed = ctx.spec_seed if ctx.spec_seed is not None else ctx.seed
        if seed % 3 == 1:
            return work[::-1]
        if seed % 3 == 2:
            return [w for w in work if w[1] > 0] + [w for w in work if w[1] == 0]
        return work

    @staticmethod
    def draw(ctx: RunContext, pool: list[Item], k: int, exclude: set[str],
             label: str) -> list[Item]:
        """k demonstrations from ``pool`` without the ids in ``exclude``."""
        if k == 0:
            return []
        allowed = [d for d in pool if d.id not in exclude]
        if len(allowed) < k:
            raise HarnessError(f"only {len(allowed)} demonstrations available for k={k}",
                               hint="lower shots or group_size")
        idx = ctx.derive(f"demos/{label}").rng.choice(len(allowed), size=k, replace=False)
        return [allowed[int(i)] for i in idx]

    def score_group(self, model: LanguageModel, t: Templates, items: list[Item],
                    demos: list[Item], lines: list[str],
                    words: list[str]) -> dict[str, np.ndarray]:
        """Predicted label indices per rule for the queries ``items``."""
        p = self.params
        texts = [p.content_free if p.query == "content_free" else i.text for i in items]
        extra = [p.content_free] if p.calibrate else []
        out: dict[str, np.ndarray] = {}
        if "direct" in p.scorings:
            prefix = prompts.direct_prefix(t, demos)
            pairs = [prompts.direct_query(t, prefix, x, words) for x in texts + extra]
            lp = np.array(model.loglikelihood([c for c, _ in pairs], [w for _, w in pairs]))
            scores = scoring.direct_scores(lp[: len(texts)], lp[-1])
            out.update({r: scoring.predict(s) for r, s in scores.items()
                        if p.calibrate or not r.endswith("_cal")})
        if "mcp" in p.scorings:
            prefix = prompts.mcp_prefix(t, lines)
            contexts, conts = [], []
            for x in texts + extra:
                c, w = prompts.mcp_queries(t, prefix, x, words)
                contexts += c
                conts += w
            lp = np.array(model.loglikelihood(contexts, conts)).reshape(
                len(texts) + len(extra), len(words), 2)
            scores = scoring.mcp_scores(lp[: len(texts)], lp[-1])
            out.update({r: scoring.predict(s) for r, s in scores.items()
                        if p.calibrate or not r.endswith("_cal")})
        return out
