"""A language model that answers like BIG-bench's ``DummyModel`` and keeps a transcript.

Behaviour of ``bigbench/models/dummy_model.py`` (google/BIG-bench), reproduced:

- scoring: for a context with ``n`` continuations the (unnormalized) log-probabilities are
  ``log(1/(k+1))`` for the k-th continuation, with the first one set to ``-inf`` when
  ``n > 1``; one query is counted per context;
- generation: every call numbers its queries (``Model query N.`` for one prompt, ``Model
  queries N to M, batch element k.`` for a list), followed by a chunk of filler text;
  the query counter runs over scoring and generation calls alike;
- :meth:`DummyLM.transcript` renders the queries in the Markdown form of BIG-bench's
  transcripts (escaped prompts, a table of log-probabilities and choices, or the
  response), so a run can be compared with BIG-bench's own transcript.

Deviation: BIG-bench's filler is a text about Alan Turing, cut in 300-character chunks;
here the filler is this project's own text (``filler`` param), so generated responses equal
BIG-bench's only where the post-processing keeps nothing of the filler.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .base import LanguageModel, StopPredicate

DEFAULT_FILLER = (
    "\nThis dummy language model does not read its prompt. It answers every query with "
    "the number of the query and a passage of plain filler text, so that a benchmark's "
    "prompt construction and post-processing can be checked without a real model.\n"
    "The filler repeats in chunks; its content carries no meaning and should score "
    "poorly on every task, which is the point of a dummy.\n")
TRANSCRIPT_LIMIT = 5e4
_MD_SPECIAL = "\\*_{}[]<>()#+-.!|`"


def escape_markdown(line: str) -> str:
    """One prompt line as BIG-bench's transcripts write it (see the module docstring)."""
    for ch in _MD_SPECIAL:
        line = line.replace(ch, "\\" + ch)
    body = line.lstrip()
    line = "&numsp;" * (len(line) - len(body)) + body
    body = line.rstrip()
    return body + "&numsp;" * (len(line) - len(body))


def quote(text: str) -> str:
    return "\\\n".join(escape_markdown(line) for line in text.splitlines())


def unescape_markdown(block: str) -> str:
    """Undo :func:`quote` (as far as it can be undone: line-break characters other than
    ``\\n`` and a final newline are lost by BIG-bench's escaping)."""
    lines = block.split("\\\n")
    out = []
    for line in lines:
        lead = 0
        while line.startswith("&numsp;"):
            line, lead = line[len("&numsp;"):], lead + 1
        trail = 0
        while line.endswith("&numsp;"):
            line, trail = line[: -len("&numsp;")], trail + 1
        chars, i = [], 0
        while i < len(line):
            if line[i] == "\\" and i + 1 < len(line) and line[i + 1] in _MD_SPECIAL:
                chars.append(line[i + 1])
                i += 2
            else:
                chars.append(line[i])
                i += 1
        out.append(" " * lead + "".join(chars) + " " * trail)
    return "\n".join(out)


@dataclass
class Query:
    kind: str  # "score" | "generate"
    prompt: str
    targets: list[str] | None
    response: Any


class DummyLM(LanguageModel):
    """BIG-bench's DummyModel behind the LanguageModel interface."""

    def __init__(self, filler: str = DEFAULT_FILLER, chunk: int = 300) -> None:
        self.name = "dummy"
        self.default_max_length = 500
        self.filler = filler or " "
        self.chunk = chunk
        self._pos = 0
        self.n_gen_text = 0
        self.n_mult_choice = 0
        self.queries: list[Query] = []

    def _next_filler(self) -> str:
        text = self.filler[self._pos:self._pos + self.chunk]
        self._pos += self.chunk
        if self._pos > len(self.filler) - 2:
            self._pos = 0
        return text

    def loglikelihood(self, contexts: Sequence[str],
                      continuations: Sequence[Sequence[str]]) -> list[list[float]]:
        out = []
        for ctx, conts in zip(contexts, continuations, strict=True):
            self.n_mult_choice += 1
            scores = [float(np.log(1 / (i + 1))) for i in range(len(conts))]
            if len(scores) > 1:
                scores[0] = -np.inf
            out.append(scores)
            self.queries.append(Query("score", ctx, list(conts), scores))
        return out

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = 256,
                 stop: Sequence[str] = (), until: StopPredicate | None = None,
                 do_sample: bool = False, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, generator: torch.Generator | None = None) -> list[str]:
        first = self.n_gen_text + self.n_mult_choice + 1
        last = first + len(prompts) - 1
        texts = [f"Model queries {first} to {last}, batch element {i + 1}. "
                 f"{self._next_filler()}" for i in range(len(prompts))]
        self.n_gen_text += len(prompts)
        return texts

    def record_responses(self, prompts: Sequence[str], responses: Sequence[str]) -> None:
        """Log the post-processed responses of a generation call (for the transcript)."""
        for p, r in zip(prompts, responses, strict=True):
            self.queries.append(Query("generate", p, None, r))

    def transcript(self, limit: float = TRANSCRIPT_LIMIT) -> str:
        """The queries in BIG-bench's transcript format (header left out), cut as
        BIG-bench cuts it: no entry is added once the text exceeds ``limit`` characters."""
        parts: list[str] = []
        size = 0
        for q in self.queries:
            if size > limit:
                break
            entry = render_entry(q.prompt, q.response, q.targets)
            parts.append(entry)
            size += len(entry)
        return "".join(parts)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "queries": self.n_gen_text + self.n_mult_choice}


def render_entry(prompt: str, response: Any, targets: list[str] | None) -> str:
    """One transcript entry: the escaped prompt and the response block."""
    if isinstance(response, str):
        body = quote(response)
    else:
        pairs = zip(response, targets or [], strict=True)
        rows = "".join(f"| {score} | {target} |\n" for score, target in pairs)
        body = ("\n| log probability | output string |\n| --------------- | ------------- |\n"
                + rows)
    return (f"\n\n### Prompt:\n{quote(prompt)}\n\n### Dummy model response (after "
            f"post-processing with regex and stop string):\n{body}")
