"""Dataset wrappers that corrupt the training split of any classification dataset.

Used to reproduce Hu, Hu, Liu, Hooker & Yosinski, "When does loss-based prioritization
fail?", arXiv:2107.07741: label noise (uniform or class-conditional flips) and corrupted
inputs. The wrapped dataset is a nested component (``dataset: digits`` names a top-level
dataset; ``dataset: {use: sklearn/digits}`` builds one inline). Only the training split is
changed; the test split is passed through untouched, so test accuracy is clean accuracy.

Every wrapper records which training examples it corrupted in ``data.meta["noisy"]`` (a bool
tensor over the training split; wrappers compose: an example is noisy if any layer corrupted
it), keeps the original labels in ``data.meta["clean_y_train"]`` and describes itself in
``data.meta["corruptions"]``.

Counts are exact: ``rate * n`` rounded (uniform flips, corrupted inputs); class-conditional
flips split that total over classes by largest remainders, so each class loses ``rate`` of
its examples up to one.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from harness import Component, Dataset, HarnessError, Params, RunContext, component_field
from harness.data import ClassificationData


def _load_inner(component: Component, ctx: RunContext) -> ClassificationData:
    data = ctx.load_dataset(component)  # a referenced top-level dataset loads as in its cells
    if not isinstance(data, ClassificationData):
        raise HarnessError(f"noise wrappers need a classification dataset; {component.label!r} "
                           f"loads a {type(data).__name__}",
                           hint="wrap a dataset such as sklearn/digits or "
                           "synthetic/gaussian-mixture")
    return data


def _apportion(total: int, sizes: np.ndarray) -> np.ndarray:
    """Integers proportional to ``sizes`` that sum to ``total`` (largest remainders)."""
    if sizes.sum() == 0:
        return np.zeros_like(sizes)
    share = total * sizes / sizes.sum()
    base = np.floor(share).astype(int)
    left = total - int(base.sum())
    order = np.argsort(-(share - base), kind="stable")
    base[order[:left]] += 1
    return np.minimum(base, sizes)


def _merge_meta(data: ClassificationData, noisy: torch.Tensor, info: dict[str, Any]
                ) -> dict[str, Any]:
    meta = dict(data.meta)
    before = meta.get("noisy")
    meta["noisy"] = noisy if before is None else (before.bool() | noisy)
    meta.setdefault("clean_y_train", data.y_train)
    meta["corruptions"] = [*meta.get("corruptions", []), info]
    return meta


class LabelNoise(Dataset):
    """Flip a fraction of training labels (uniform or class-conditional); test stays clean."""

    name = "noise/label-noise"
    version = "1"

    class Params(Params):
        dataset: Component = component_field("dataset", description="the dataset to corrupt "
                                             "(a top-level dataset's name or a component)")
        rate: float = Field(..., ge=0, lt=1, description="fraction of training labels flipped")
        mode: Literal["uniform", "class-conditional"] = Field(
            "uniform", description="uniform: a flipped label becomes any other class with "
            "equal probability; class-conditional: class c becomes transitions[c]")
        transitions: dict[int, int] | None = Field(
            None, description="class-conditional: source class -> flipped class; only the "
            "listed classes are flipped, each at `rate` (default: every class c -> c+1 mod K, "
            "the 'pair flip' of the noisy-label literature)")

        @model_validator(mode="after")
        def _check(self) -> LabelNoise.Params:
            if self.transitions is not None and self.mode != "class-conditional":
                raise ValueError("transitions go with mode: class-conditional")
            for src, dst in (self.transitions or {}).items():
                if src == dst:
                    raise ValueError(f"transitions[{src}] maps a class to itself: not a flip")
            return self

    def load(self, ctx: RunContext) -> ClassificationData:
        p = self.params
        data = _load_inner(p.dataset, ctx)
        rng = ctx.derive("label-noise").rng
        y = data.y_train.numpy().copy()
        n, k = len(y), data.num_classes
        total = int(round(p.rate * n))
        if p.mode == "uniform":
            flip = rng.choice(n, size=total, replace=False)
            offset = rng.integers(1, k, size=total)  # never the same class
            y[flip] = (y[flip] + offset) % k
        else:
            table = p.transitions or {c: (c + 1) % k for c in range(k)}
            bad = [c for c, d in table.items() if not 0 <= d < k or not 0 <= c < k]
            if bad:
                raise HarnessError(f"noise/label-noise: transitions name classes outside "
                                   f"0..{k - 1}: {bad}", hint=f"{data.name} has {k} classes")
            classes = np.array(sorted(table))
            sizes = np.array([(y == c).sum() for c in classes])
            total = int(round(p.rate * sizes.sum()))
            per_class = _apportion(total, sizes)
            picks = []
            for c, m in zip(classes, per_class, strict=True):
                members = np.flatnonzero(y == c)
                picks.append(rng.choice(members, size=int(m), replace=False))
            flip = np.concatenate(picks) if picks else np.empty(0, dtype=int)
            y[flip] = np.array([table[int(c)] for c in y[flip]], dtype=y.dtype)
        noisy = torch.zeros(n, dtype=torch.bool)
        noisy[torch.from_numpy(flip.astype(np.int64))] = True
        info = {"kind": "label-noise", "mode": p.mode, "rate": p.rate, "count": int(total)}
        return data.with_(y_train=torch.from_numpy(y).long(), meta=_merge_meta(data, noisy, info),
                          name=f"{data.name}+label-noise({p.rate:g},{p.mode})")


class InputCorruption(Dataset):
    """Replace a fraction of training inputs by noise (labels kept); test stays clean."""

    name = "noise/input-corruption"
    version = "1"

    class Params(Params):
        dataset: Component = component_field("dataset", description="the dataset to corrupt "
                                             "(a top-level dataset's name or a component)")
        fraction: float = Field(..., ge=0, le=1, description="fraction of training inputs "
                                "replaced")
        noise: Literal["gaussian", "uniform"] = Field(
            "gaussian", description="gaussian: per-feature mean and std of the training "
            "inputs; uniform: per-feature [min, max] of the training inputs")

    def load(self, ctx: RunContext) -> ClassificationData:
        p = self.params
        data = _load_inner(p.dataset, ctx)
        rng = ctx.derive("input-corruption").rng
        x = data.x_train.numpy().astype(np.float64)
        n = len(x)
        flat = x.reshape(n, -1)
        total = int(round(p.fraction * n))
        idx = rng.choice(n, size=total, replace=False)
        if p.noise == "gaussian":
            mu, sd = flat.mean(0), flat.std(0)
            fake = mu + sd * rng.normal(size=(total, flat.shape[1]))
        else:
            lo, hi = flat.min(0), flat.max(0)
            fake = lo + (hi - lo) * rng.random(size=(total, flat.shape[1]))
        new = flat.copy()
        new[idx] = fake
        noisy = torch.zeros(n, dtype=torch.bool)
        noisy[torch.from_numpy(idx.astype(np.int64))] = True
        x_new = torch.tensor(new.reshape(x.shape), dtype=data.x_train.dtype)
        info = {"kind": "input-corruption", "noise": p.noise, "fraction": p.fraction,
                "count": int(total)}
        return data.with_(x_train=x_new, meta=_merge_meta(data, noisy, info),
                          name=f"{data.name}+input-corruption({p.fraction:g},{p.noise})")


NOISE = [LabelNoise, InputCorruption]
