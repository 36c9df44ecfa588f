"""Batched decoding with a key/value cache and continuous refilling.

Up to ``batch_size`` prompts decode together, one token per step for every live row. A
row leaves the batch as soon as it is done (end of sequence, a stop string, the caller's
``until`` predicate or ``max_new`` tokens) and a waiting prompt takes its place: the
newcomers are prefilled together, and their keys/values are left-padded to the batch's
length and appended. Every row keeps its own positions and attention mask, so its tokens
are those it would get decoding alone (greedy) -- a few long answers no longer keep
otherwise finished batches running.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .causal import CausalLM

KV = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class _Row:
    index: int
    prompt_len: int
    ids: list[int] = field(default_factory=list)
    text: str = ""


def next_tokens(logits: torch.Tensor, do_sample: bool, temperature: float, top_k: int,
                top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Greedy argmax, or a draw from ``generator`` after temperature, top-k and top-p."""
    if not do_sample:
        return logits.argmax(-1)
    logits = logits / max(temperature, 1e-6)
    if top_k and top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, -1)
        drop = probs.cumsum(-1) - probs > top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = torch.softmax(logits, -1)
    return torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(logits.device)


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Text up to and including the earliest stop string (unchanged when none occurs)."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i >= 0:
                cut = min(cut, i + len(s))
    return text[:cut]


def _pad_left(x: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - x.shape[dim]
    if missing <= 0:
        return x
    pad = [0, 0] * (x.dim() - 1 - (dim % x.dim())) + [missing, 0]
    return F.pad(x, pad)


class Decoder:
    """One :meth:`CausalLM.generate` call (see the module docstring)."""

    def __init__(self, lm: CausalLM, max_new: int, stop: Sequence[str],
                 until: Callable[[str], bool] | None, sample: dict[str, Any]) -> None:
        self.lm, self.max_new, self.stop, self.until = lm, max_new, list(stop), until
        self.sample = sample
        self.eos = lm.tokenizer.eos_token_id
        self.pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
        self.results: list[str] = []
        self.rows: list[_Row] = []
        self.kv: KV = []
        self.att = torch.zeros((0, 0), dtype=torch.long)

    def run(self, encoded: list[list[int]], batch_size: int) -> list[str]:
        self.results = [""] * len(encoded)
        if self.max_new <= 0:
            return self.results
        limit = max(self.lm.max_length - self.max_new, 1)
        encoded = [e[-limit:] for e in encoded]
        pending = deque(sorted(range(len(encoded)), key=lambda i: -len(encoded[i])))
        while pending or self.rows:
            if pending and len(self.rows) < batch_size:
                take = [pending.popleft() for _ in range(min(batch_size - len(self.rows),
                                                              len(pending)))]
                self._admit(take, [encoded[i] for i in take])
            if self.rows:
                self._step()
        return self.results

    # -- one forward ---------------------------------------------------------------------
    def _forward(self, ids: torch.Tensor, att: torch.Tensor, pos: torch.Tensor,
                 kv: KV | None) -> tuple[torch.Tensor, KV]:
        lm = self.lm
        cache = lm._cache_from(kv) if kv else lm.new_cache()
        lm.stats["forward_calls"] += 1
        lm.stats["tokens_forwarded"] += int(ids.numel())
        out = lm._model(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=True,
                        logits_to_keep=1, **{lm._cache_kw: cache})
        return out.logits[:, -1, :].float(), lm._layers_kv(cache)

    def _admit(self, indices: list[int], seqs: list[list[int]]) -> None:
        """Prefill new prompts and append them to the batch."""
        dev = self.lm.device
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad, dtype=torch.long)
        att = torch.zeros((len(seqs), width), dtype=torch.long)
        for k, s in enumerate(seqs):
            ids[k, width - len(s):] = torch.tensor(s)
            att[k, width - len(s):] = 1
        ids, att = ids.to(dev), att.to(dev)
        pos = (att.cumsum(-1) - 1).clamp(min=0)
        logits, kv = self._forward(ids, att, pos, None)
        length = max(width, self.att.shape[1])
        if self.rows:
            self.kv = [(torch.cat([_pad_left(k0, length, -2), _pad_left(k1, length, -2)]),
                        torch.cat([_pad_left(v0, length, -2), _pad_left(v1, length, -2)]))
                       for (k0, v0), (k1, v1) in zip(self.kv, kv, strict=True)]
            self.att = torch.cat([_pad_left(self.att, length, 1), _pad_left(att, length, 1)])
        else:
            self.kv, self.att = kv, att
        new = [_Row(i, len(s)) for i, s in zip(indices, seqs, strict=True)]
        self.rows += new
        first = len(self.rows) - len(new)
        self._accept(list(range(first, len(self.rows))), logits)

    def _step(self) -> None:
        dev = self.lm.device
        last = torch.tensor([[r.ids[-1]] for r in self.rows], device=dev)
        pos = torch.tensor([[r.prompt_len + len(r.ids) - 1] for r in self.rows], device=dev)
        self.att = torch.cat([self.att, torch.ones((len(self.rows), 1), dtype=self.att.dtype,
                                                   device=dev)], dim=1)
        logits, self.kv = self._forward(last, self.att, pos, self.kv)
        self._accept(list(range(len(self.rows))), logits)

    # -- bookkeeping -----------------------------------------------------------------------
    def _accept(self, slots: list[int], logits: torch.Tensor) -> None:
        """Append each slot's next token; drop the rows that are done."""
        toks = next_tokens(logits, **self.sample)
        done = set()
        for slot, tok in zip(slots, toks.tolist(), strict=True):
            row = self.rows[slot]
            if self.eos is not None and tok == self.eos:
                done.add(slot)
                continue
            row.ids.append(tok)
            row.text = self.lm.decode(row.ids)
            if (len(row.ids) >= self.max_new or any(s and s in row.text for s in self.stop)
                    or (self.until is not None and self.until(row.text))):
                done.add(slot)
        for slot in done:
            row = self.rows[slot]
            self.results[row.index] = cut_at_stop(row.text, self.stop)
        if done:
            keep = [i for i in range(len(self.rows)) if i not in done]
            self.rows = [self.rows[i] for i in keep]
            sel = torch.tensor(keep, dtype=torch.long, device=self.att.device)
            self.kv = [(k[sel], v[sel]) for k, v in self.kv]
            self.att = self.att[sel]
            if self.rows:  # drop columns that are padding for every remaining row
                used = self.att.any(dim=0).nonzero()
                start = int(used[0]) if len(used) else 0
                if start:
                    self.att = self.att[:, start:]
                    self.kv = [(k[:, :, start:], v[:, :, start:]) for k, v in self.kv]
