"""The screen container every RxRx1 adapter shares: tensors per split plus the batch
metadata corrections need (experiment, plate, well, site, cell type, well type).

A screen is a :class:`harness.data.ClassificationData` whose ``x_train``/``y_train`` are
the training split (training experiments, site 1) and ``x_test``/``y_test`` the test split
of unseen experiments (both sites), as in WILDS' official split. ``meta`` holds:

- ``splits``: the other evaluation splits by name (``id_test``: site 2 of the training
  experiments; ``val`` when there are validation experiments), each ``(x, y)``;
- ``groups``: for every split (``train``, ``test`` and the others) a dict of int64
  tensors, one entry per image: ``experiment``, ``plate`` (1-4), ``well``, ``site``,
  ``cell_type``, ``well_type`` (:data:`TREATMENT`, :data:`POSITIVE`, :data:`NEGATIVE`);
- ``experiments``, ``cell_types``: the names behind those indices;
- ``oracle``: the same screen without batch effects (synthetic data only), else absent.
"""

from __future__ import annotations

from typing import Any

import torch

from harness.data import ClassificationData
from harness.errors import HarnessError

TREATMENT, POSITIVE, NEGATIVE = 0, 1, 2
WELL_TYPES = ("treatment", "positive_control", "negative_control")
CELL_TYPES = ("HEPG2", "HUVEC", "RPE", "U2OS")
GROUP_KEYS = ("experiment", "plate", "well", "site", "cell_type", "well_type")


def split_names(data: ClassificationData) -> list[str]:
    """``train``, ``test`` and every extra split of a screen."""
    return ["train", "test", *data.meta.get("splits", {})]


def split_xy(data: ClassificationData, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if split == "train":
        return data.x_train, data.y_train
    if split == "test":
        return data.x_test, data.y_test
    try:
        x, y = data.meta["splits"][split]
    except KeyError:
        raise HarnessError(f"the screen {data.name!r} has no split {split!r}",
                           hint="splits: " + ", ".join(split_names(data))) from None
    return x, y


def groups_of(data: ClassificationData, split: str) -> dict[str, torch.Tensor]:
    try:
        return data.meta["groups"][split]
    except KeyError:
        raise HarnessError(f"dataset {data.name!r} carries no batch metadata for split "
                           f"{split!r}", hint="batch corrections need an rxrx1 screen "
                           "(rxrx1/synthetic or rxrx1/images)") from None


def with_inputs(data: ClassificationData, xs: dict[str, torch.Tensor]) -> ClassificationData:
    """A copy of the screen with new inputs for the named splits (metadata shared)."""
    splits = dict(data.meta.get("splits", {}))
    for name, x in xs.items():
        if name not in ("train", "test"):
            splits[name] = (x, splits[name][1])
    meta = {**data.meta, "splits": splits}
    return data.with_(x_train=xs.get("train", data.x_train), x_test=xs.get("test", data.x_test),
                      meta=meta)


def all_inputs(data: ClassificationData) -> dict[str, torch.Tensor]:
    return {s: split_xy(data, s)[0] for s in split_names(data)}


def make_screen(parts: dict[str, dict[str, Any]], num_classes: int, name: str,
                experiments: list[str], meta: dict[str, Any] | None = None
                ) -> ClassificationData:
    """Assemble a screen from ``{split: {"x": ..., "y": ..., <group keys>: ...}}``."""
    groups = {s: {k: torch.as_tensor(p[k], dtype=torch.long) for k in GROUP_KEYS}
              for s, p in parts.items()}
    extra = {s: (p["x"], torch.as_tensor(p["y"], dtype=torch.long))
             for s, p in parts.items() if s not in ("train", "test")}
    x_train = parts["train"]["x"]
    return ClassificationData(
        x_train=x_train, y_train=torch.as_tensor(parts["train"]["y"], dtype=torch.long),
        x_test=parts["test"]["x"], y_test=torch.as_tensor(parts["test"]["y"], dtype=torch.long),
        num_classes=num_classes, image_shape=tuple(x_train.shape[1:]), name=name,
        meta={"splits": extra, "groups": groups, "experiments": list(experiments),
              "cell_types": list(CELL_TYPES), **(meta or {})})
