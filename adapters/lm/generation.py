"""Batched decoding with a key/value cache and continuous refilling.

Up to ``batch_size`` prompts decode together, one token per step for every live row. A
row leaves the batch as soon as it is done (end of sequence, a stop string, the caller's
``until`` predicate or ``max_new`` tokens) and a waiting prompt takes its place: the
newcomers are prefilled together, and their keys/values are left-padded to the batch's
length and appended. Every row keeps its own positions and attention mask, so its tokens
are those it would get decoding alone (greedy) -- a few long answers no longer keep
otherwise finished batches running.

The batch's keys and values live in buffers with room to grow (``GrowingLayer``, from
:func:`growing_layer_class`): a decode step writes its token's keys and values in place.
transformers' ``DynamicCache`` concatenates instead, and rebuilding one from the batch's
tensors before each step concatenated again: two copies of the whole cache per step and
layer (3% of a generative BIG-bench cell's time with SmolLM2; the steps themselves are
bound by reading the weights). The attention reads the same values either way, so the
tokens do not change (``tests/test_lm.py`` checks them against a concatenating decode).
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .causal import CausalLM

KV = list[tuple[torch.Tensor, torch.Tensor]]
ROOM = 64  # tokens of spare room a buffer is given when it is (re)allocated


@functools.cache
def growing_layer_class() -> type | None:
    """:class:`GrowingLayer`'s class, a ``DynamicLayer`` (None on transformers < 4.56,
    whose caches are per-layer lists); made on first use, so that importing this module
    does not import transformers."""
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:
        return None

    class GrowingLayer(DynamicLayer):
        """A cache layer whose keys and values are views ``[:, :, :end]`` of buffers with
        spare room: :meth:`update` writes new tokens in place, reallocating (with room)
        only when full, where ``DynamicLayer`` concatenates."""

        def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
            super().__init__()
            self.device = keys.device
            self.end = keys.shape[-2]
            self._k, self._v = _with_room(keys, ROOM), _with_room(values, ROOM)
            self.is_initialized = True
            self._views()

        def _views(self) -> None:
            self.keys, self.values = self._k[:, :, :self.end], self._v[:, :, :self.end]

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
                   **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            n = key_states.shape[-2]
            if self.end + n > self._k.shape[-2]:
                room = max(ROOM, self.end // 2) + n
                self._k, self._v = _with_room(self.keys, room), _with_room(self.values, room)
            self._k[:, :, self.end:self.end + n] = key_states
            self._v[:, :, self.end:self.end + n] = value_states
            self.end += n
            self._views()
            return self.keys, self.values

    return GrowingLayer


def _with_room(x: torch.Tensor, room: int) -> torch.Tensor:
    """A copy of ``x`` (``[batch, heads, length, dim]``) in a buffer ``room`` longer."""
    b, h, n, d = x.shape
    buf = x.new_empty((b, h, n + room, d))
    buf[:, :, :n] = x
    return buf


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
        self.cache: Any = None  # the batch's cache, its layers GrowingLayers
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
                 cache: Any) -> torch.Tensor:
        lm = self.lm
        lm.stats["forward_calls"] += 1
        lm.stats["tokens_forwarded"] += int(ids.numel())
        out = lm._model(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=True,
                        logits_to_keep=1, **{lm._cache_kw: cache})
        return out.logits[:, -1, :].float()

    def _layers(self) -> list[Any]:
        """The cache's layers (each with ``keys`` and ``values``)."""
        if hasattr(self.cache, "layers"):
            return list(self.cache.layers)
        return [SimpleNamespace(keys=k, values=v) for k, v in self.lm._layers_kv(self.cache)]

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
        fresh = self.lm.new_cache()
        logits = self._forward(ids, att, pos, fresh)
        kv = self.lm._layers_kv(fresh)
        length = max(width, self.att.shape[1])
        if self.rows:
            kv = [(torch.cat([_pad_left(old.keys, length, -2), _pad_left(k, length, -2)]),
                   torch.cat([_pad_left(old.values, length, -2), _pad_left(v, length, -2)]))
                  for old, (k, v) in zip(self._layers(), kv, strict=True)]
            self.att = torch.cat([_pad_left(self.att, length, 1), _pad_left(att, length, 1)])
        else:
            self.att = att
        self._set_cache(kv)
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
        logits = self._forward(last, self.att, pos, self.cache)
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
            if not self.rows:
                self.cache = None
                return
            sel = torch.tensor(keep, dtype=torch.long, device=self.att.device)
            self.att = self.att[sel]
            # the remaining rows, without the columns that are padding for all of them
            used = self.att.any(dim=0).nonzero()
            start = int(used[0]) if len(used) else 0
            self.att = self.att[:, start:]
            self._set_cache([(layer.keys[sel, :, start:], layer.values[sel, :, start:])
                             for layer in self._layers()])

    def _set_cache(self, kv: KV) -> None:
        """Make ``kv`` the batch's cache, in buffers with room for the next tokens (where
        the model's cache is made of plain ``DynamicLayer``s; any other kind of layer, such
        as a sliding window's, is kept and filled as transformers does)."""
        cache = self.lm.new_cache()
        layers = getattr(cache, "layers", None)
        growing = growing_layer_class()
        plain = growing.__mro__[1] if growing is not None else None  # DynamicLayer
        if plain is None or layers is None or any(type(x) is not plain for x in layers):
            self.cache = self.lm._cache_from(kv)
            return
        cache.layers = [growing(k, v) for k, v in kv]
        self.cache = cache
