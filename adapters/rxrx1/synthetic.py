"""``rxrx1/synthetic``: a CPU-sized screen with RxRx1's design and layered batch effects.

The design follows RxRx1 (Sypetkowski et al., arXiv 2301.05768; the layout as
kaggle-rcic-1st describes it): 4 cell types, several experiments per cell type, 4 plates
per experiment, 2 sites (images) per well, 6 channels. The treatment siRNAs form 4 plate
groups; each experiment assigns group ``(p - 1 + shift) % 4`` to plate ``p`` with a
per-experiment rotation ``shift``, and every plate also holds positive-control siRNAs
and negative-control (untreated) wells. Scale (defaults, documented in docs/rxrx1.md):
16 experiments (3 training + 1 test per cell type), 24 siRNAs in groups of 6, 3 replicate
wells per siRNA per plate (the real screen has 1), 2 positive controls and 4 negative
wells per plate: 24 wells x 2 sites x 4 plates = 192 images of 6 x 16 x 16 per experiment.

Biology: each cell type has a baseline channel-intensity profile (the real per-cell-type
channel means, kaggle-rcic-1st's pixel statistics, rescaled) and cell size; an image holds
a few Gaussian "cells" at random places. A siRNA changes the log-intensity of 2 channels
and, half the time, the cell size (sparse effects); each effect is shared by the cell
types with probability ``shared_fraction``, otherwise it is redrawn for that cell type.

Batch effects, in layers (none of them in the oracle, which is the same biology with the
same random draws): per-experiment per-channel gain (log-normal with the real data's
coefficient of variation of per-experiment channel means, per cell type: HepG2 0.4-1.1,
RPE 0.1-0.3) and offset; per-plate affine (gain CV 0.1, offset); well-position edge
effect (outer wells brighter by up to 30%); illumination vignetting (radial fall-off up
to 50%); site noise (per-image intensity jitter and per-experiment extra pixel noise).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from harness import Dataset, Params, RunContext
from harness.data import ClassificationData

from .screen import CELL_TYPES, NEGATIVE, POSITIVE, TREATMENT, make_screen

# Coefficient of variation across experiments of each channel's mean pixel value, per cell
# type, computed from the per-experiment pixel statistics kaggle-rcic-1st ships
# (precomputed.py); and the cell types' mean channel intensities there (0-255 scale).
CHANNEL_CV = {"HEPG2": (1.08, 0.38, 0.72, 0.90, 1.14, 0.78),
              "HUVEC": (0.28, 0.22, 0.19, 0.23, 0.32, 0.39),
              "RPE": (0.17, 0.17, 0.18, 0.11, 0.27, 0.28),
              "U2OS": (0.28, 0.87, 0.38, 0.68, 1.22, 0.41)}
CHANNEL_MEAN = {"HEPG2": (11.0, 15.8, 12.9, 15.1, 11.5, 11.8),
                "HUVEC": (4.3, 15.8, 7.2, 8.4, 2.8, 6.6),
                "RPE": (2.7, 12.7, 12.6, 7.1, 4.3, 8.9),
                "U2OS": (8.6, 20.3, 12.7, 12.4, 8.4, 15.2)}
CELL_RADIUS = {"HEPG2": 1.5, "HUVEC": 2.2, "RPE": 1.9, "U2OS": 2.5}  # pixels at 16x16
CHANNEL_EXTENT = np.array([0.55, 1.0, 0.8, 1.2, 0.9, 1.1])  # nucleus is channel 1
PLATE_ROWS, PLATE_COLS = 6, 8


class SyntheticParams(Params):
    experiments_per_cell_type: int = Field(4, ge=2, le=24)
    test_per_cell_type: int = Field(1, ge=1, description="unseen (test) experiments per "
                                    "cell type (the last ones)")
    val_per_cell_type: int = Field(0, ge=0, description="validation experiments per cell type")
    sirnas: int = Field(24, ge=4, description="treatment siRNAs (4 plate groups)")
    replicates: int = Field(3, ge=1, description="wells per siRNA per plate")
    positive_controls: int = Field(2, ge=0, description="positive-control siRNAs per plate")
    negative_wells: int = Field(4, ge=1, description="negative-control wells per plate")
    image_size: int = Field(16, ge=8, le=64)
    cells_per_image: float = Field(6.0, gt=0)
    effect_size: float = Field(0.6, ge=0, description="log-intensity size of a siRNA effect")
    shared_fraction: float = Field(0.6, ge=0, le=1,
                                   description="chance an effect is shared by cell types")
    pixel_noise: float = Field(0.05, ge=0, description="pixel noise / channel mean")
    batch_scale: float = Field(1.0, ge=0, description="multiplies every batch-effect size")
    oracle: Literal["off", "all", "train"] = Field(
        "off", description="off: batch effects everywhere; all: none (the oracle); train: "
        "none in the training experiments only (a control: the oracle for training only)")
    unseen_test: bool = Field(True, description="ablation: false puts the training "
                              "experiments' site-2 images in the test split (a leaky split)")
    twin: bool = Field(True, description="also keep the oracle twin for rxrx1/oracle")

    @model_validator(mode="after")
    def _sizes(self) -> SyntheticParams:
        if self.sirnas % 4:
            raise ValueError(f"sirnas must be a multiple of 4 (4 plate groups), got {self.sirnas}")
        if self.test_per_cell_type + self.val_per_cell_type >= self.experiments_per_cell_type:
            raise ValueError("experiments_per_cell_type must exceed test_per_cell_type + "
                             "val_per_cell_type (some experiments must remain for training)")
        wells = self.sirnas // 4 * self.replicates + self.positive_controls + self.negative_wells
        if wells > PLATE_ROWS * PLATE_COLS:
            raise ValueError(f"{wells} wells per plate exceed the {PLATE_ROWS}x{PLATE_COLS} plate")
        return self


def _effects(rng: np.random.Generator, p: SyntheticParams) -> np.ndarray:
    """(cell type, class, 7): log-intensity change of 6 channels and of the cell radius."""
    n_cls = p.sirnas + p.positive_controls + 1
    out = np.zeros((len(CELL_TYPES), n_cls, 7))

    def draw(size: float, k: int) -> np.ndarray:
        v = np.zeros(7)
        ch = rng.choice(6, k, replace=False)
        v[ch] = size * rng.uniform(0.6, 1.2, k) * rng.choice([-1, 1], k)
        if rng.random() < 0.5:
            v[6] = 0.4 * size * rng.uniform(0.6, 1.2) * rng.choice([-1, 1])
        return v

    for s in range(n_cls - 1):
        size, k = (p.effect_size, 2) if s < p.sirnas else (2 * p.effect_size, 3)
        shared = draw(size, k)
        for c in range(len(CELL_TYPES)):
            out[c, s] = shared if rng.random() < p.shared_fraction else draw(size, k)
    return out


def _render(rng: np.random.Generator, ct: int, cls: np.ndarray, effects: np.ndarray,
            p: SyntheticParams) -> np.ndarray:
    """Clean images (n, 6, S, S) of cell type ``ct`` for the classes ``cls``."""
    n, size, name = len(cls), p.image_size, CELL_TYPES[ct]
    scale = size / 16
    k_max = max(2, int(3 * p.cells_per_image))
    counts = np.minimum(1 + rng.poisson(p.cells_per_image - 1 if p.cells_per_image > 1 else 0.5,
                                        n), k_max)
    present = np.arange(k_max)[None, :] < counts[:, None]
    pos = rng.uniform(0, size, (n, k_max, 2))
    eff = effects[ct, cls]                                  # (n, 7)
    radius = CELL_RADIUS[name] * scale * np.exp(eff[:, 6:7] + 0.15 * rng.standard_normal(
        (n, k_max)))                                        # (n, k)
    mean = np.asarray(CHANNEL_MEAN[name]) / 10
    amp = mean[None, None, :] * np.exp(eff[:, None, :6] + 0.2 * rng.standard_normal(
        (n, k_max, 6)))                                     # (n, k, 6)
    grid = np.arange(size) + 0.5
    sigma2 = (radius[:, :, None] * CHANNEL_EXTENT[None, None, :]) ** 2     # (n, k, 6)
    # a Gaussian blob is separable: exp(-(dx^2 + dy^2) / 2s^2) = gx * gy
    gx = np.exp(-(grid[None, None, None, :] - pos[:, :, 0, None, None]) ** 2
                / (2 * sigma2[..., None]))                                # (n, k, 6, S)
    gy = np.exp(-(grid[None, None, None, :] - pos[:, :, 1, None, None]) ** 2
                / (2 * sigma2[..., None]))
    img = np.einsum("nkc,nkci,nkcj->ncij", amp * present[:, :, None], gx, gy)
    img += 0.1 * mean[None, :, None, None]
    img += p.pixel_noise * mean[None, :, None, None] * rng.standard_normal(img.shape)
    return img


def _batch_effects(rng: np.random.Generator, ct: int, clean: np.ndarray, plate: np.ndarray,
                   edge: np.ndarray, p: SyntheticParams) -> np.ndarray:
    """Apply one experiment's layered batch effects to its clean images."""
    b, size, name = p.batch_scale, p.image_size, CELL_TYPES[ct]
    mean = np.asarray(CHANNEL_MEAN[name]) / 10
    cv = b * np.asarray(CHANNEL_CV[name])
    s2 = np.log1p(cv ** 2)
    gain = np.exp(rng.normal(-s2 / 2, np.sqrt(s2)))                     # (6,)
    offset = 0.1 * b * mean * rng.standard_normal(6)
    s2p = np.log1p((0.1 * b) ** 2)
    plate_gain = np.exp(rng.normal(-s2p / 2, np.sqrt(s2p), (4, 6)))
    plate_offset = 0.03 * b * mean * rng.standard_normal((4, 6))
    edge_gain = 1 + b * rng.uniform(0.0, 0.3)
    vig = min(0.9, b * rng.uniform(0.1, 0.5))
    grid = (np.arange(size) + 0.5) / size - 0.5
    r2 = (grid[:, None] ** 2 + grid[None, :] ** 2) / 0.5
    vignette = 1 - vig * r2                                             # (S, S)
    jitter = 1 + 0.05 * b * rng.standard_normal(len(clean))
    noise = b * rng.uniform(0, 0.1) * mean
    pi = plate - 1
    x = clean * vignette * np.where(edge, edge_gain, 1.0)[:, None, None, None] \
        * jitter[:, None, None, None]
    x = plate_gain[pi][:, :, None, None] * x + plate_offset[pi][:, :, None, None]
    x = gain[None, :, None, None] * x + offset[None, :, None, None]
    x = x + noise[None, :, None, None] * rng.standard_normal(x.shape)
    return x


