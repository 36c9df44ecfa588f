"""Task sequences from scikit-learn's 8x8 digits, in the style of the official MNIST ones
(Supermasks in Superposition, Wortsman et al., arXiv 2006.14769).

The official loaders (RAIVNLab/supsup ``data/mnist.py``, ``data/rotatingmnist.py``,
``data/partitionmnistv2.py``) normalize every pixel with one global mean and standard
deviation (MNIST's 0.1307 / 0.3081) and then transform the image per task:

- ``MNISTPerm``: task ``i`` permutes the pixels with its own random permutation (task 0 is
  permuted too);
- ``RotatingMNIST``: task ``i`` rotates by ``i * (360 // T)`` degrees, nearest-neighbour;
- ``PartitionMNISTV2``: task ``i`` holds classes ``2i`` and ``2i + 1``, labels unshifted.

Here the base set is the digits (1,797 images, 64 pixels), split once (stratified) into train
and test, scaled to [0, 1] and normalized with the global mean and standard deviation of the
training pixels. Every task shares the split; permutations come from the dataset context's
random generator, so every cell of one spec seed sees the same tasks.

Deviations: digits instead of MNIST (no download at run time); one fixed 75/25 split instead
of MNIST's train/test files; the normalization constants come from the digits' training
pixels instead of MNIST's; rotation uses ``scipy.ndimage.rotate`` (nearest neighbour, the
background value fills the corners) instead of PIL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pydantic import Field

from harness import Dataset, HarnessError, Params, RunContext
from harness.data import ClassificationData


@dataclass
class TaskSequence:
    """T classification tasks over one base train/test split.

    ``perms`` (T x features, long) permutes the features of task t; ``images`` holds
    precomputed per-task inputs (rotations); ``classes`` restricts a task to some labels.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    num_tasks: int
    kind: str
    perms: torch.Tensor | None = None
    images: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    classes: list[list[int]] | None = None
    image_shape: tuple[int, ...] = (1, 8, 8)
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_features(self) -> int:
        return int(self.x_train[0].numel())

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    def task(self, t: int) -> ClassificationData:
        """Task ``t`` as a plain classification data set."""
        if not 0 <= t < self.num_tasks:
            raise IndexError(f"task {t} out of range 0..{self.num_tasks - 1}")
        x_tr, y_tr, x_te, y_te = self.x_train, self.y_train, self.x_test, self.y_test
        if self.perms is not None:
            x_tr, x_te = x_tr[:, self.perms[t]], x_te[:, self.perms[t]]
        if self.images is not None:
            x_tr, x_te = self.images[t]
        if self.classes is not None:
            keep_tr = torch.isin(y_tr, torch.tensor(self.classes[t]))
            keep_te = torch.isin(y_te, torch.tensor(self.classes[t]))
            x_tr, y_tr, x_te, y_te = x_tr[keep_tr], y_tr[keep_tr], x_te[keep_te], y_te[keep_te]
        return ClassificationData(x_tr, y_tr, x_te, y_te, self.num_classes,
                                  image_shape=self.image_shape, name=f"{self.name}[{t}]")


class DigitsTasksParams(Params):
    tasks: int = Field(10, ge=1, description="number of tasks T")
    test_size: float = Field(0.25, gt=0, lt=1, description="fraction held out for test")


def stratified_split(y: np.ndarray, test_size: float, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled per-class split: each class keeps its share in train and test."""
    train, test = [], []
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n_test = int(round(test_size * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    tr, te = np.concatenate(train), np.concatenate(test)
    return tr[rng.permutation(len(tr))], te[rng.permutation(len(te))]


def _base(p: DigitsTasksParams, ctx: RunContext
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits
    bunch = load_digits()
    tr, te = stratified_split(bunch.target, p.test_size, ctx.rng)
    x = bunch.data.astype(np.float64) / 16.0
    mean, std = x[tr].mean(), x[tr].std()
    x = (x - mean) / std
    as_x = lambda idx: torch.tensor(x[idx], dtype=torch.float32)  # noqa: E731
    as_y = lambda idx: torch.tensor(bunch.target[idx]).long()  # noqa: E731
    return as_x(tr), as_y(tr), as_x(te), as_y(te)


class PermutedDigits(Dataset):
    """T tasks from scikit-learn's digits, each a fixed random pixel permutation."""

    name = "supsup/permuted-digits"
    Params = DigitsTasksParams

    def load(self, ctx: RunContext) -> TaskSequence:
        p: DigitsTasksParams = self.params  # type: ignore[assignment]
        x_tr, y_tr, x_te, y_te = _base(p, ctx)
        gen = ctx.derive("permutations").generator
        perms = torch.stack([torch.randperm(x_tr.shape[1], generator=gen)
                             for _ in range(p.tasks)])
        return TaskSequence(x_tr, y_tr, x_te, y_te, 10, p.tasks, "permuted", perms=perms,
                            name=self.name)


class RotatedDigits(Dataset):
    """T tasks from scikit-learn's digits, task i rotated by i * (360 // T) degrees."""

    name = "supsup/rotated-digits"
    Params = DigitsTasksParams

    def load(self, ctx: RunContext) -> TaskSequence:
        from scipy.ndimage import rotate
        p: DigitsTasksParams = self.params  # type: ignore[assignment]
        x_tr, y_tr, x_te, y_te = _base(p, ctx)
        low = float(min(x_tr.min(), x_te.min()))  # the background after normalization

        def turn(x: torch.Tensor, angle: float) -> torch.Tensor:
            imgs = x.numpy().reshape(-1, 8, 8)
            out = rotate(imgs, angle, axes=(1, 2), reshape=False, order=0, cval=low)
            return torch.tensor(out.reshape(len(imgs), 64), dtype=torch.float32)

        step = 360 // p.tasks
        images = [(turn(x_tr, t * step), turn(x_te, t * step)) for t in range(p.tasks)]
        return TaskSequence(x_tr, y_tr, x_te, y_te, 10, p.tasks, "rotated", images=images,
                            name=self.name, meta={"angles": [t * step for t in range(p.tasks)]})


class SplitDigits(Dataset):
    """Five tasks from scikit-learn's digits: classes (0,1), (2,3), ... with global labels."""

    name = "supsup/split-digits"

    class Params(Params):
        tasks: int = Field(5, ge=1, le=5, description="number of class pairs (at most 5)")
        test_size: float = Field(0.25, gt=0, lt=1, description="fraction held out for test")

    def load(self, ctx: RunContext) -> TaskSequence:
        p: SplitDigits.Params = self.params  # type: ignore[assignment]
        if p.tasks > 5:
            raise HarnessError("split-digits has at most 5 tasks (10 classes in pairs)")
        x_tr, y_tr, x_te, y_te = _base(p, ctx)  # type: ignore[arg-type]
        classes = [[2 * t, 2 * t + 1] for t in range(p.tasks)]
        return TaskSequence(x_tr, y_tr, x_te, y_te, 10, p.tasks, "split", classes=classes,
                            name=self.name)


DATASETS: list[type[Dataset]] = [PermutedDigits, RotatedDigits, SplitDigits]
