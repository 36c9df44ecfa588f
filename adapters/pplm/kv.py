"""An explicit key/value forward of the LLaMA architecture (SmolLM2), for PPLM.

PPLM differentiates the next-token distribution with respect to the *history* of keys and
values, and re-runs the same one-token forward several times against a perturbed copy of
that history. The transformers model keeps its history in a ``DynamicCache`` that each
forward mutates in place (reusing one cache across iterations silently appends the token
again), so this module runs the decoder itself with the history passed in and the new
token's keys and values handed back, never stored. It uses the transformers model's own
weights and rotary embedding; keys are stored *after* rotary encoding, exactly as the
transformers cache stores them, so a history perturbed here is the same object PPLM
perturbs in GPT-2's ``past``.

Shapes: a history is a list with one ``(keys, values)`` pair per layer, each
``[batch, kv_heads, length, head_dim]``; all rows share one length (PPLM's rows share a
prefix and advance together), so positions are one integer offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from harness import HarnessError

KV = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class StepOutput:
    logits: torch.Tensor  # [batch, new, vocab]
    hidden: torch.Tensor  # [batch, new, hidden]: the final (normalised) hidden states
    kv: KV  # the new tokens' keys (rotary applied) and values, per layer


def _rms_norm(module: Any, x: torch.Tensor) -> torch.Tensor:
    var = x.pow(2).mean(-1, keepdim=True)
    return module.weight * (x * torch.rsqrt(var + module.variance_epsilon))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class LlamaKV:
    """The decoder of a transformers ``LlamaForCausalLM`` with an explicit history."""

    def __init__(self, hf_model: Any) -> None:
        cfg = hf_model.config
        if getattr(cfg, "model_type", None) != "llama":
            raise HarnessError(
                f"PPLM's explicit key/value forward supports the LLaMA architecture only, "
                f"not {getattr(cfg, 'model_type', type(hf_model).__name__)!r}",
                hint="use a LLaMA-architecture model such as the alias smollm2-135m")
        if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
            raise HarnessError("PPLM's LLaMA forward does not implement attention/MLP biases")
        if getattr(cfg, "hidden_act", "silu") != "silu":
            raise HarnessError(f"PPLM's LLaMA forward needs hidden_act silu, not "
                               f"{cfg.hidden_act!r}")
        inner = hf_model.model
        self.model = hf_model
        self.embed = inner.embed_tokens
        self.layers = list(inner.layers)
        self.norm = inner.norm
        self.lm_head = hf_model.lm_head
        self.rotary = inner.rotary_emb
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.groups = self.n_heads // self.n_kv
        self.scale = self.head_dim ** -0.5

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def embedding_matrix(self) -> torch.Tensor:
        return self.embed.weight

    def forward(self, ids: torch.Tensor | None = None, *, past: KV | None = None,
                embeds: torch.Tensor | None = None, start: int | None = None) -> StepOutput:
        """Run ``ids`` (``[batch, new]``) or ``embeds`` (``[batch, new, hidden]``) at
        positions ``start, start+1, ...`` (default: right after ``past``), attending to
        ``past`` (never modified) and causally to each other."""
        x = self.embed(ids) if embeds is None else embeds
        batch, new = x.shape[:2]
        past_len = past[0][0].shape[2] if past else 0
        first = past_len if start is None else start
        pos = torch.arange(first, first + new, device=x.device).unsqueeze(0).expand(batch, -1)
        cos, sin = self.rotary(x, pos)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        mask = None
        if new > 1:  # causal among the new tokens; every past position is visible
            mask = torch.ones((new, past_len + new), dtype=torch.bool, device=x.device)
            mask[:, past_len:] = torch.ones((new, new), dtype=torch.bool,
                                            device=x.device).tril()
        new_kv: KV = []
        for i, layer in enumerate(self.layers):
            att = layer.self_attn
            h = _rms_norm(layer.input_layernorm, x)
            q = att.q_proj(h).view(batch, new, self.n_heads, self.head_dim).transpose(1, 2)
            k = att.k_proj(h).view(batch, new, self.n_kv, self.head_dim).transpose(1, 2)
            v = att.v_proj(h).view(batch, new, self.n_kv, self.head_dim).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            new_kv.append((k, v))
            if past:
                k = torch.cat([past[i][0], k], dim=2)
                v = torch.cat([past[i][1], v], dim=2)
            k = k.repeat_interleave(self.groups, dim=1)
            v = v.repeat_interleave(self.groups, dim=1)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
            a = a.transpose(1, 2).reshape(batch, new, self.n_heads * self.head_dim)
            x = x + att.o_proj(a)
            h = _rms_norm(layer.post_attention_layernorm, x)
            mlp = layer.mlp
            x = x + mlp.down_proj(F.silu(mlp.gate_proj(h)) * mlp.up_proj(h))
        hidden = _rms_norm(self.norm, x)
        return StepOutput(self.lm_head(hidden), hidden, new_kv)


def concat(past: KV | None, new: KV) -> KV:
    """The history ``past`` followed by ``new`` (a new list; inputs untouched)."""
    if not past:
        return list(new)
    return [(torch.cat([pk, nk], dim=2), torch.cat([pv, nv], dim=2))
            for (pk, pv), (nk, nv) in zip(past, new, strict=True)]


def select_rows(kv: KV, rows: torch.Tensor) -> KV:
    return [(k[rows], v[rows]) for k, v in kv]


def expand_rows(kv: KV, n: int) -> KV:
    """A one-row history repeated for ``n`` rows."""
    return [(k.expand(n, -1, -1, -1).contiguous(), v.expand(n, -1, -1, -1).contiguous())
            for k, v in kv]
