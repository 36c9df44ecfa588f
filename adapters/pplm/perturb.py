"""PPLM's step: perturb the key/value history toward an attribute, then fuse and sample.

After ``perturb_past`` and ``generate_text_pplm`` of uber-research/PPLM ``run_pplm.py``
(Dathathri et al., arXiv 1912.02164), batched over rows whose prefixes have one token
length (each row keeps its own history, so no padding is needed). Per generated token:

1. the unperturbed distribution comes from a clean history (no perturbation ever);
2. a perturbation of every layer's keys and values at every past position (all but the
   last token, which is the input) starts at zero; ``num_iterations`` times: forward the
   last token through the perturbed history, loss = attribute loss + ``kl_scale`` KL to
   the unperturbed distribution, gradient w.r.t. the perturbation, masked by the window,
   normalised per layer over keys and values together as ``g / norm**gamma`` (for BoW
   ``norm`` is a running max carried across tokens, as the official code passes
   ``grad_norms`` back in), and the perturbation moves by ``-stepsize`` times that;
3. the last token is forwarded through the perturbed history; its keys and values join
   that perturbed history, which is carried forward to the next token;
4. ``p ∝ p_pert**gm_scale * p_unpert**(1 - gm_scale)``, top-k on probabilities, then a
   draw from the row's own generator (or greedy).

Every row has its own step size, attribute target, gradient norms and generator; the
loss is a sum of per-row losses, so one backward gives each row its own gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from .kv import KV, LlamaKV, concat, select_rows

SMALL_CONST = 1e-15  # the official constant (probability floor, norm offset)


@dataclass
class Settings:
    """The official ``run_pplm.py`` knobs (names as there)."""

    num_iterations: int = 3
    gamma: float = 1.5
    kl_scale: float = 0.01
    gm_scale: float = 0.95
    top_k: int = 10
    temperature: float = 1.0
    sample: bool = True
    window_length: int = 0
    window_side: str = "oldest"  # the official mask; "recent" is issue 31's reading
    decay: bool = False
    horizon_length: int = 1
    grad_length: int = 10000
    gradient_sign: float = 1.0  # ablation: -1 climbs the attribute loss
    reused_cache: bool = False  # ablation: the bug of reusing one mutated DynamicCache
    unreset_delta: bool = False  # ablation: the perturbation is not reset at each token


@dataclass
class StepState:
    """What an attribute loss may look at for the current token."""

    lm: LlamaKV
    length: int  # tokens so far (prefix + generated), the last one included
    clean_full: KV  # clean history including the last token
    clean_hidden_sum: torch.Tensor  # [rows, hidden]: clean final hidden states, all but last


class Attribute(Protocol):
    running_max_norm: bool

    def loss(self, probs: torch.Tensor, hidden: torch.Tensor, state: StepState
             ) -> torch.Tensor: ...

    def select(self, rows: torch.Tensor) -> Attribute: ...


def top_k_probs(probs: torch.Tensor, k: int) -> torch.Tensor:
    """Probabilities below the row's k-th largest set to 0 (official ``probs=True``)."""
    if k <= 0:
        return probs
    kth = torch.topk(probs, min(k, probs.shape[-1]), dim=-1).values[:, -1:]
    return torch.where(probs < kth, torch.zeros_like(probs), probs)


