"""``rxrx1/images``: the real RxRx1 from a local folder (nothing is downloaded).

Two layouts, both with a ``metadata.csv`` at the root (columns ``experiment``, ``plate``,
``well``, ``site``, ``cell_type``, ``dataset``, ``well_type``, ``sirna_id`` as in the
RxRx1 release and in WILDS; ``site_id`` optional):

- ``rxrx1`` (the RxRx1 release, file names as in recursionpharma/rxrx1-utils):
  ``images/{experiment}/Plate{plate}/{well}_s{site}_w{channel}.png``, one 8-bit PNG per
  channel (1-6);
- ``wilds`` (RxRx1-WILDS): ``images/{experiment}/Plate{plate}/{well}_s{site}.png``, one
  RGB PNG (3 channels).

The official split (WILDS ``rxrx1_dataset.py``, split scheme ``official``): ``train`` is
the training experiments' site 1 (33 experiments), ``id_test`` their site 2, ``val``
(4 experiments) and ``test`` (14 experiments) both sites, read from the ``dataset``
column (``val_experiments`` moves experiments into ``val``, e.g. for the RxRx1 release
whose column holds only train and test). Images are read lazily (only the selected
experiments), resized to ``image_size`` by area averaging, scaled to [0, 1] and cached
on disk as one array per (folder, selection, size), so a second run reads no PNG.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from harness import Dataset, Params, RunContext
from harness.data import ClassificationData
from harness.errors import HarnessError

from .screen import CELL_TYPES, NEGATIVE, POSITIVE, TREATMENT, make_screen

WHERE = ("RxRx1 is not downloaded by the harness: get it from https://www.rxrx.ai/rxrx1 "
         "(images and metadata.csv) or RxRx1-WILDS (https://wilds.stanford.edu, "
         "`rxrx1_v1.0`), licence CC BY-NC-SA 4.0, and pass its folder as `root`")
WELL_TYPE = {"treatment": TREATMENT, "positive_control": POSITIVE,
             "negative_control": NEGATIVE}
NEEDED = ("experiment", "plate", "well", "site", "dataset", "well_type", "sirna_id")


class ImagesParams(Params):
    root: str = Field(..., description="folder holding metadata.csv and images/")
    layout: Literal["auto", "rxrx1", "wilds"] = "auto"
    image_size: int = Field(64, ge=4, le=1024, description="side after area resizing")
    channels: list[int] | None = Field(None, description="rxrx1 layout: channels 1-6 "
                                       "to read (default all)")
    experiments: list[str] | None = Field(None, description="only these experiments")
    val_experiments: list[str] = Field(default_factory=list,
                                       description="experiments moved to the val split")
    cache: bool = Field(True, description="cache the decoded arrays under the cache folder")


def read_metadata(root: Path) -> list[dict[str, str]]:
    import csv
    path = root / "metadata.csv"
    if not root.is_dir():
        raise HarnessError(f"rxrx1/images: folder {str(root)!r} does not exist", hint=WHERE)
    if not path.is_file():
        raise HarnessError(f"rxrx1/images: no metadata.csv in {str(root)!r}", hint=WHERE)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in NEEDED if rows and c not in rows[0]]
    if not rows or missing:
        raise HarnessError(f"{path}: {'no rows' if not rows else f'missing columns {missing}'}",
                           hint="expected the RxRx1 / RxRx1-WILDS metadata.csv columns: "
                           + ", ".join(NEEDED))
    return rows


def detect_layout(root: Path, row: dict[str, str]) -> str:
    base = root / "images" / row["experiment"] / f"Plate{row['plate']}"
    if (base / f"{row['well']}_s{row['site']}_w1.png").is_file():
        return "rxrx1"
    if (base / f"{row['well']}_s{row['site']}.png").is_file():
        return "wilds"
    raise HarnessError(f"rxrx1/images: no image for {row['experiment']} plate {row['plate']} "
                       f"well {row['well']} site {row['site']} under {base}",
                       hint="expected images/{experiment}/Plate{p}/{well}_s{site}_w{c}.png "
                       "(rxrx1) or {well}_s{site}.png (wilds)")


class LazyImages:
    """Reads one site's image on demand (all its channels), resized, in [0, 1]; memoized."""

    def __init__(self, root: Path, layout: str, size: int, channels: list[int]) -> None:
        self.root, self.layout, self.size, self.channels = root, layout, size, channels
        self._memo: dict[tuple[str, str, str, str], np.ndarray] = {}

    def _read(self, path: Path) -> np.ndarray:
        from PIL import Image
        if not path.is_file():
            raise HarnessError(f"rxrx1/images: missing image {path}", hint=WHERE)
        with Image.open(path) as im:
            if im.size != (self.size, self.size):
                im = im.resize((self.size, self.size), Image.Resampling.BOX)
            arr = np.asarray(im, dtype=np.float32) / 255.0
        return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)

    def get(self, row: dict[str, str]) -> np.ndarray:
        key = (row["experiment"], row["plate"], row["well"], row["site"])
        if key not in self._memo:
            base = self.root / "images" / row["experiment"] / f"Plate{row['plate']}"
            stem = f"{row['well']}_s{row['site']}"
            if self.layout == "wilds":
                self._memo[key] = self._read(base / f"{stem}.png")
            else:
                self._memo[key] = np.concatenate(
                    [self._read(base / f"{stem}_w{c}.png") for c in self.channels])
        return self._memo[key]


