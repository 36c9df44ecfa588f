"""Our own topic word lists (written for this project, not the official PPLM bags).

Each list has about 40 lowercase words; a word is kept when the tokenizer encodes it, with
a leading space, as exactly one token (PPLM's BoW loss only counts single-token words);
the others are reported as dropped. The kept words are split alternately into a steering
half A (even positions) and a held-out half B (odd positions): B measures whether the
steering moves the *topic* or only the bag's own tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness import HarnessError

TOPICS: dict[str, str] = {
    "science": """science scientist scientists research experiment laboratory theory
        hypothesis physics chemistry biology molecule atom cells evidence data study
        analysis microscope measurement discovery genetics protein electron energy equation
        formula observation quantum particle sample species evolution scientific lab
        experiments method results researchers""",
    "military": """army soldier soldiers war battle troops weapon weapons military navy
        officer commander general tank missile rifle attack defense enemy combat marine
        regiment battalion infantry artillery sergeant captain invasion fleet bomb gun guns
        uniform base mission forces strike bullets veteran pilot""",
    "food": """food meal bread cheese soup pizza rice meat chicken salad sugar butter cooking
        kitchen recipe dinner lunch breakfast fruit vegetables pasta sauce flavor delicious
        taste eat eating dish restaurant chef oven garlic onion potatoes beef pork fish cake
        cream spices""",
    "space": """space planet planets star stars galaxy universe moon sun orbit rocket
        astronaut astronauts telescope solar mars earth comet asteroid satellite spacecraft
        launch cosmic gravity alien aliens lunar shuttle nebula jupiter saturn venus meteor
        astronomy astronomer celestial interstellar cosmos orbital rockets""",
    "politics": """politics political government president election vote voters party
        democracy senate congress parliament minister campaign policy law laws candidate
        republican democrat liberal conservative senator governor citizens constitution
        rights legislation debate mayor administration ballot reform tax taxes politician
        politicians nation federal votes""",
}


@dataclass
class Bag:
    """One topic's kept words and token ids, split into halves A and B."""

    topic: str
    words_a: list[str]
    words_b: list[str]
    ids_a: list[int]
    ids_b: list[int]
    dropped: list[str]

    def describe(self) -> dict[str, Any]:
        return {"topic": self.topic, "words_a": self.words_a, "words_b": self.words_b,
                "dropped": self.dropped}


def single_token(tokenizer: Any, word: str) -> int | None:
    ids = tokenizer.encode(" " + word, add_special_tokens=False)
    return int(ids[0]) if len(ids) == 1 else None


def build_bag(topic: str, tokenizer: Any) -> Bag:
    if topic not in TOPICS:
        raise HarnessError(f"unknown PPLM topic {topic!r}",
                           hint="one of: " + ", ".join(TOPICS))
    kept: list[tuple[str, int]] = []
    dropped: list[str] = []
    seen: set[int] = set()
    for word in TOPICS[topic].split():
        tok = single_token(tokenizer, word)
        if tok is None or tok in seen:
            dropped.append(word)
            continue
        seen.add(tok)
        kept.append((word, tok))
    a, b = kept[0::2], kept[1::2]
    return Bag(topic, [w for w, _ in a], [w for w, _ in b], [t for _, t in a],
               [t for _, t in b], dropped)


def random_bag(real: Bag, tokenizer: Any, rng: np.random.Generator) -> list[int]:
    """Ablation: as many random single-token lowercase vocabulary words as half A,
    avoiding every word of the real bag (A and B)."""
    avoid = set(real.ids_a) | set(real.ids_b)
    vocab = tokenizer.get_vocab()
    candidates = sorted(i for s, i in vocab.items()
                        if s.startswith("\u0120") and s[1:].isalpha() and s[1:].islower()
                        and len(s) > 3 and i not in avoid)
    if len(candidates) < len(real.ids_a):
        raise HarnessError(f"the vocabulary has only {len(candidates)} candidate words for "
                           f"a random bag of {len(real.ids_a)}")
    pick = rng.choice(len(candidates), size=len(real.ids_a), replace=False)
    return [candidates[int(j)] for j in pick]
