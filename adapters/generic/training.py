"""``torch/train-classifier``: minibatch training with three plug points.

- ``optimizer``: any optimizer component (``torch/sgd``, ``fop/fop``, ...);
- ``selection``: any example-selection policy (``selection/uniform``, selective backprop);
- ``observers``: training analysers that see every step's parameters before and after;
- ``freeze``: parameter-name patterns whose tensors are never updated (from step
  ``freeze_from`` on), as the official LCA code's ``--freeze_layers`` /
  ``--freeze_starting``; gradients still flow through them and observers still see them;
- ``correction``: a batch-effect correction (:class:`harness.training.Correction`, e.g.
  ``rxrx1/per-experiment``) that prepares the data, shapes each step's loss and makes the
  evaluation logits.

Candidates are drawn from per-epoch permutations of the training set (from the run
context's generator), ``batch_size`` at a time. The policy keeps some of them; kept
examples queue up, and every full ``batch_size`` of them makes one optimizer step. With
the uniform policy this is exactly ordinary minibatch training. Training stops after
``steps`` optimizer steps, ``epochs`` passes, or ``backward_budget`` backpropagated
examples, whichever is given.
"""

from __future__ import annotations

import fnmatch
import math
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from harness import Component, HarnessError, Method, Params, RunContext, component_field
from harness.data import ClassificationData
from harness.training import StepInfo, TrainingRun, snapshot

if TYPE_CHECKING:
    import torch


def per_example_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F
    return F.cross_entropy(logits, targets, reduction="none")


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
             chunk: int = 4096) -> tuple[torch.Tensor, float, float]:
    """Logits, accuracy and mean cross-entropy over ``x`` in chunks (eval mode)."""
    import torch
    import torch.nn.functional as F
    was = model.training
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + chunk]) for i in range(0, len(x), chunk)])
    model.train(was)
    acc = (logits.argmax(1) == y).float().mean().item()
    loss = F.cross_entropy(logits, y).item()
    return logits, acc, loss


class TrainClassifierParams(Params):
    optimizer: Component = component_field("optimizer", "torch/sgd",
                                           "optimizer component, e.g. {use: torch/adam}")
    selection: Component = component_field("selection", "selection/uniform",
                                           "which candidate examples are backpropagated")
    observers: list[Component] = component_field("observer", [],
                                                 "training analysers, e.g. lca/allocation")
    correction: Component | None = component_field(
        "correction", None, "batch-effect correction, e.g. {use: rxrx1/per-experiment}")
    batch_size: int = Field(32, ge=1)
    steps: int | None = Field(None, ge=1, description="optimizer steps")
    epochs: float | None = Field(None, gt=0, description="passes over the training set")
    backward_budget: int | None = Field(None, ge=1,
                                        description="stop after this many backprop examples")
    eval_every: int = Field(0, ge=0, description="evaluate every N steps (0: only at the end)")
    grad_clip: float | None = Field(None, gt=0)
    freeze: list[str] = Field(
        default_factory=list, description="parameter-name patterns (fnmatch, e.g. '5.*' "
        "for the last layer of a torch/mlp) whose tensors the optimizer never updates; "
        "they keep their initial values and still pass gradients (official LCA "
        "--freeze_layers)")
    freeze_from: int = Field(0, ge=0, description="optimizer step from which the frozen "
                             "tensors stop moving (official --freeze_starting)")

    @model_validator(mode="after")
    def _one_stop(self) -> TrainClassifierParams:
        given = [k for k in ("steps", "epochs", "backward_budget") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(f"give one of steps, epochs, backward_budget (got {given})")
        if not given:
            self.steps = 500
        return self


class _Candidates:
    """An endless stream of per-epoch permutations, ``size`` indices at a time."""

    def __init__(self, n: int, generator: torch.Generator) -> None:
        import torch
        self.n, self.gen = n, generator
        self.perm = torch.randperm(n, generator=generator)
        self.pos = 0
        self.epochs_done = 0

    def next(self, size: int) -> torch.Tensor:
        import torch
        out = []
        while size > 0:
            if self.pos >= self.n:
                self.perm = torch.randperm(self.n, generator=self.gen)
                self.pos = 0
                self.epochs_done += 1
            take = min(size, self.n - self.pos)
            out.append(self.perm[self.pos:self.pos + take])
            self.pos += take
            size -= take
        return torch.cat(out)


def _frozen(model: torch.nn.Module, patterns: list[str]) -> list[torch.nn.Parameter]:
    """The parameters whose names match one of ``patterns``; a pattern matching none is an
    error naming the parameters there are."""
    named = dict(model.named_parameters())
    for pat in patterns:
        if not any(fnmatch.fnmatchcase(n, pat) for n in named):
            raise HarnessError(f"freeze: pattern {pat!r} matches no parameter",
                               hint=f"the model's parameters are {', '.join(named)}")
    return [q for n, q in named.items() if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)]


