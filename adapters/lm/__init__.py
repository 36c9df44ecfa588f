"""Language models for every method: ``lm/causal`` (transformers, GGUF, alias
``smollm2-135m``) and ``lm/dummy`` (BIG-bench's DummyModel), behind one interface,
:class:`harness_adapters.lm.base.LanguageModel`."""

from __future__ import annotations

from harness import Adapter, hookimpl

from .adapters import MODELS
from .base import LanguageModel
from .causal import CausalLM
from .dummy import DummyLM


@hookimpl
def harness_adapters() -> list[type[Adapter]]:
    return [*MODELS]


__all__ = ["CausalLM", "DummyLM", "LanguageModel"]
