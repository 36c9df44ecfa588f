"""A transformers causal LM behind the :class:`~.base.LanguageModel` interface.

Log-likelihood scoring follows BIG-bench's Hugging Face model
(``bigbench/models/huggingface_models.py``): the context and each continuation are
tokenized separately, their ids concatenated, the concatenation left-truncated to the
model's length, and the continuation's token log-probabilities summed. Three
equivalent strategies compute it:

- ``packed`` (default): prefix-tree packing (:mod:`.packing`); a context shared by
  several continuations, and any prefix shared by several contexts, is encoded once
  (the prefix common to all contexts of a call once for the whole call, its keys and
  values reused by every packed batch), and the vocabulary projection is applied only at
  positions whose next token is scored;
- ``padded``: one right-padded row per (context, continuation), ``batch_size`` rows per
  forward (for models whose attention does not take a custom 4D mask);
- ``naive``: one forward per (context, continuation); the benchmark's baseline.

Differences from BIG-bench's model: special tokens are added to the context as the
tokenizer does by default (none for GPT-2 and SmolLM2) but never to continuations; an
empty context is replaced by the BOS (else EOS) token so every continuation token is
scored; decoding is greedy by default (BIG-bench samples with top-k 40), see
:meth:`CausalLM.generate`. A call identical to an earlier one on the same weights is
answered from an exact on-disk memo (:mod:`.memo`).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from . import memo
from .base import LanguageModel, StopPredicate
from .generation import Decoder
from .memo import ScoreMemo
from .packing import Request, pack

MIN_SHARED_PREFIX = 8  # tokens; a shorter common prefix is not worth a separate pass


class CausalLM(LanguageModel):
    """A Hugging Face causal LM with a tokenizer (see the module docstring)."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "causal",
                 scoring: str = "packed", batch_tokens: int = 512, batch_size: int = 16,
                 max_length: int | None = None, info: dict[str, Any] | None = None,
                 memo: ScoreMemo | None = None) -> None:
        self._model = model
        self.memo = memo  # exact reuse of earlier identical loglikelihood calls (.memo)
        self._tok = tokenizer
        self.name = name
        self.scoring = scoring
        self.batch_tokens = batch_tokens
        self.batch_size = batch_size
        cfg_len = getattr(model.config, "max_position_embeddings", None) or 2048
        self.max_length = int(max_length or cfg_len)
        self.info = info or {}
        self.stats = {"forward_calls": 0, "tokens_forwarded": 0, "memo_hits": 0}
        params = inspect.signature(model.forward).parameters
        # transformers >= 5.x names the key/value cache argument `cache`
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    # -- torch access --------------------------------------------------------------
    @property
    def module(self) -> torch.nn.Module:
        self.memo = None  # the caller may change the weights: no more memo for this model
        return self._model

    @property
    def tokenizer(self) -> Any:
        return self._tok

    @property
    def device(self) -> torch.device:
        return next(self._model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self._model.parameters()).dtype

    def encode(self, text: str) -> list[int]:
        return list(self._tok(text, add_special_tokens=False)["input_ids"])

    def encode_context(self, text: str) -> list[int]:
        """Context ids: the tokenizer's default special tokens; BOS/EOS when empty."""
        ids = list(self._tok(text)["input_ids"]) if text else []
        if not ids:
            start = self._tok.bos_token_id
            if start is None:
                start = self._tok.eos_token_id
            ids = [int(start)]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=True)

    def new_cache(self) -> Any:
        from transformers import DynamicCache
        try:
            return DynamicCache(config=self._model.config)
        except TypeError:  # transformers < 4.56 takes no config
            return DynamicCache()

    def forward(self, input_ids: torch.Tensor, *, past_key_values: Any = None,
                attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None,
                output_hidden_states: bool = False, use_cache: bool = True) -> Any:
        self.stats["forward_calls"] += 1
        self.stats["tokens_forwarded"] += int(input_ids.numel())
        return self._model(input_ids=input_ids.to(self.device), attention_mask=attention_mask,
                           position_ids=position_ids, output_hidden_states=output_hidden_states,
                           use_cache=use_cache, **{self._cache_kw: past_key_values})

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "scoring": self.scoring, "dtype": str(self.dtype),
                "max_length": self.max_length, **self.info,
                "memo_hits": self.stats["memo_hits"]}

    # -- scoring -------------------------------------------------------------------
    def _requests(self, contexts: Sequence[str],
                  continuations: Sequence[Sequence[str]]) -> list[Request]:
        if len(contexts) != len(continuations):
            raise ValueError("contexts and continuations differ in length")
        reqs = []
        for i, (ctx, conts) in enumerate(zip(contexts, continuations, strict=True)):
            conts_ids = [self.encode(c) for c in conts]
            longest = max((len(c) for c in conts_ids), default=0)
            ctx_ids = self.encode_context(ctx)
            keep = max(self.max_length - longest, 1)  # BIG-bench: keep the last tokens
            reqs.append(Request(i, ctx_ids[-keep:], conts_ids))
        return reqs

    @torch.inference_mode()
    def loglikelihood(self, contexts: Sequence[str],
                      continuations: Sequence[Sequence[str]]) -> list[list[float]]:
        reqs = self._requests(contexts, continuations)
        key = None
        if self.memo is not None and memo.enabled():
            scorer = {"scoring": self.scoring, "batch_tokens": self.batch_tokens,
                      "batch_size": self.batch_size, "max_length": self.max_length,
                      "threads": torch.get_num_threads()}
            key = self.memo.key(reqs, scorer)
            known = self.memo.get(key, [len(r.continuations) for r in reqs])
            if known is not None:
                self.stats["memo_hits"] += 1
                return known
        out = [[0.0] * len(r.continuations) for r in reqs]
        if self.scoring == "packed":
            self._score_packed(reqs, out)
        elif self.scoring in ("padded", "naive"):
            self._score_rows(reqs, out, 1 if self.scoring == "naive" else self.batch_size)
        else:
            raise ValueError(f"unknown scoring strategy {self.scoring!r}")
        if key is not None and self.memo is not None:
            self.memo.put(key, out)
        return out

    def _score_packed(self, reqs: list[Request], out: list[list[float]]) -> None:
        # the token prefix common to every context (e.g. a task's instructions) is encoded
        # once for the whole call and its keys/values reused by every chunk
        shared = _common_prefix([r.context for r in reqs]) if len(reqs) > 1 else 0
        shared = min(shared, min(len(r.context) for r in reqs) - 1)
        prefix_kv = None
        if shared >= MIN_SHARED_PREFIX:
            prefix_kv = self._encode_prefix(reqs[0].context[:shared])
            reqs = [Request(r.index, r.context[shared:], r.continuations) for r in reqs]
        else:
            shared = 0
        for chunk in pack(reqs, self.batch_tokens):
            ids, mask, pos = chunk.inputs(self.dtype, self.device)
            rows, items = chunk.targets()
            if not rows:
                continue
            kwargs: dict[str, Any] = {"use_cache": False}
            if prefix_kv is not None:
                left = torch.zeros((1, 1, ids.shape[1], shared), dtype=mask.dtype,
                                   device=mask.device)
                mask, pos = torch.cat([left, mask], dim=-1), pos + shared
                kwargs = {"use_cache": True, self._cache_kw: self._cache_from(prefix_kv)}
            self.stats["forward_calls"] += 1
            self.stats["tokens_forwarded"] += ids.shape[1]
            logits = self._model(input_ids=ids, attention_mask=mask, position_ids=pos,
                                 logits_to_keep=torch.tensor(rows, device=self.device),
                                 **kwargs).logits[0]
            logp = torch.log_softmax(logits.float(), dim=-1)
            r_idx = torch.tensor([it[2] for it in items], device=logp.device)
            t_idx = torch.tensor([it[3] for it in items], device=logp.device)
            picked = logp[r_idx, t_idx].double().tolist()
            for (r, c, _, _), value in zip(items, picked, strict=True):
                out[chunk.requests[r].index][c] += value

    def _encode_prefix(self, ids: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        cache = self.new_cache()
        self.stats["forward_calls"] += 1
        self.stats["tokens_forwarded"] += len(ids)
        self._model(input_ids=torch.tensor([ids], device=self.device), use_cache=True,
                    logits_to_keep=1, **{self._cache_kw: cache})
        return self._layers_kv(cache)

    def _cache_from(self, kv: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
        cache = self.new_cache()
        for layer, (k, v) in enumerate(kv):
            cache.update(k, v, layer)
        return cache

    def _score_rows(self, reqs: list[Request], out: list[list[float]], batch: int) -> None:
        rows = [(r.index, c, r.context, cont) for r in reqs
                for c, cont in enumerate(r.continuations)]
        pad = self._tok.pad_token_id if self._tok.pad_token_id is not None else 0
        for start in range(0, len(rows), batch):
            group = rows[start:start + batch]
            seqs = [ctx + cont for _, _, ctx, cont in group]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            att = torch.zeros((len(seqs), width), dtype=torch.long)
            for k, s in enumerate(seqs):
                ids[k, : len(s)] = torch.tensor(s)
                att[k, : len(s)] = 1
            self.stats["forward_calls"] += 1
            self.stats["tokens_forwarded"] += int(ids.numel())
            logits = self._model(input_ids=ids.to(self.device),
                                 attention_mask=att.to(self.device), use_cache=False).logits
            logp = torch.log_softmax(logits.float(), dim=-1)
            for k, (i, c, ctx, cont) in enumerate(group):
                n = len(ctx)
                if cont:
                    idx = torch.arange(n - 1, n - 1 + len(cont), device=logp.device)
                    tok = torch.tensor(cont, device=logp.device)
                    out[i][c] = float(logp[k, idx, tok].double().sum())

    # -- generation ----------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = 256,
                 stop: Sequence[str] = (), until: StopPredicate | None = None,
                 do_sample: bool = False, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, generator: torch.Generator | None = None) -> list[str]:
        """Decoding with a key/value cache, ``batch_size`` rows at a time, finished rows
        replaced by waiting prompts (:mod:`.generation`). Greedy unless ``do_sample``;
        sampling draws from ``generator`` (temperature, then top-k, then top-p)."""
        sample = {"do_sample": do_sample, "temperature": temperature, "top_k": top_k,
                  "top_p": top_p, "generator": generator}
        decoder = Decoder(self, max_new_tokens, stop, until, sample)
        return decoder.run([self.encode_context(p) for p in prompts], self.batch_size)

    @staticmethod
    def _layers_kv(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (keys, values) of a DynamicCache (any transformers version)."""
        if hasattr(cache, "layers"):
            return [(layer.keys, layer.values) for layer in cache.layers]
        return list(zip(cache.key_cache, cache.value_cache, strict=True))


def _common_prefix(seqs: list[list[int]]) -> int:
    """Length of the longest common prefix of token sequences."""
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for i in range(n):
        tok = first[i]
        if any(s[i] != tok for s in seqs):
            return i
    return n