def assign_split(row: dict[str, str], val: set[str]) -> str | None:
    ds, site = row["dataset"], int(row["site"])
    if row["experiment"] in val:
        return "val"
    if ds == "train":
        return "train" if site == 1 else "id_test"
    return ds if ds in ("val", "test") else None


class RxRx1Images(Dataset):
    """The real RxRx1 from a local folder (rxrx1 or WILDS layout), WILDS' official split."""

    name = "rxrx1/images"
    fingerprint_cacheable = False  # reads files: always loaded to be fingerprinted
    version = "1"
    Params = ImagesParams

    def inputs(self, cache_dir: Path) -> list[Path] | None:
        """The dataset's folder: metadata and every image (their sizes and times only)."""
        return [Path(self.params.root).expanduser()]  # type: ignore[attr-defined]

    def load(self, ctx: RunContext) -> ClassificationData:
        p: ImagesParams = self.params  # type: ignore[assignment]
        root = Path(p.root).expanduser()
        rows = read_metadata(root)
        if p.experiments is not None:
            rows = [r for r in rows if r["experiment"] in set(p.experiments)]
            if not rows:
                raise HarnessError(f"none of the experiments {p.experiments} is in "
                                   f"{root / 'metadata.csv'}")
        channels = p.channels or [1, 2, 3, 4, 5, 6]
        key = json.dumps([str(root.resolve()), (root / "metadata.csv").stat().st_mtime, p.layout,
                          p.image_size, channels, p.experiments, p.val_experiments])
        cache = ctx.cache_dir / "rxrx1" / (hashlib.sha256(key.encode()).hexdigest()[:16]
                                           + ".npz")
        experiments = sorted({r["experiment"] for r in rows})
        val = set(p.val_experiments)
        parts: dict[str, dict[str, list[Any]]] = {}
        chosen: list[tuple[str, dict[str, str]]] = []
        for r in rows:
            split = assign_split(r, val)
            if split is not None:
                chosen.append((split, r))
        if p.cache and cache.is_file():
            with np.load(cache) as saved:
                images, layout = saved["images"], str(saved["layout"])
        else:
            layout = detect_layout(root, rows[0]) if p.layout == "auto" else p.layout
            store = LazyImages(root, layout, p.image_size, channels)
            images = np.stack([store.get(r) for _, r in chosen]) if chosen else np.zeros(0)
            if p.cache:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(".tmp.npz")
                np.savez(tmp, images=images, layout=np.array(layout))
                tmp.replace(cache)
        exp_index = {e: i for i, e in enumerate(experiments)}
        for i, (split, r) in enumerate(chosen):
            part = parts.setdefault(split, {k: [] for k in ("i", "y", "experiment", "plate",
                                                            "well", "site", "cell_type",
                                                            "well_type")})
            cell = r.get("cell_type") or r["experiment"].split("-")[0]
            part["i"].append(i)
            part["y"].append(int(float(r["sirna_id"])))
            part["experiment"].append(exp_index[r["experiment"]])
            part["plate"].append(int(r["plate"]))
            part["well"].append(_well_index(r["well"]))
            part["site"].append(int(r["site"]))
            part["cell_type"].append(CELL_TYPES.index(cell.upper()) if cell.upper()
                                     in CELL_TYPES else len(CELL_TYPES))
            part["well_type"].append(WELL_TYPE.get(r["well_type"], TREATMENT))
        for need in ("train", "test"):
            if need not in parts:
                raise HarnessError(f"rxrx1/images: the selection has no {need!r} split",
                                   hint="check the `dataset` column and `experiments`")
        screen_parts = {s: {"x": torch.as_tensor(images[v.pop("i")]), **v}
                        for s, v in parts.items()}
        n_cls = max(int(float(r["sirna_id"])) for r in rows) + 1
        return make_screen(screen_parts, n_cls, "rxrx1/images", experiments,
                           {"design": {"layout": layout, "root": str(root),
                                       "image_size": p.image_size}})


def _well_index(well: str) -> int:
    """``B02`` -> row * 24 + column (384-well plates, rows A-P, columns 1-24)."""
    return (ord(well[0].upper()) - ord("A")) * 24 + int(well[1:]) - 1
