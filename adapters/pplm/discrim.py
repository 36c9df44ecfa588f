"""The sentiment attribute model and its independent judge, from English multiemo reviews.

Data: BIG-bench's ``multiemo/all_sentence_en`` task (sentences of hotel, medicine, product
and school reviews; labels positive / negative / neutral / ambivalent), found through
:mod:`harness_adapters.bigbench.source` (the cached BIG-bench sdist). Only positive and
negative sentences are used. They are shuffled once with the dataset seed and split into
disjoint parts: the steering head's training set, the judge's training set, and a common
test set on which both accuracies are reported.

- Head (after the official ``run_pplm_discrim_train.py``): a linear layer on the mean of
  the frozen LM's final (normalised) hidden states over the sentence's tokens, the
  sentence preceded by the start token as in generation; Adam at lr 1e-4, batches of 64,
  NLL loss on log-softmax; features computed once (the trainer's ``cached_mode``).
- Judge: TF-IDF (words, 1-2 grams) + logistic regression from scikit-learn, trained on its
  own split; it never sees the head or the LM.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness import HarnessError

from .kv import LlamaKV

LABELS = ("negative", "positive")  # class ids 0, 1


@dataclass
class Split:
    texts: list[str]
    labels: list[int]


def load_multiemo(cache_dir: Path, rng: np.random.Generator, n_head: int, n_judge: int,
                  n_test: int, subtask: str = "all_sentence_en") -> tuple[Split, Split, Split]:
    from harness_adapters.bigbench.source import locate
    folder = locate("multiemo", tasks_dir=None, cache_dir=cache_dir, version="1.0.0",
                    download=True)
    path = folder / subtask / "task.json"
    if not path.is_file():
        raise HarnessError(f"multiemo has no subtask {subtask!r} at {path}")
    examples = json.loads(path.read_text())["examples"]
    pairs = []
    for ex in examples:
        label = max(ex["target_scores"], key=ex["target_scores"].get)
        if label in LABELS:
            pairs.append((ex["input"], LABELS.index(label)))
    need = n_head + n_judge + n_test
    if need > len(pairs):
        raise HarnessError(f"multiemo {subtask} has {len(pairs)} positive/negative "
                           f"sentences, fewer than the {need} asked for")
    order = rng.permutation(len(pairs))[:need]
    chosen = [pairs[int(i)] for i in order]

    def split(part: list[tuple[str, int]]) -> Split:
        return Split([t for t, _ in part], [y for _, y in part])

    return (split(chosen[:n_head]), split(chosen[n_head:n_head + n_judge]),
            split(chosen[n_head + n_judge:]))


@torch.no_grad()
def pooled_hidden(lm: LlamaKV, tokenizer: Any, texts: list[str], start_id: int,
                  max_tokens: int = 48, batch: int = 32) -> torch.Tensor:
    """``[len(texts), hidden]``: mean final hidden state over each text's tokens (start
    token included). Rows are right-padded: causal attention never lets a real token see
    the padding after it, and the padding is left out of the mean."""
    seqs = [[start_id, *tokenizer.encode(t, add_special_tokens=False)[:max_tokens - 1]]
            for t in texts]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = torch.zeros(len(seqs), lm.embed.weight.shape[1])
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        width = max(len(seqs[i]) for i in idx)
        ids = torch.full((len(idx), width), start_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width))
        for r, i in enumerate(idx):
            ids[r, :len(seqs[i])] = torch.tensor(seqs[i])
            mask[r, :len(seqs[i])] = 1
        hidden = lm.forward(ids.to(lm.embed.weight.device)).hidden.float().cpu()
        out[idx] = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
    return out


def train_head(features: torch.Tensor, labels: list[int], *, epochs: int, lr: float,
               batch: int, generator: torch.Generator) -> torch.nn.Linear:
    head = torch.nn.Linear(features.shape[1], len(LABELS))
    with torch.no_grad():  # initialised from the cell's generator, not the global one
        bound = 1 / features.shape[1] ** 0.5
        head.weight.uniform_(-bound, bound, generator=generator)
        head.bias.uniform_(-bound, bound, generator=generator)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    y = torch.tensor(labels)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), batch):
            idx = perm[start:start + batch]
            opt.zero_grad()
            loss = F.nll_loss(F.log_softmax(head(features[idx]), -1), y[idx])
            loss.backward()
            opt.step()
    head.eval()
    for p in head.parameters():
        p.requires_grad_(False)
    return head


def head_accuracy(head: torch.nn.Module, features: torch.Tensor, labels: list[int]) -> float:
    with torch.no_grad():
        pred = head(features).argmax(-1)
    return float((pred == torch.tensor(labels)).float().mean())


class Judge:
    """TF-IDF + logistic regression: the independent sentiment classifier."""

    def __init__(self, train: Split, seed: int) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        self.vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        x = self.vec.fit_transform(train.texts)
        self.clf = LogisticRegression(max_iter=2000, C=4.0, random_state=seed % (2**31))
        self.clf.fit(x, train.labels)

    def positive(self, texts: list[str]) -> list[int]:
        return [int(v) for v in self.clf.predict(self.vec.transform(texts))]

    def accuracy(self, split: Split) -> float:
        pred = self.positive(split.texts)
        return float(np.mean([p == y for p, y in zip(pred, split.labels, strict=True)]))
