"""Prefix-tree packing: score many token sequences that share prefixes in one forward pass.

Sequences (context + continuation token ids) are inserted into a token trie; the trie's
nodes, in creation order (every parent before its children), form one packed row. Each
node attends to itself and its ancestors only and sits at position ``depth``, so its
hidden state is exactly the one it would have in its own unpacked sequence. A context
shared by several continuations, and a task prefix shared by many contexts, are encoded
once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Trie:
    """Token trie with creation-ordered nodes."""

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    children: list[dict[int, int]] = field(default_factory=list)
    roots: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tokens)

    def insert(self, seq: list[int]) -> list[int]:
        """Insert ``seq``; return its node ids (one per token)."""
        path: list[int] = []
        kids = self.roots
        parent = -1
        for depth, tok in enumerate(seq):
            node = kids.get(tok)
            if node is None:
                node = len(self.tokens)
                self.tokens.append(tok)
                self.parents.append(parent)
                self.depths.append(depth)
                self.children.append({})
                kids[tok] = node
            path.append(node)
            parent = node
            kids = self.children[node]
        return path

    def truncate(self, n: int) -> None:
        """Remove every node created after the first ``n`` (undo insertions)."""
        for node in range(len(self.tokens) - 1, n - 1, -1):
            parent, tok = self.parents[node], self.tokens[node]
            (self.roots if parent < 0 else self.children[parent]).pop(tok, None)
        del self.tokens[n:], self.parents[n:], self.depths[n:], self.children[n:]

    def ancestor_mask(self) -> np.ndarray:
        """``mask[i, j]`` is True when node ``j`` is node ``i`` or one of its ancestors."""
        n = len(self.tokens)
        mask = np.zeros((n, n), dtype=bool)
        for i, p in enumerate(self.parents):
            if p >= 0:
                mask[i, : p + 1] = mask[p, : p + 1]
            mask[i, i] = True
        return mask


@dataclass
class Request:
    """One context with its continuations, already tokenized."""

    index: int
    context: list[int]
    continuations: list[list[int]]


@dataclass
class Chunk:
    """A packed batch: the trie and, per request, the node paths of its sequences."""

    trie: Trie
    requests: list[Request]
    paths: list[list[list[int]]]  # per request, per continuation: node ids of ctx+cont

    def inputs(self, dtype: torch.dtype,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``input_ids`` (1, N), additive 4D mask (1, 1, N, N), ``position_ids`` (1, N)."""
        ids = torch.tensor([self.trie.tokens], dtype=torch.long, device=device)
        pos = torch.tensor([self.trie.depths], dtype=torch.long, device=device)
        allowed = torch.from_numpy(self.trie.ancestor_mask()).to(device)
        mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        return ids, mask[None, None], pos

    def targets(self) -> tuple[list[int], list[tuple[int, int, int, int]]]:
        """Nodes whose next-token distribution is needed, and for every scored token
        ``(request slot, continuation, query row, token id)``."""
        rows: dict[int, int] = {}
        items: list[tuple[int, int, int, int]] = []
        for r, (req, paths) in enumerate(zip(self.requests, self.paths, strict=True)):
            start = len(req.context)
            for c, (cont, path) in enumerate(zip(req.continuations, paths, strict=True)):
                for k, tok in enumerate(cont):
                    prev = path[start + k - 1]
                    row = rows.setdefault(prev, len(rows))
                    items.append((r, c, row, tok))
        order = sorted(rows, key=rows.__getitem__)
        return order, items


def pack(requests: list[Request], max_tokens: int) -> list[Chunk]:
    """Greedily pack requests, in order, into chunks of at most ``max_tokens`` trie nodes
    (a single request larger than that gets a chunk of its own)."""
    chunks: list[Chunk] = []
    trie, members, paths = Trie(), [], []
    for req in requests:
        before = len(trie)
        req_paths = [trie.insert(req.context + cont) for cont in req.continuations]
        if len(trie) > max_tokens and members:
            trie.truncate(before)
            chunks.append(Chunk(trie, members, paths))
            trie, members, paths = Trie(), [], []
            req_paths = [trie.insert(req.context + cont) for cont in req.continuations]
        members.append(req)
        paths.append(req_paths)
    if members:
        chunks.append(Chunk(trie, members, paths))
    return chunks
