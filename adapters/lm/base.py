"""The one language-model interface every method uses (BIG-bench, cross-lingual ICL, PPLM).

A :class:`LanguageModel` offers

- :meth:`~LanguageModel.loglikelihood`: for each context, the summed log-probability of
  each of its continuations (the context and each continuation are tokenized separately
  and the token ids concatenated, as BIG-bench's Hugging Face model does). Implementations
  batch the work and encode a context shared by several continuations once;
- :meth:`~LanguageModel.generate`: greedy or sampled decoding with stop strings (and an
  optional ``until`` predicate on the text generated so far);
- for gradient-based methods (PPLM), :attr:`module`, :attr:`tokenizer`, :meth:`encode`,
  :meth:`forward` with an explicit key/value cache, and :meth:`new_cache`.

Models without a torch module (the BIG-bench dummy) raise a clear error from the torch
accessors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch

from harness import HarnessError

StopPredicate = Callable[[str], bool]


class LanguageModel(ABC):
    """A language model as methods see it (see the module docstring)."""

    name: str = "lm"
    #: the generation length a benchmark uses when it does not set one (BIG-bench's
    #: Hugging Face models use 256 tokens; its DummyModel post-processes 500 characters)
    default_max_length: int = 256

    @abstractmethod
    def loglikelihood(self, contexts: Sequence[str],
                      continuations: Sequence[Sequence[str]]) -> list[list[float]]:
        """``out[i][j]`` = sum of log p(token | prefix) over the tokens of
        ``continuations[i][j]`` following ``contexts[i]`` (natural log, no normalization)."""

    @abstractmethod
    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = 256,
                 stop: Sequence[str] = (), until: StopPredicate | None = None,
                 do_sample: bool = False, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, generator: torch.Generator | None = None) -> list[str]:
        """The text generated after each prompt (without the prompt).

        Decoding of a prompt stops at ``max_new_tokens``, at the end-of-sequence token,
        as soon as the generated text contains one of ``stop`` (the text is returned up to
        and including the stop string), or when ``until(text)`` is true.
        """

    # -- torch access (gradient-based methods) -------------------------------------
    @property
    def module(self) -> torch.nn.Module:
        raise HarnessError(f"language model {self.name!r} has no torch module",
                           hint="use a real model (lm/causal) for gradient-based methods")

    @property
    def tokenizer(self) -> Any:
        raise HarnessError(f"language model {self.name!r} has no tokenizer")

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        raise HarnessError(f"language model {self.name!r} has no tokenizer")

    def decode(self, ids: Sequence[int]) -> str:
        raise HarnessError(f"language model {self.name!r} has no tokenizer")

    def new_cache(self) -> Any:
        """An empty key/value cache to pass to :meth:`forward`."""
        raise HarnessError(f"language model {self.name!r} has no key/value cache")

    def forward(self, input_ids: torch.Tensor, *, past_key_values: Any = None,
                attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None,
                output_hidden_states: bool = False, use_cache: bool = True) -> Any:
        """One forward pass of the module (``logits``, ``past_key_values``,
        ``hidden_states``); gradients flow unless the caller disables them."""
        raise HarnessError(f"language model {self.name!r} has no torch module")

    def describe(self) -> dict[str, Any]:
        """A small JSON-able description for records."""
        return {"name": self.name}