def top_k_logits(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Logits below the row's k-th largest set to -1e10 (official ``top_k_filter``)."""
    if k <= 0:
        return logits
    kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[:, -1:]
    return torch.where(logits < kth, torch.full_like(logits, -1e10), logits)


def fuse(pert_probs: torch.Tensor, unpert_probs: torch.Tensor, gm_scale: float,
         top_k: int) -> torch.Tensor:
    """Geometric-mean fusion, top-k, renormalised (official ``generate_text_pplm``)."""
    p = pert_probs ** gm_scale * unpert_probs ** (1 - gm_scale)
    p = top_k_probs(p, top_k)
    return p / p.sum(-1, keepdim=True)


def kl_to(probs: torch.Tensor, unpert_probs: torch.Tensor) -> torch.Tensor:
    """Per-row KL(p || p_unpert) with the official 1e-15 floors."""
    u = unpert_probs + SMALL_CONST * (unpert_probs <= SMALL_CONST).float()
    p = probs + SMALL_CONST * (probs <= SMALL_CONST).float().detach()
    return (p * (p / u).log()).sum(-1)


def window_mask(length: int, s: Settings, device: torch.device) -> torch.Tensor:
    """``[length]`` weights of the past positions the gradient may move."""
    w = s.window_length
    if w <= 0 or length <= w:
        return torch.ones(length, device=device)
    inside = (torch.arange(1, w + 1, dtype=torch.float32, device=device) / w if s.decay
              else torch.ones(w, device=device))
    zeros = torch.zeros(length - w, device=device)
    if s.window_side == "oldest":  # official: ones first, i.e. the oldest positions
        return torch.cat([inside, zeros])
    return torch.cat([zeros, inside])


@dataclass
class Norms:
    """Per-row, per-layer gradient norms (BoW keeps a running max across tokens)."""

    value: torch.Tensor | None = None  # [rows, layers]

    def select(self, rows: torch.Tensor) -> Norms:
        return Norms(None if self.value is None else self.value[rows])


def perturb_past(past: KV, last: torch.Tensor, unpert_probs: torch.Tensor,
                 attribute: Attribute, state: StepState, stepsize: torch.Tensor,
                 norms: Norms, s: Settings, init: KV | None = None
                 ) -> tuple[KV, list[float], KV]:
    """``past`` plus the accumulated perturbation (``num_iterations`` steps from zero, or
    from ``init``), the losses, and the perturbation itself."""
    lm = state.lm
    mask = window_mask(past[0][0].shape[2], s, last.device).view(1, 1, -1, 1)
    delta = init if init is not None else [(torch.zeros_like(k), torch.zeros_like(v))
                                           for k, v in past]
    losses: list[float] = []
    for _ in range(s.num_iterations):
        leaves = [t.clone().requires_grad_(True) for pair in delta for t in pair]
        pert = [(k + leaves[2 * i], v + leaves[2 * i + 1]) for i, (k, v) in enumerate(past)]
        out = lm.forward(last, past=pert)
        probs = F.softmax(out.logits[:, -1, :], dim=-1)
        loss = attribute.loss(probs, out.hidden[:, -1, :], state)
        if s.kl_scale > 0:
            loss = loss + s.kl_scale * kl_to(probs, unpert_probs)
        losses.append(float(loss.detach().sum()))
        grads = torch.autograd.grad(loss.sum(), leaves)
        grads = [g * mask for g in grads]
        sq = torch.stack([(grads[2 * i] ** 2).sum((1, 2, 3)) + (grads[2 * i + 1] ** 2)
                          .sum((1, 2, 3)) for i in range(len(past))], dim=1)
        now = sq.sqrt()
        if attribute.running_max_norm and norms.value is not None:
            norms.value = torch.maximum(norms.value, now)
        else:
            norms.value = now + SMALL_CONST
        scale = (-s.gradient_sign * stepsize.view(-1, 1) / norms.value ** s.gamma)
        delta = [(dk + scale[:, i].view(-1, 1, 1, 1) * grads[2 * i],
                  dv + scale[:, i].view(-1, 1, 1, 1) * grads[2 * i + 1])
                 for i, (dk, dv) in enumerate(delta)]
        if s.reused_cache:  # the forward appended the token to a shared, mutated history
            grown = [(k.detach(), v.detach()) for k, v in out.kv]
            past = concat(past, grown)
            delta = concat(delta, [(torch.zeros_like(k), torch.zeros_like(v))
                                   for k, v in grown])
            mask = window_mask(past[0][0].shape[2], s, last.device).view(1, 1, -1, 1)
    pert = [(k + dk, v + dv) for (k, v), (dk, dv) in zip(past, delta, strict=True)]
    return pert, losses, delta


def draw(probs: torch.Tensor, generators: list[torch.Generator], sample: bool
         ) -> list[int]:
    """One token per row: a draw from the row's own generator, or the argmax."""
    if not sample:
        return probs.argmax(-1).tolist()
    return [int(torch.multinomial(probs[r], 1, generator=g)) for r, g in enumerate(generators)]


@torch.no_grad()
def _clean_step(lm: LlamaKV, last: torch.Tensor, clean: KV) -> tuple[torch.Tensor, ...]:
    out = lm.forward(last, past=clean)
    return out.logits[:, -1, :], out.hidden[:, -1, :], out.kv  # type: ignore[return-value]


def generate(lm: LlamaKV, prefixes: list[list[int]], generators: list[torch.Generator],
             max_new: int, stop_ids: set[int], s: Settings, *, perturb: bool,
             attribute: Attribute | None = None, stepsize: torch.Tensor | None = None
             ) -> list[list[int]]:
    """Generated ids per row (stop token excluded); rows' prefixes have one length (they
    may differ in content). ``perturb=False`` is the official unperturbed path (top-k on
    logits, softmax); ``perturb=True`` runs PPLM."""
    n = len(generators)
    if len({len(p) for p in prefixes}) != 1 or len(prefixes) != n:
        raise ValueError("one prefix per row, all of one length")
    if len(prefixes[0]) < 2:
        raise ValueError("PPLM needs a prefix of at least two tokens (start token + text)")
    dev = lm.embed.weight.device
    with torch.no_grad():
        head = lm.forward(torch.tensor([p[:-1] for p in prefixes], device=dev))
    clean = head.kv
    past = clean  # the perturbed history (equal to the clean one before any step)
    hidden_sum = head.hidden.sum(1)
    last = torch.tensor([[p[-1]] for p in prefixes], dtype=torch.long, device=dev)
    live = list(range(n))
    gens = list(generators)
    out: list[list[int]] = [[] for _ in range(n)]
    norms = Norms()
    carried: KV | None = None  # the last token's perturbation (unreset_delta ablation)
    steps = torch.zeros(n) if stepsize is None else stepsize.clone().float()
    for i in range(max_new):
        length = len(prefixes[0]) + i
        unpert_logits, clean_hidden, clean_new = _clean_step(lm, last, clean)
        clean_full = concat(clean, clean_new)
        if perturb:
            assert attribute is not None
            unpert_probs = F.softmax(unpert_logits, dim=-1)
            state = StepState(lm, length, clean_full, hidden_sum)
            current = steps if i < s.grad_length else steps * 0
            init = None
            if s.unreset_delta and carried is not None:  # the bug: start from the last one
                init = concat(carried, [(torch.zeros_like(k[:, :, -1:]),
                                         torch.zeros_like(v[:, :, -1:])) for k, v in carried])
            pert_past, _, carried = perturb_past(past, last, unpert_probs, attribute, state,
                                                 current, norms, s, init)
            carried = [(k.detach(), v.detach()) for k, v in carried]
            with torch.no_grad():
                pert = lm.forward(last, past=pert_past)
            past = concat([(k.detach(), v.detach()) for k, v in pert_past], pert.kv)
            pert_probs = F.softmax(pert.logits[:, -1, :] / s.temperature, dim=-1)
            probs = fuse(pert_probs, unpert_probs, s.gm_scale, s.top_k)
        else:
            probs = F.softmax(top_k_logits(unpert_logits / s.temperature, s.top_k), dim=-1)
        toks = draw(probs, gens, s.sample)
        clean = clean_full
        hidden_sum = hidden_sum + clean_hidden
        keep = []
        for r, tok in enumerate(toks):
            if tok in stop_ids:
                continue
            out[live[r]].append(tok)
            keep.append(r)
        if len(keep) < len(live):
            if not keep:
                break
            rows = torch.tensor(keep, device=dev)
            live = [live[r] for r in keep]
            gens = [gens[r] for r in keep]
            clean, hidden_sum = select_rows(clean, rows), hidden_sum[rows]
            steps = steps[rows]
            norms = norms.select(rows)
            if carried is not None:
                carried = select_rows(carried, rows)
            if perturb:
                past = select_rows(past, rows)
                attribute = attribute.select(rows) if attribute is not None else None
            toks = [toks[r] for r in keep]
        last = torch.tensor([[t] for t in toks], device=dev)
    return out


class BagOfWords:
    """BoW attribute: ``-log sum_{w in bag} p(w)`` per row (one bag per row)."""

    running_max_norm = True

    def __init__(self, masks: torch.Tensor) -> None:
        self.masks = masks  # [rows, vocab] 0/1

    def loss(self, probs: torch.Tensor, hidden: torch.Tensor, state: StepState
             ) -> torch.Tensor:
        return -torch.log((probs * self.masks).sum(-1))

    def select(self, rows: torch.Tensor) -> BagOfWords:
        return BagOfWords(self.masks[rows])


class Discriminator:
    """Discriminator attribute: cross-entropy of a head on the mean of the clean hidden
    states so far, the perturbed last state (detached, as the official code) and
    ``horizon_length`` expected future states (embedding of ``p`` fed to the clean
    history)."""

    running_max_norm = False

    def __init__(self, head: torch.nn.Module, labels: torch.Tensor, horizon: int) -> None:
        self.head, self.labels, self.horizon = head, labels, horizon

    def loss(self, probs: torch.Tensor, hidden: torch.Tensor, state: StepState
             ) -> torch.Tensor:
        acc = state.clean_hidden_sum + hidden.detach()
        embeds = (probs @ state.lm.embedding_matrix.detach()).unsqueeze(1)
        past = state.clean_full
        for _ in range(self.horizon):
            out = state.lm.forward(embeds=embeds, past=past)
            past = concat(past, out.kv)
            acc = acc + out.hidden[:, 0, :]
        logits = self.head(acc / (state.length + self.horizon))
        return F.cross_entropy(logits, self.labels, reduction="none")

    def select(self, rows: torch.Tensor) -> Discriminator:
        return Discriminator(self.head, self.labels[rows], self.horizon)
