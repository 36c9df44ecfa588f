"""The PPLM adapters: ``pplm/prompts`` (dataset), ``pplm/bow`` and ``pplm/discriminator``.

A method cell generates, for every prefix x target (topic or class) x sample, one
unperturbed text (the official ``perturb=False`` path) and one PPLM text per step size,
all from the same per-row generator seed, so step size 0 must reproduce the unperturbed
text token for token. Rows whose prefixes have one token length advance in one batch,
each with its own step size, attribute target, gradient norms and generator. Every
condition's numbers are reported as ``<metric>.base`` and ``<metric>.s<step>`` scalars.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import Field

from harness import Dataset, HarnessError, Method, Params, RunContext

from . import bags as bagmod
from .kv import LlamaKV
from .perturb import Attribute, BagOfWords, Discriminator, Settings, generate
from .textstats import aggregate, nll_sums, text_stats

DEFAULT_PREFIXES = ["The lake", "The chicken", "The house", "The road", "The painting",
                    "The potato", "The city", "The horse", "The year"]
START = "<|endoftext|>"
STOP = ("<|endoftext|>", "<|im_end|>")


class Prompts(Dataset):
    """PPLM prefixes (each generation starts from <|endoftext|> + prefix)."""

    name = "pplm/prompts"
    version = "1"

    class Params(Params):
        prefixes: list[str] = Field(default_factory=lambda: list(DEFAULT_PREFIXES),
                                    min_length=1, description="conditioning texts")

    def load(self, ctx: RunContext) -> list[str]:
        return list(self.params.prefixes)


@dataclass
class Row:
    prefix: int
    target: str
    sample: int
    step: float | None  # None: the unperturbed model
    seed: int


class PPLMParams(Params):
    stepsizes: list[float] = Field([0.0, 0.01, 0.02, 0.03], min_length=1,
                                   description="step sizes run side by side (0 = identity)")
    samples: int = Field(1, ge=1, description="texts per prefix and target")
    length: int = Field(40, ge=1, description="generated tokens per text (fewer on a stop)")
    num_iterations: int = Field(3, ge=0)
    gamma: float = 1.5
    kl_scale: float = 0.01
    gm_scale: float = Field(0.95, ge=0, le=1, description="fusion exponent of p_pert "
                            "(ablation 0: the unperturbed distribution only)")
    top_k: int = Field(10, ge=0)
    temperature: float = Field(1.0, gt=0)
    sample: bool = True
    window_length: int = Field(0, ge=0, description="0: every past position")
    window_side: Literal["oldest", "recent"] = Field(
        "oldest", description="which positions a window covers: the official mask's "
        "oldest ones, or the most recent (PPLM issue 31)")
    decay: bool = False
    grad_length: int = Field(10000, ge=0)
    gradient_sign: Literal[1, -1] = Field(1, description="ablation -1: step up the "
                                          "attribute loss (a flipped gradient sign)")
    reused_cache: bool = Field(False, description="ablation: each PPLM iteration appends "
                               "the last token to the history again, the bug of reusing one "
                               "transformers DynamicCache across iterations")
    unreset_delta: bool = Field(False, description="ablation: each token's perturbation "
                                "starts from the previous token's instead of zero (added "
                                "again on top of the carried perturbed history)")
    batch_rows: int = Field(128, ge=1, description="rows per batch")


def _label(step: float | None) -> str:
    return "base" if step is None else f"s{step:g}"


class _PPLM(Method):
    """Shared generation driver (see the module docstring)."""

    Params = PPLMParams
    params: PPLMParams

    def settings(self, horizon: int = 1) -> Settings:
        p = self.params
        return Settings(p.num_iterations, p.gamma, p.kl_scale, p.gm_scale, p.top_k,
                        p.temperature, p.sample, p.window_length, p.window_side, p.decay,
                        horizon, p.grad_length, float(p.gradient_sign),
                        p.reused_cache, p.unreset_delta)

    def targets(self) -> list[str]:
        raise NotImplementedError

    def attribute(self, rows: list[Row]) -> Attribute:
        raise NotImplementedError

    def generate_all(self, ctx: RunContext, lm: LlamaKV, tok: Any, prefixes: list[str],
                     horizon: int = 1) -> tuple[list[Row], list[list[int]], list[list[int]],
                                                dict[str, float]]:
        p = self.params
        start = tok.convert_tokens_to_ids(START)
        stop = {int(tok.convert_tokens_to_ids(s)) for s in STOP}
        enc = [[int(start), *tok.encode(x, add_special_tokens=False)] for x in prefixes]
        rows = []
        for i in range(len(prefixes)):
            for t in self.targets():
                for k in range(p.samples):
                    seed = ctx.derive(f"row/{i}/{t}/{k}").seed
                    rows += [Row(i, t, k, step, seed) for step in [None, *p.stepsizes]]
        s = self.settings(horizon)
        out: list[list[int]] = [[] for _ in rows]
        seconds = {"base": 0.0, "pplm": 0.0}
        with ctx.progress.task("generate", total=len(rows)) as tick:
            for length in sorted({len(e) for e in enc}):
                for base in (True, False):
                    group = [j for j, r in enumerate(rows) if len(enc[r.prefix]) == length
                             and (r.step is None) == base]
                    for b in range(0, len(group), p.batch_rows):
                        idx = group[b:b + p.batch_rows]
                        sel = [rows[j] for j in idx]
                        gens = [torch.Generator().manual_seed(r.seed) for r in sel]
                        t0 = time.perf_counter()
                        texts = generate(
                            lm, [enc[r.prefix] for r in sel], gens, p.length, stop, s,
                            perturb=not base, attribute=None if base else self.attribute(sel),
                            stepsize=None if base else torch.tensor([r.step for r in sel]))
                        seconds["base" if base else "pplm"] += time.perf_counter() - t0
                        for j, ids in zip(idx, texts, strict=True):
                            out[j] = ids
                        tick(len(idx))
        return rows, [enc[r.prefix] for r in rows], out, seconds

    def report(self, ctx: RunContext, rows: list[Row], stats: list[dict[str, Any]],
               seconds: dict[str, float], extra: dict[str, float]) -> dict[str, float]:
        scalars: dict[str, float] = dict(extra)
        labels = ["base", *[_label(s) for s in self.params.stepsizes]]
        for label in labels:
            chosen = [st for r, st in zip(rows, stats, strict=True) if _label(r.step) == label]
            for k, v in aggregate(chosen).items():
                scalars[f"{k}.{label}"] = v
        # step size 0 against the unperturbed model: same seeds, token for token
        base = {(r.prefix, r.target, r.sample): st["ids"]
                for r, st in zip(rows, stats, strict=True) if r.step is None}
        for step in self.params.stepsizes:
            same = [st["ids"] == base[(r.prefix, r.target, r.sample)]
                    for r, st in zip(rows, stats, strict=True) if r.step == step]
            scalars[f"identical.{_label(step)}"] = sum(same) / len(same)
        n_base = scalars["tokens.base"]
        n_pplm = sum(scalars[f"tokens.{_label(s)}"] for s in self.params.stepsizes)
        scalars["sec_per_token.base"] = seconds["base"] / max(n_base, 1)
        scalars["sec_per_token.pplm"] = seconds["pplm"] / max(n_pplm, 1)
        self.plot(ctx, scalars)
        return scalars

    def plot(self, ctx: RunContext, scalars: dict[str, float]) -> None:
        import matplotlib.pyplot as plt
        steps = self.params.stepsizes
        fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
        bow = "positive_rate.base" not in scalars
        key = "hit_a" if bow else "positive_rate"
        for name, style in ((key, "o-"), ("hit_b", "s--")):
            if bow or name == key:
                a.plot(steps, [100 * scalars[f"{name}.{_label(s)}"] for s in steps], style,
                       label=name)
                a.axhline(100 * scalars[f"{name}.base"], color="grey", lw=0.8)
        a.set_xlabel("step size")
        a.set_ylabel("% of tokens" if key == "hit_a" else "% positive (judge)")
        a.legend()
        b.plot(steps, [scalars[f"ppl.{_label(s)}"] for s in steps], "o-")
        b.axhline(scalars["ppl.base"], color="grey", lw=0.8, label="unperturbed")
        b.set_xlabel("step size")
        b.set_ylabel("self-perplexity")
        b.legend()
        fig.tight_layout()
        fig.savefig(ctx.artifact("pplm_stepsize.png"), dpi=110)
        plt.close(fig)


def _lm_of(model: Any) -> tuple[LlamaKV, Any]:
    module = getattr(model, "module", None)
    tok = getattr(model, "tokenizer", None)
    if module is None or tok is None:
        raise HarnessError("PPLM needs a transformers causal LM (model `use: lm/causal`)")
    for prm in module.parameters():
        prm.requires_grad_(False)
    return LlamaKV(module), tok


class BowPPLM(_PPLM):
    """PPLM with a bag-of-words attribute (our own topic lists, halves A and B)."""

    name = "pplm/bow"
    version = "1"

    class Params(PPLMParams):
        topics: list[str] = Field(["science", "military", "food"], min_length=1)
        bag: Literal["topic", "random"] = Field(
            "topic", description="ablation `random`: steer toward random vocabulary words "
            "(hit rates are still measured on the topic's bag)")

    params: Params

    def targets(self) -> list[str]:
        return list(self.params.topics)

    def attribute(self, rows: list[Row]) -> Attribute:
        vocab = self.lm.embed.weight.shape[0]
        masks = torch.zeros(len(rows), vocab)
        for i, r in enumerate(rows):
            masks[i, self.steer[r.target]] = 1
        return BagOfWords(masks)

    def run(self, ctx: RunContext, data: list[str], model: Any) -> dict[str, Any]:
        self.lm, tok = _lm_of(model)
        bags = {t: bagmod.build_bag(t, tok) for t in self.params.topics}
        self.steer = {t: (b.ids_a if self.params.bag == "topic"
                          else bagmod.random_bag(b, tok, ctx.derive(f"bag/{t}").rng))
                      for t, b in bags.items()}
        rows, prefixes, ids, seconds = self.generate_all(ctx, self.lm, tok, data)
        nll = nll_sums(self.lm, prefixes, ids)
        stats, examples = [], []
        for r, ids_r, nll_r in zip(rows, ids, nll, strict=True):
            b = bags[r.target]
            text = tok.decode(ids_r)
            st = text_stats(ids_r, text, set(b.ids_a), set(b.ids_b), set(b.words_a),
                            set(b.words_b))
            st.update(nll=nll_r, ids=ids_r)
            stats.append(st)
            examples.append({"prefix": data[r.prefix], "topic": r.target, "sample": r.sample,
                             "condition": _label(r.step), "text": text,
                             **{k: v for k, v in st.items() if k != "ids"}})
        extra = {f"bag_size_a.{t}": float(len(b.ids_a)) for t, b in bags.items()}
        extra.update({f"bag_dropped.{t}": float(len(b.dropped)) for t, b in bags.items()})
        scalars = self.report(ctx, rows, stats, seconds, extra)
        return {"examples": examples, "scalars": scalars,
                "bags": {t: b.describe() for t, b in bags.items()}}


class DiscriminatorPPLM(_PPLM):
    """PPLM with a sentiment discriminator (linear head on mean-pooled hidden states)."""

    name = "pplm/discriminator"
    version = "1"

    class Params(PPLMParams):
        stepsizes: list[float] = Field([0.04], min_length=1)
        num_iterations: int = Field(10, ge=0)
        gamma: float = 1.0
        horizon_length: int = Field(1, ge=1)
        class_label: Literal["positive", "negative"] = "positive"
        head_examples: int = Field(1000, ge=10, description="sentences training the head")
        judge_examples: int = Field(8000, ge=10, description="sentences training the judge")
        test_examples: int = Field(400, ge=10, description="sentences testing both")
        head_epochs: int = Field(10, ge=1)
        head_lr: float = Field(1e-4, gt=0)
        head_batch: int = Field(64, ge=1)
        head_max_tokens: int = Field(48, ge=2)

    params: Params

    def targets(self) -> list[str]:
        return [self.params.class_label]

    def attribute(self, rows: list[Row]) -> Attribute:
        from .discrim import LABELS
        labels = torch.tensor([LABELS.index(r.target) for r in rows])
        return Discriminator(self.head, labels, self.params.horizon_length)

    def run(self, ctx: RunContext, data: list[str], model: Any) -> dict[str, Any]:
        from .discrim import Judge, head_accuracy, load_multiemo, pooled_hidden, train_head
        p = self.params
        lm, tok = _lm_of(model)
        head_set, judge_set, test_set = load_multiemo(
            ctx.cache_dir, ctx.derive("multiemo").rng, p.head_examples, p.judge_examples,
            p.test_examples)
        start = int(tok.convert_tokens_to_ids(START))
        t0 = time.perf_counter()
        feats = pooled_hidden(lm, tok, head_set.texts + test_set.texts, start,
                              p.head_max_tokens)
        n = len(head_set.texts)
        self.head = train_head(feats[:n], head_set.labels, epochs=p.head_epochs, lr=p.head_lr,
                               batch=p.head_batch, generator=ctx.derive("head").generator)
        judge = Judge(judge_set, ctx.seed)
        extra = {"head_accuracy": head_accuracy(self.head, feats[n:], test_set.labels),
                 "judge_accuracy": judge.accuracy(test_set),
                 "head_train_s": time.perf_counter() - t0}
        rows, prefixes, ids, seconds = self.generate_all(ctx, lm, tok, data,
                                                         p.horizon_length)
        nll = nll_sums(lm, prefixes, ids)
        texts = [tok.decode(x) for x in ids]
        verdicts = judge.positive(texts)
        stats, examples = [], []
        for r, ids_r, nll_r, text, v in zip(rows, ids, nll, texts, verdicts, strict=True):
            st = text_stats(ids_r, text, set(), set(), set(), set())
            st.update(nll=nll_r, ids=ids_r, positive=v)
            stats.append(st)
            examples.append({"prefix": data[r.prefix], "class": r.target, "sample": r.sample,
                             "condition": _label(r.step), "text": text, "judge_positive": v,
                             "tokens": st["tokens"], "nll": nll_r,
                             "max_share": st["max_share"]})
        scalars = self.report(ctx, rows, stats, seconds, extra)
        scalars = {k: v for k, v in scalars.items() if not k.startswith(("hit", "word_hit"))
                   and not (isinstance(v, float) and math.isnan(v))}
        return {"examples": examples, "scalars": scalars}


ADAPTERS = [Prompts, BowPPLM, DiscriminatorPPLM]
