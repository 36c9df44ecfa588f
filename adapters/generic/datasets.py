"""Datasets bundled with scikit-learn and a synthetic Gaussian mixture."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness import Dataset, Params, RunContext
from harness.data import ClassificationData

if TYPE_CHECKING:
    import numpy as np
    import torch


class SplitParams(Params):
    test_size: float = Field(0.25, gt=0, lt=1, description="fraction held out for test")
    preprocess: Literal["none", "standardize", "minmax"] = Field(
        "standardize", description="fitted on the training split only")


def stratified_split(y: np.ndarray, test_size: float, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per-class shuffled split, so each class keeps its share in both splits."""
    import numpy as np
    train, test = [], []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(test_size * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    tr, te = np.concatenate(train), np.concatenate(test)
    return tr[rng.permutation(len(tr))], te[rng.permutation(len(te))]


def preprocess(x_tr: np.ndarray, x_te: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np
    if how == "standardize":
        mu, sd = x_tr.mean(0), x_tr.std(0)
        sd[sd == 0] = 1.0
        return (x_tr - mu) / sd, (x_te - mu) / sd
    if how == "minmax":
        lo, hi = x_tr.min(0), x_tr.max(0)
        span = np.where(hi > lo, hi - lo, 1.0)
        return (x_tr - lo) / span, (x_te - lo) / span
    return x_tr, x_te


def to_data(x: np.ndarray, y: np.ndarray, p: SplitParams, rng: np.random.Generator,
            name: str, image_shape: tuple[int, ...] | None = None) -> ClassificationData:
    import numpy as np
    import torch
    tr, te = stratified_split(y, p.test_size, rng)
    x_tr, x_te = preprocess(x[tr].astype(np.float64), x[te].astype(np.float64), p.preprocess)
    return ClassificationData(
        x_train=torch.tensor(x_tr, dtype=torch.float32), y_train=torch.tensor(y[tr]).long(),
        x_test=torch.tensor(x_te, dtype=torch.float32), y_test=torch.tensor(y[te]).long(),
        num_classes=int(y.max()) + 1, image_shape=image_shape, name=name)


class _Sklearn(Dataset):
    loader = ""
    Params = SplitParams

    def load(self, ctx: RunContext) -> ClassificationData:
        import sklearn.datasets as skd
        bunch = getattr(skd, self.loader)()
        return to_data(bunch.data, bunch.target, self.params, ctx.rng, self.name)


class Digits(_Sklearn):
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), stratified split."""

    name = "sklearn/digits"
    loader = "load_digits"

    class Params(SplitParams):
        preprocess: Literal["none", "standardize", "minmax"] = "minmax"

    def load(self, ctx: RunContext) -> ClassificationData:
        from sklearn.datasets import load_digits
        bunch = load_digits()
        return to_data(bunch.data, bunch.target, self.params, ctx.rng, self.name, (1, 8, 8))


class Iris(_Sklearn):
    """scikit-learn's iris (150 flowers, 4 features, 3 classes), stratified split."""

    name = "sklearn/iris"
    loader = "load_iris"


class Wine(_Sklearn):
    """scikit-learn's wine (178 wines, 13 features, 3 classes), stratified split."""

    name = "sklearn/wine"
    loader = "load_wine"


class BreastCancer(_Sklearn):
    """scikit-learn's breast cancer Wisconsin (569 cases, 30 features, 2 classes)."""

    name = "sklearn/breast-cancer"
    loader = "load_breast_cancer"


class GaussianMixture(Dataset):
    """Synthetic classes drawn from isotropic Gaussians with random means."""

    name = "synthetic/gaussian-mixture"

    class Params(Params):
        classes: int = Field(4, ge=2)
        dim: int = Field(10, ge=1)
        n_train: int = Field(2000, ge=1)
        n_test: int = Field(1000, ge=1)
        separation: float = Field(3.0, gt=0, description="distance scale of the class means")
        std: float = Field(1.0, gt=0)

    def load(self, ctx: RunContext) -> ClassificationData:
        import numpy as np
        import torch
        p = self.params
        rng = ctx.rng
        means = rng.normal(size=(p.classes, p.dim))
        means *= p.separation / np.linalg.norm(means, axis=1, keepdims=True)

        def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            y = rng.integers(0, p.classes, size=n)
            x = means[y] + p.std * rng.normal(size=(n, p.dim))
            return torch.tensor(x, dtype=torch.float32), torch.tensor(y).long()

        x_tr, y_tr = draw(p.n_train)
        x_te, y_te = draw(p.n_test)
        return ClassificationData(x_tr, y_tr, x_te, y_te, p.classes, name=self.name)


DATASETS: list[type[Dataset]] = [Digits, Iris, Wine, BreastCancer, GaussianMixture]
