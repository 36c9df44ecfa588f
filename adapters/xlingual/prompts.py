"""Prompt construction for cross-lingual in-context learning (Winata et al. 2021).

The paper writes a demonstration as the input followed by an arrow and its label, one per
line, and the query as the input and the arrow, the model continuing with a label
(``direct`` here). For maximum-confidence prediction (MCP) every line becomes a binary
question about one label, answered ``true`` or ``false``: demonstrations show the right
label answered ``true`` and a wrong label answered ``false``; the query is asked once per
candidate label and the label whose ``true`` is most likely wins.

Templates are format strings with the slots ``{text}``, ``{label}`` and (MCP)
``{answer}``. A query's context is the template up to the scored slot (``{label}`` for
direct, ``{answer}`` for MCP) with trailing whitespace moved into the continuation, so
``"{text} => {label}"`` scores ``" positive"`` after ``"... =>"``, as a BPE model sees it
in the demonstrations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness import HarnessError

from .corpus import Item


@dataclass(frozen=True)
class Templates:
    direct: str = "{text} => {label}"
    mcp: str = "{text} => {label} = {answer}"
    true: str = "true"
    false: str = "false"
    separator: str = "\n"
    instruction: str = ""

    def check(self) -> None:
        for name, tpl, slots in (("direct_template", self.direct, ("{text}", "{label}")),
                                 ("mcp_template", self.mcp,
                                  ("{text}", "{label}", "{answer}"))):
            for slot in slots:
                if slot not in tpl:
                    raise HarnessError(f"{name} {tpl!r} has no {slot} slot",
                                       hint=f"e.g. {Templates.direct!r} / {Templates.mcp!r}")
        if not self.mcp.rstrip().endswith("{answer}"):
            raise HarnessError(f"mcp_template {self.mcp!r} must end with {{answer}}")
        if not self.direct.rstrip().endswith("{label}"):
            raise HarnessError(f"direct_template {self.direct!r} must end with {{label}}")


def _fill(template: str, **slots: str) -> str:
    out = template
    for key, value in slots.items():
        out = out.replace("{" + key + "}", value)
    return out


def split_at(template: str, slot: str, **slots: str) -> tuple[str, str]:
    """(context, continuation prefix): the filled template before ``{slot}`` without its
    trailing whitespace, and that whitespace (which starts the continuation)."""
    head = template[: template.index("{" + slot + "}")]
    filled = _fill(head, **slots)
    stripped = filled.rstrip()
    return stripped, filled[len(stripped):]


def header(t: Templates) -> str:
    return t.instruction + t.separator if t.instruction else ""


def direct_prefix(t: Templates, demos: Sequence[Item]) -> str:
    """Instruction and demonstration lines, each followed by the separator."""
    return header(t) + "".join(_fill(t.direct, text=d.text, label=d.label) + t.separator
                               for d in demos)


def mcp_lines(t: Templates, demos: Sequence[Item], labels: Sequence[str],
              negatives: int, rng: np.random.Generator) -> list[str]:
    """Per demonstration its label answered true and ``negatives`` other labels (drawn
    without replacement) answered false; all lines shuffled together."""
    lines = []
    for d in demos:
        lines.append(_fill(t.mcp, text=d.text, label=d.label, answer=t.true))
        others = [x for x in labels if x != d.label]
        n = min(negatives, len(others))
        for j in rng.choice(len(others), size=n, replace=False) if n else []:
            lines.append(_fill(t.mcp, text=d.text, label=others[int(j)], answer=t.false))
    order = rng.permutation(len(lines)) if lines else []
    return [lines[int(i)] for i in order]


def mcp_prefix(t: Templates, lines: Sequence[str]) -> str:
    return header(t) + "".join(line + t.separator for line in lines)


def direct_query(t: Templates, prefix: str, text: str,
                 words: Sequence[str]) -> tuple[str, list[str]]:
    """Context and one continuation per label word."""
    ctx, ws = split_at(t.direct, "label", text=text)
    return prefix + ctx, [ws + w for w in words]


def mcp_queries(t: Templates, prefix: str, text: str,
                words: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """One context per label word, each continued by the true and the false answer."""
    contexts, conts = [], []
    for w in words:
        ctx, ws = split_at(t.mcp, "answer", text=text, label=w)
        contexts.append(prefix + ctx)
        conts.append([ws + t.true, ws + t.false])
    return contexts, conts
