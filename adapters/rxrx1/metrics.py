"""Metrics of ``rxrx1/benchmark`` outputs, one number per correction ``<n>``:

- ``unseen_acc.<n>`` top-1 on the unseen experiments, ``unseen_acc.<n>.<CELL>`` per cell
  type; ``id_acc.<n>`` on the in-distribution split (training experiments, site 2);
  ``drop.<n>`` = ``id_acc - unseen_acc``;
- ``gap_share.<n>`` = (unseen_acc.<n> - unseen_acc.none) / (unseen_acc.oracle -
  unseen_acc.none): the share of the no-correction-to-oracle gap the correction recovers;
- ``probe.<n>`` (``rxrx1/batch-probe``): how well a linear probe predicts the experiment
  from the (corrected) embeddings of the in-distribution split, within each cell type
  (3-fold cross-validated logistic regression, averaged over cell types; chance is one
  over the experiments per cell type); ``probe_drop.<n>`` = probe.none - probe.<n>.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from harness import CellResult, Metric, Params, RunContext
from harness.errors import HarnessError


def _outputs(result: CellResult) -> dict[str, Any]:
    out = result.outputs
    if "runs" not in out:
        raise HarnessError("rxrx1 metrics read rxrx1/benchmark outputs",
                           hint="use method rxrx1/benchmark")
    return out


class Accuracy(Metric):
    """Unseen-experiment, per-cell-type and in-distribution top-1; gap share recovered."""

    name = "rxrx1/accuracy"
    outputs = ("unseen_acc.*", "id_acc.*", "val_acc.*", "drop.*", "gap_share.*")

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        out = _outputs(result)
        m: dict[str, float] = {}
        for n, run in out["runs"].items():
            for split, key in (("test", "unseen_acc"), ("id_test", "id_acc"), ("val", "val_acc")):
                if split not in run["pred"]:
                    continue
                hit = (run["pred"][split] == out["targets"][split]).float()
                m[f"{key}.{n}"] = hit.mean().item()
                if split == "test":
                    ct = out["groups"]["test"]["cell_type"]
                    for i, name in enumerate(out["cell_types"]):
                        if (ct == i).any():
                            m[f"{key}.{n}.{name}"] = hit[ct == i].mean().item()
            if f"id_acc.{n}" in m:
                m[f"drop.{n}"] = m[f"id_acc.{n}"] - m[f"unseen_acc.{n}"]
        base, oracle = out["baseline"], out["oracle"]
        if oracle:
            gap = m[f"unseen_acc.{oracle}"] - m[f"unseen_acc.{base}"]
            for n in out["runs"]:
                m[f"gap_share.{n}"] = ((m[f"unseen_acc.{n}"] - m[f"unseen_acc.{base}"]) / gap
                                       if gap else float("nan"))
            m["gap"] = gap
        return m


def batch_probe(emb: np.ndarray, experiment: np.ndarray, cell_type: np.ndarray,
                seed: int, folds: int = 3) -> float:
    """Mean over cell types of the cross-validated accuracy of predicting the experiment."""
    from sklearn.linear_model import LogisticRegression  # imported on use: a cached re-run
    from sklearn.model_selection import StratifiedKFold, cross_val_score  # needs none of it
    from sklearn.preprocessing import StandardScaler
    scores = []
    for ct in np.unique(cell_type):
        rows = cell_type == ct
        y = experiment[rows]
        if len(np.unique(y)) < 2:
            continue
        x = StandardScaler().fit_transform(emb[rows])
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        clf = LogisticRegression(max_iter=300, C=1.0)
        scores.append(cross_val_score(clf, x, y, cv=cv).mean())
    return float(np.mean(scores)) if scores else float("nan")


class BatchProbe(Metric):
    """Linear-probe accuracy at predicting the experiment from embeddings (lower: better)."""

    name = "rxrx1/batch-probe"
    outputs = ("probe.*", "probe_drop.*")

    class Params(Params):
        split: str = Field("id_test", description="split whose embeddings are probed")
        folds: int = Field(3, ge=2)

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        out = _outputs(result)
        split = self.params.split
        g = out["groups"].get(split)
        if g is None:
            raise HarnessError(f"no split {split!r} to probe", hint="splits: " +
                               ", ".join(out["groups"]))
        seed = int(ctx.rng.integers(2**31))
        m: dict[str, float] = {}
        for n, run in out["runs"].items():
            emb = run["embeddings"].get(split)
            if emb is None:
                continue
            m[f"probe.{n}"] = batch_probe(emb.numpy(), g["experiment"].numpy(),
                                          g["cell_type"].numpy(), seed, self.params.folds)
        base = out["baseline"]
        for n in out["runs"]:
            if f"probe.{n}" in m and f"probe.{base}" in m:
                m[f"probe_drop.{n}"] = m[f"probe.{base}"] - m[f"probe.{n}"]
        return m


METRICS: list[type[Metric]] = [Accuracy, BatchProbe]