class TrainClassifier(Method):
    """Train a classifier with pluggable optimizer, example selection and observers."""

    name = "torch/train-classifier"
    scalars = ("train_accuracy", "train_loss", "final_batch_loss", "steps",
               "backward_examples", "forward_examples")
    Params = TrainClassifierParams

    def run(self, ctx: RunContext, data: ClassificationData, model: torch.nn.Module
            ) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F
        p: TrainClassifierParams = self.params  # type: ignore[assignment]
        model = model.to(ctx.device)
        correction = p.correction.build() if p.correction is not None else None
        if correction is not None:
            data = correction.prepare(ctx.derive("correction"), data)
        x_tr, y_tr = data.x_train.to(ctx.device), data.y_train.to(ctx.device)
        x_te, y_te = data.x_test.to(ctx.device), data.y_test.to(ctx.device)
        n = len(x_tr)
        optimizer = p.optimizer.build().build(ctx.derive("optimizer"), model)
        frozen = _frozen(model, p.freeze)
        policy = p.selection.build()
        policy.start(ctx.derive("selection"), n)
        observers = [o.build() for o in p.observers]
        run = TrainingRun(model, per_example_ce, x_tr, y_tr, x_te, y_te, optimizer)
        for i, obs in enumerate(observers):
            obs.on_start(ctx.derive(f"observer{i}"), run)
        max_steps = p.steps or (math.ceil(p.epochs * n / p.batch_size) if p.epochs else None)
        stream = _Candidates(n, ctx.derive("batches").generator)
        counts = {"steps": 0, "forward_examples": 0, "backward_examples": 0,
                  "candidates": 0}
        backprop_counts = torch.zeros(n, dtype=torch.long)
        history: list[dict[str, Any]] = []
        pending = torch.empty(0, dtype=torch.long)
        last_loss = float("nan")
        model.train()

        def losses_of(idx: torch.Tensor) -> torch.Tensor:
            counts["forward_examples"] += len(idx)
            with torch.no_grad():
                return per_example_ce(model(x_tr[idx]), y_tr[idx])

        def record() -> None:
            _, acc, loss = evaluate(model, x_te, y_te)
            history.append({**counts, "test_accuracy": acc, "test_loss": loss})

        def done() -> bool:
            if max_steps is not None:
                return counts["steps"] >= max_steps
            return counts["backward_examples"] >= (p.backward_budget or 0)

        total = max_steps or p.backward_budget
        with ctx.progress.task("train", total) as tick:
            while not done():
                cand = stream.next(p.batch_size)
                counts["candidates"] += len(cand)
                kept = policy.select(cand, losses_of)
                pending = torch.cat([pending, kept.to(torch.long)])
                while len(pending) >= p.batch_size and not done():
                    batch, pending = pending[:p.batch_size], pending[p.batch_size:]
                    loss = self._step(model, optimizer, observers, x_tr, y_tr, batch, counts, p,
                                      correction,
                                      frozen if counts["steps"] >= p.freeze_from else [])
                    backprop_counts[batch] += 1
                    tick(1 if max_steps else len(batch))
                    if p.eval_every and counts["steps"] % p.eval_every == 0:
                        record()
                    last_loss = loss
        record()
        if correction is not None:
            correction.finish(ctx.derive("correction-finish"), model, data)
            logits = correction.predict(model, x_te, "test")
            train_logits = correction.predict(model, x_tr, "train")
            train_acc = (train_logits.argmax(1) == y_tr).float().mean().item()
            train_loss = F.cross_entropy(train_logits, y_tr).item()
        else:
            logits, _, _ = evaluate(model, x_te, y_te)
            train_logits, train_acc, train_loss = evaluate(model, x_tr, y_tr)
        names = [o.name for o in observers]
        observer_out = {(n if names.count(n) == 1 else f"{n}#{i}"): o.on_end()
                        for i, (n, o) in enumerate(zip(names, observers, strict=True))}
        return {
            "model": model, "test_logits": logits, "test_targets": y_te,
            "train_logits": train_logits, "train_targets": y_tr,
            "history": history, "counts": dict(counts), "backprop_counts": backprop_counts,
            "selection": policy.stats(), "observers": observer_out,
            "correction": correction, "data": data,
            "scalars": {"train_accuracy": train_acc, "train_loss": train_loss,
                        "final_batch_loss": last_loss,
                        "steps": counts["steps"],
                        "backward_examples": counts["backward_examples"],
                        "forward_examples": counts["forward_examples"]},
        }

    @staticmethod
    def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, observers: list[Any],
              x: torch.Tensor, y: torch.Tensor, batch: torch.Tensor, counts: dict[str, int],
              p: TrainClassifierParams, correction: Any = None,
              frozen: list[torch.nn.Parameter] | None = None) -> float:
        import torch
        before = snapshot(model) if observers else {}

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            if correction is not None:
                loss = correction.train_loss(model, x[batch], y[batch], batch)
            else:
                loss = per_example_ce(model(x[batch]), y[batch]).mean()
            loss.backward()
            return loss

        loss = closure()
        for q in frozen or []:
            q.grad = None  # torch optimizers skip a tensor without a gradient
        if p.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), p.grad_clip)
        optimizer.step()
        counts["steps"] += 1
        counts["forward_examples"] += len(batch)
        counts["backward_examples"] += len(batch)
        if observers:
            info = StepInfo(counts["steps"] - 1, before, snapshot(model), batch, loss.item())
            for obs in observers:
                obs.on_step(info)
        return float(loss.item())