def _well_names(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Random distinct plate positions: well index (row * cols + col) and edge flag."""
    idx = rng.choice(PLATE_ROWS * PLATE_COLS, n, replace=False)
    r, c = idx // PLATE_COLS, idx % PLATE_COLS
    edge = (r == 0) | (r == PLATE_ROWS - 1) | (c == 0) | (c == PLATE_COLS - 1)
    return idx, edge


def well_label(index: int) -> str:
    """``B02``-style name of a well index on the synthetic plate (row letters from B)."""
    return f"{chr(ord('B') + index // PLATE_COLS)}{index % PLATE_COLS + 2:02d}"


def generate(p: SyntheticParams, rng: np.random.Generator) -> dict[str, Any]:
    """The whole screen as numpy arrays: ``clean`` and ``batch`` images plus metadata."""
    bio_rng, batch_rng, layout_rng = (np.random.default_rng(s) for s in rng.integers(2**63, size=3))
    effects = _effects(bio_rng, p)
    groups = layout_rng.permutation(p.sirnas).reshape(4, -1)
    neg = p.sirnas + p.positive_controls
    pos_cls = np.arange(p.sirnas, neg)
    rows: dict[str, list[Any]] = {k: [] for k in ("experiment", "plate", "well", "site",
                                                  "cell_type", "well_type", "y", "role")}
    clean, batch, names = [], [], []
    n_exp = p.experiments_per_cell_type
    for ct, ct_name in enumerate(CELL_TYPES):
        for j in range(n_exp):
            e = len(names)
            names.append(f"{ct_name}-{j + 1:02d}")
            role = ("test" if j >= n_exp - p.test_per_cell_type else
                    "val" if j >= n_exp - p.test_per_cell_type - p.val_per_cell_type else "train")
            shift = int(layout_rng.integers(4))
            cls, plate, well, edge, wtype = [], [], [], [], []
            for pl in range(1, 5):
                treat = np.repeat(groups[(pl - 1 + shift) % 4], p.replicates)
                c = np.concatenate([treat, pos_cls, np.full(p.negative_wells, neg)])
                w, ed = _well_names(layout_rng, len(c))
                t = np.concatenate([np.full(len(treat), TREATMENT),
                                    np.full(len(pos_cls), POSITIVE),
                                    np.full(p.negative_wells, NEGATIVE)])
                cls.append(c), plate.append(np.full(len(c), pl)), well.append(w)
                edge.append(ed), wtype.append(t)
            c_w = np.concatenate(cls)
            sites = [np.ones(len(c_w), int), np.full(len(c_w), 2)]
            per = {"cls": np.tile(c_w, 2), "plate": np.tile(np.concatenate(plate), 2),
                   "well": np.tile(np.concatenate(well), 2), "site": np.concatenate(sites),
                   "edge": np.tile(np.concatenate(edge), 2),
                   "wtype": np.tile(np.concatenate(wtype), 2)}
            img = _render(bio_rng, ct, per["cls"], effects, p)
            clean.append(img)
            batch.append(_batch_effects(batch_rng, ct, img, per["plate"], per["edge"], p))
            n = len(per["cls"])
            rows["experiment"] += [e] * n
            rows["plate"] += list(per["plate"])
            rows["well"] += list(per["well"])
            rows["site"] += list(per["site"])
            rows["cell_type"] += [ct] * n
            rows["well_type"] += list(per["wtype"])
            rows["y"] += list(per["cls"])
            rows["role"] += [role] * n
    return {"clean": np.clip(np.concatenate(clean), 0, None),
            "batch": np.clip(np.concatenate(batch), 0, None),
            "rows": {k: np.asarray(v) for k, v in rows.items()}, "experiments": names,
            "groups": groups, "num_classes": p.sirnas + p.positive_controls + 1}


def split_masks(rows: dict[str, np.ndarray], unseen_test: bool = True
                ) -> dict[str, np.ndarray]:
    """WILDS' official split: train = training experiments' site 1, id_test = their
    site 2, val/test = the validation/test experiments' both sites."""
    role, site = rows["role"], rows["site"]
    masks = {"train": (role == "train") & (site == 1),
             "test": role == "test" if unseen_test else (role == "train") & (site == 2),
             "id_test": (role == "train") & (site == 2)}
    if (role == "val").any():
        masks["val"] = role == "val"
    return masks


def to_screen(images: np.ndarray, gen: dict[str, Any], masks: dict[str, np.ndarray],
              name: str, meta: dict[str, Any] | None = None) -> ClassificationData:
    rows = gen["rows"]
    parts = {s: {"x": torch.as_tensor(images[m], dtype=torch.float32), "y": rows["y"][m],
                 **{k: rows[k][m] for k in ("experiment", "plate", "well", "site",
                                            "cell_type", "well_type")}}
             for s, m in masks.items()}
    return make_screen(parts, gen["num_classes"], name, gen["experiments"], meta)


class SyntheticScreen(Dataset):
    """A CPU-sized RxRx1-like screen: 4 cell types, plate groups, layered batch effects."""

    name = "rxrx1/synthetic"
    version = "1"
    Params = SyntheticParams

    def load(self, ctx: RunContext) -> ClassificationData:
        p: SyntheticParams = self.params  # type: ignore[assignment]
        gen = generate(p, ctx.rng)
        masks = split_masks(gen["rows"], p.unseen_test)
        if p.oracle == "all":
            images = gen["clean"]
        elif p.oracle == "train":
            train_exp = gen["rows"]["role"] == "train"
            images = np.where(train_exp[:, None, None, None], gen["clean"], gen["batch"])
        else:
            images = gen["batch"]
        design = {"experiments": len(gen["experiments"]), "plates": 4, "sites": 2,
                  "channels": 6, "image_size": p.image_size,
                  "plate_groups": gen["groups"].tolist(), "oracle": p.oracle}
        meta: dict[str, Any] = {"design": design}
        if p.twin:
            meta["oracle"] = to_screen(gen["clean"], gen, masks, "rxrx1/synthetic (oracle)",
                                       {"design": {**design, "oracle": "all"}})
        return to_screen(images, gen, masks, "rxrx1/synthetic", meta)
