"""Model adapters: ``lm/causal`` (a transformers causal LM) and ``lm/dummy``."""

from __future__ import annotations

import time
from typing import Any, Literal

import torch
from pydantic import Field

from harness import Model, Params, RunContext
from harness.specmodel import Device

from . import loading, memo
from .causal import CausalLM
from .dummy import DEFAULT_FILLER, DummyLM


def _version(dist: str) -> str:
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


class CausalModel(Model):
    """A transformers causal LM from an alias, a GGUF file, a local folder or a hub id."""

    name = "lm/causal"
    version = "1"

    class Params(Params):
        model: str = Field("smollm2-135m", description="alias (smollm2-135m), .gguf file, "
                           "local folder or hub id")
        gguf_file: str | None = Field(None, description="GGUF file name inside `model` "
                                      "(a folder or hub repository)")
        dtype: Literal["float32", "bfloat16", "float16", "float64"] = "float32"
        device: Device | None = Field(None, description="torch device: cpu, cuda, cuda:N or "
                                      "mps (default: the spec's)")
        scoring: Literal["packed", "padded", "naive"] = Field(
            "packed", description="log-likelihood strategy: prefix-tree packing, padded "
            "rows, or one forward per continuation")
        batch_tokens: int = Field(512, ge=16, description="packed tokens per forward")
        batch_size: int = Field(16, ge=1, description="rows decoded together (and rows "
                                "per forward with padded scoring)")
        max_length: int | None = Field(None, ge=2, description="token limit (default: "
                                       "the model's max_position_embeddings)")
        share: bool = Field(True, description="reuse one loaded copy per process")

    def build(self, ctx: RunContext, data: Any) -> CausalLM:
        p = self.params
        source = loading.resolve(p.model, p.gguf_file)
        device = torch.device(p.device) if p.device else ctx.device
        t0 = time.perf_counter()
        model, tok, folder = loading.load(source, dtype=p.dtype, device=device,
                                          cache_dir=ctx.cache_dir, share=p.share)
        info = {"source": source.describe(), "folder": folder,
                "load_s": round(time.perf_counter() - t0, 3),
                "parameters": int(sum(t.numel() for t in model.parameters()))}
        weights = memo.weights_identity(folder) if source.kind != "hub" else None
        scores = None if weights is None else memo.ScoreMemo(ctx.cache_dir, {
            **weights, "dtype": p.dtype, "device": str(device), "torch": torch.__version__,
            "transformers": _version("transformers")})
        return CausalLM(model, tok, name=p.model, scoring=p.scoring,
                        batch_tokens=p.batch_tokens, batch_size=p.batch_size,
                        max_length=p.max_length, info=info, memo=scores)


class DummyModel(Model):
    """BIG-bench's DummyModel: fixed scores, numbered filler text, a transcript."""

    name = "lm/dummy"
    version = "1"

    class Params(Params):
        filler: str = Field(DEFAULT_FILLER, description="text the dummy cycles through")
        chunk: int = Field(300, ge=1, description="filler characters per response")

    def build(self, ctx: RunContext, data: Any) -> DummyLM:
        return DummyLM(self.params.filler, self.params.chunk)


MODELS: list[type[Model]] = [CausalModel, DummyModel]
