"""Corrections at evaluation time and the oracle.

- ``rxrx1/adabn`` (Li et al. 2016, "Revisiting batch normalization for practical domain
  adaptation"): the trained network's batch-norm statistics are re-estimated on each
  experiment's images (a cumulative average over the experiment, train-mode forward
  passes without gradients) before that experiment is evaluated. Transductive. By
  default training also normalizes per experiment (each minibatch's experiments are
  forwarded separately, domain-specific batch statistics), so that training and test
  see the same kind of statistics; ``train_per_experiment: false`` is plain AdaBN.
- ``rxrx1/tvn`` (Ando et al. 2017, "Improving phenotypic measurements in high-content
  imaging screens"): on the embeddings, center and scale by the negative-control
  embeddings of each experiment, whiten with a PCA fitted on all control embeddings, and
  align each experiment's control covariance to the pooled one (CORAL, Sun et al. 2016,
  with lambda = 1 regularization); a linear head is then refitted on the corrected
  training embeddings. Transductive.
- ``rxrx1/oracle``: trains and evaluates on the same screen without batch effects (the
  twin the synthetic generator keeps); ``train_only: true`` is the control "oracle for
  training only": the training experiments are clean, the unseen ones are not.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field

from harness import Params, RunContext
from harness.errors import HarnessError

from .screen import NEGATIVE, all_inputs, groups_of, split_names, split_xy, with_inputs
from .standardize import ScreenCorrection, Statistics, derangement


def _bn_layers(model: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


class AdaBNParams(Params):
    statistics: Statistics = Field("batch", description="batch: each experiment's own; "
                                   "ablations: pooled (all evaluated images), shuffled "
                                   "(another experiment's)")
    chunk: int = Field(512, ge=1, description="images per statistics pass")
    train_per_experiment: bool = Field(True, description="in training, forward each "
                                       "minibatch's experiments separately so that batch-norm "
                                       "statistics are per experiment there too (false: "
                                       "plain training, statistics replaced at test only)")


class AdaBN(ScreenCorrection):
    """Batch-norm statistics re-estimated on each experiment before evaluating it."""

    name = "rxrx1/adabn"
    Params = AdaBNParams
    transductive = True

    def prepare(self, ctx: RunContext, data: Any) -> Any:
        self.data, self.rng = data, ctx.derive("adabn").rng
        return data

    def train_loss(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                   batch: torch.Tensor) -> torch.Tensor:
        if not self.params.train_per_experiment:
            return super().train_loss(model, x, y, batch)
        exp = groups_of(self.data, "train")["experiment"][batch]
        losses = [F.cross_entropy(model(x[exp == b]), y[exp == b], reduction="sum")
                  for b in sorted(set(exp.tolist()))]
        return torch.stack(losses).sum() / len(y)

    @torch.no_grad()
    def _per_experiment(self, model: torch.nn.Module, x: torch.Tensor, split: str,
                        fn: Any) -> torch.Tensor:
        layers = _bn_layers(model)
        if not layers:
            raise HarnessError("rxrx1/adabn needs a model with batch norm",
                               hint="use rxrx1/cnn with norm: batch")
        saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(),
                  m.momentum) for m in layers]
        exp = groups_of(self.data, split)["experiment"]
        batches = sorted(set(exp.tolist()))
        source = {b: exp == b for b in batches}
        if self.params.statistics == "pooled":
            source = {b: torch.ones_like(exp, dtype=torch.bool) for b in batches}
        elif self.params.statistics == "shuffled" and len(batches) > 1:
            move = derangement(batches, self.rng)
            source = {b: exp == move[b] for b in batches}
        was = model.training
        out: torch.Tensor | None = None
        for b in batches:
            for m in layers:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the experiment
            model.train()
            xs = x[source[b]]
            for i in range(0, len(xs), self.params.chunk):
                model(xs[i:i + self.params.chunk])
            model.eval()
            rows = exp == b
            y = fn(x[rows])
            if out is None:
                out = torch.empty((len(x), *y.shape[1:]), dtype=y.dtype)
            out[rows] = y
        for m, (mean, var, count, mom) in zip(layers, saved, strict=True):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)
            m.momentum = mom
        model.train(was)
        assert out is not None
        return out

    def predict(self, model: torch.nn.Module, x: torch.Tensor, split: str,
                chunk: int = 4096) -> torch.Tensor:
        return self._per_experiment(model, x, split, model)

    def embed(self, model: torch.nn.Module, x: torch.Tensor, split: str,
              chunk: int = 2048) -> torch.Tensor:
        return self._per_experiment(model, x, split, model.embed)


class TVNParams(Params):
    center_scale: bool = Field(True, description="center/scale on each experiment's controls")
    whiten: bool = Field(True, description="PCA whitening fitted on control embeddings")
    coral: bool = Field(True, description="align each experiment's control covariance")
    coral_lambda: float = Field(1.0, ge=0, description="CORAL's regularizer (identity weight)")
    scale_floor: float = Field(0.1, ge=0, description="floor of a feature's control std, as "
                               "a fraction of the mean control std")
    shrinkage: float = Field(0.1, ge=0, description="whitening: covariance + shrinkage x "
                             "mean variance x identity")
    head_steps: int = Field(200, ge=1, description="L-BFGS iterations of the refitted head")
    head_weight_decay: float = Field(1e-2, ge=0)


def _sqrtm(c: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    w, v = torch.linalg.eigh(c)
    w = w.clamp_min(1e-8)
    return (v * (w ** (-0.5 if inverse else 0.5))) @ v.T


class TVN(ScreenCorrection):
    """Typical variation normalization on embeddings: control centering, PCA whitening,
    CORAL per experiment; then a refitted linear head."""

    name = "rxrx1/tvn"
    version = "2"  # control scaling fixed: cells from version 1 are re-run
    Params = TVNParams
    transductive = True

    def finish(self, ctx: RunContext, model: torch.nn.Module, data: Any) -> None:
        p = self.params
        emb = {s: super(TVN, self).embed(model, split_xy(data, s)[0], s).double()
               for s in split_names(data)}
        exp = torch.cat([groups_of(data, s)["experiment"] for s in emb])
        ctrl = torch.cat([groups_of(data, s)["well_type"] == NEGATIVE for s in emb])
        e_all = torch.cat(list(emb.values()))
        self.shift: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for b in sorted(set(exp.tolist())):
            c = e_all[(exp == b) & ctrl]
            if len(c) < 2:
                raise HarnessError(f"rxrx1/tvn: experiment {b} has {len(c)} control images",
                                   hint="TVN needs negative controls in every experiment")
            # a feature nearly constant among controls must not be blown up: floor the
            # scale at `scale_floor` times the mean control std of the experiment
            sd = c.std(0)
            self.shift[b] = ((c.mean(0), sd.clamp_min(p.scale_floor * sd.mean() + 1e-8))
                             if p.center_scale else
                             (torch.zeros(c.shape[1], dtype=c.dtype),
                              torch.ones(c.shape[1], dtype=c.dtype)))
        z = self._center(e_all, exp)
        zc = z[ctrl]
        self.mu = zc.mean(0)
        eye = torch.eye(z.shape[1], dtype=z.dtype)
        if p.whiten:
            cov = torch.cov(zc.T)
            cov = cov + p.shrinkage * cov.diagonal().mean() * eye
            w, v = torch.linalg.eigh(cov)
            self.w = v / w.clamp_min(1e-8).sqrt()
        else:
            self.w = eye
        z = (z - self.mu) @ self.w
        self.align: dict[int, torch.Tensor] = {}
        target = torch.cov(z[ctrl].T) + p.coral_lambda * eye
        for b in self.shift:
            cb = torch.cov(z[(exp == b) & ctrl].T) + p.coral_lambda * eye
            self.align[b] = _sqrtm(cb, inverse=True) @ _sqrtm(target) if p.coral else eye
        # refit a linear head on the corrected training embeddings
        ztr = self.transform(emb["train"], "train").float()
        head = torch.nn.Linear(ztr.shape[1], data.num_classes)
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
        opt = torch.optim.LBFGS(head.parameters(), max_iter=p.head_steps,
                                line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(head(ztr), data.y_train) + p.head_weight_decay * (
                head.weight ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.head = head

    def _center(self, e: torch.Tensor, exp: torch.Tensor) -> torch.Tensor:
        mean = torch.stack([self.shift[b][0] for b in exp.tolist()])
        std = torch.stack([self.shift[b][1] for b in exp.tolist()])
        return (e - mean) / std

    def transform(self, e: torch.Tensor, split: str) -> torch.Tensor:
        exp = groups_of(self.data, split)["experiment"]
        z = (self._center(e.double(), exp) - self.mu) @ self.w
        out = torch.empty_like(z)
        for b in sorted(set(exp.tolist())):
            rows = exp == b
            out[rows] = z[rows] @ self.align[b]
        return out

    def embed(self, model: torch.nn.Module, x: torch.Tensor, split: str,
              chunk: int = 2048) -> torch.Tensor:
        return self.transform(super().embed(model, x, split, chunk), split).float()

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, x: torch.Tensor, split: str,
                chunk: int = 4096) -> torch.Tensor:
        return self.head(self.embed(model, x, split))


class OracleParams(Params):
    train_only: bool = Field(False, description="ablation (control): clean training "
                             "experiments, batch effects left in the unseen ones")


class Oracle(ScreenCorrection):
    """The perfect correction: the same screen without batch effects (synthetic twin)."""

    name = "rxrx1/oracle"
    Params = OracleParams

    def prepare(self, ctx: RunContext, data: Any) -> Any:
        twin = data.meta.get("oracle")
        if twin is None:
            raise HarnessError(f"rxrx1/oracle: dataset {data.name!r} has no batch-free twin",
                               hint="the oracle exists for rxrx1/synthetic (twin: true) "
                               "only; leave it out on real data")
        if self.params.train_only:
            clean, dirty = all_inputs(twin), all_inputs(data)
            xs = {s: (clean[s] if s in ("train", "id_test") else dirty[s]) for s in clean}
            twin = with_inputs(twin, xs)
        self.data = twin
        return twin


ADAPTIVE: list[type[ScreenCorrection]] = [AdaBN, TVN, Oracle]
