"""Per-text statistics of generated samples and their aggregation per condition.

- hit rates: the share of generated tokens that are bag tokens, and of generated words
  (lowercased, split on non-letters) that are bag words, for halves A and B;
- self-perplexity: ``exp`` of the mean negative log-likelihood of the generated tokens
  under the unperturbed model given the prefix, pooled over a condition's tokens (no
  second LM is available offline, so this is the model judging itself);
- dist-n: distinct n-grams / n-grams of a text's tokens, averaged over texts (the PPLM
  paper's dist-1/2/3);
- repetition guard: the share of a text's most frequent token; a text of at least
  ``MIN_GUARD_TOKENS`` tokens with a share above 25% counts as degenerate.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .kv import LlamaKV

MIN_GUARD_TOKENS = 10
DEGENERATE_SHARE = 0.25
WORD_RE = re.compile(r"[a-z]+")


def words_of(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())


def distinct(tokens: Sequence[int], n: int) -> float | None:
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def max_token_share(tokens: Sequence[int]) -> float:
    return max(Counter(tokens).values()) / len(tokens) if tokens else 0.0


@torch.no_grad()
def nll_sums(lm: LlamaKV, prefixes: list[list[int]], rows: list[list[int]],
             batch: int = 64) -> list[float]:
    """Per row: the summed negative log-likelihood of its tokens after its prefix."""
    out = [0.0] * len(rows)
    dev = lm.embed.weight.device
    shapes = sorted({(len(p), len(r)) for p, r in zip(prefixes, rows, strict=True) if r})
    for plen, width in shapes:
        same = [i for i, r in enumerate(rows) if len(r) == width and len(prefixes[i]) == plen]
        for start in range(0, len(same), batch):
            idx = same[start:start + batch]
            ids = torch.tensor([[*prefixes[i], *rows[i]] for i in idx], device=dev)
            logits = lm.forward(ids[:, :-1]).logits[:, plen - 1:]
            logp = F.log_softmax(logits.double(), -1)
            target = ids[:, plen:].unsqueeze(-1)
            picked = logp.gather(-1, target).squeeze(-1).sum(-1)
            for i, v in zip(idx, picked.tolist(), strict=True):
                out[i] = -v
    return out


def text_stats(tokens: list[int], text: str, bag_a: set[int], bag_b: set[int],
               words_a: set[str], words_b: set[str]) -> dict[str, Any]:
    words = words_of(text)
    return {"tokens": len(tokens), "words": len(words),
            "hits_a": sum(t in bag_a for t in tokens), "hits_b": sum(t in bag_b for t in tokens),
            "word_hits_a": sum(w in words_a for w in words),
            "word_hits_b": sum(w in words_b for w in words),
            "dist1": distinct(tokens, 1), "dist2": distinct(tokens, 2),
            "dist3": distinct(tokens, 3), "max_share": max_token_share(tokens)}


def _mean(values: Iterable[float | None]) -> float:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else float("nan")


def aggregate(rows: list[dict[str, Any]]) -> dict[str, float]:
    """One condition's numbers from its texts' statistics."""
    tokens = sum(r["tokens"] for r in rows)
    words = sum(r["words"] for r in rows)
    nll = sum(r["nll"] for r in rows)
    guarded = [r for r in rows if r["tokens"] >= MIN_GUARD_TOKENS]
    out = {
        "texts": float(len(rows)), "tokens": float(tokens),
        "hit_a": sum(r["hits_a"] for r in rows) / max(tokens, 1),
        "hit_b": sum(r["hits_b"] for r in rows) / max(tokens, 1),
        "hits_a": float(sum(r["hits_a"] for r in rows)),
        "hits_b": float(sum(r["hits_b"] for r in rows)),
        "word_hit_a": sum(r["word_hits_a"] for r in rows) / max(words, 1),
        "word_hit_b": sum(r["word_hits_b"] for r in rows) / max(words, 1),
        "ppl": math.exp(nll / tokens) if tokens else float("nan"),
        "dist1": _mean(r["dist1"] for r in rows), "dist2": _mean(r["dist2"] for r in rows),
        "dist3": _mean(r["dist3"] for r in rows),
        "max_token_share": max((r["max_share"] for r in guarded), default=0.0),
        "degenerate_texts": float(sum(r["max_share"] > DEGENERATE_SHARE for r in guarded)),
    }
    if any("positive" in r for r in rows):
        out["positive_rate"] = _mean(float(r["positive"]) for r in rows)
    return out
