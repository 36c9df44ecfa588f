"""An ill-conditioned quadratic, its iterate as a model, and a method that minimizes it with
any optimizer component and counts iterations to a relative loss tolerance exactly.

``f(theta) = 1/2 (theta - theta*)^T A (theta - theta*)`` with ``A = Q diag(lambda) Q^T``:
eigenvalues from ``lambda_max`` down to ``lambda_max / condition`` (log- or linearly
spaced), ``Q`` a random rotation (Haar, from the dataset's generator), ``theta*`` standard
normal and the start ``theta_0`` at distance ``start_distance`` from it in a random
direction. The minimum is 0, so the relative loss ``f(theta_t) / f(theta_0)`` is exact.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from harness import (
    Component,
    Dataset,
    HarnessError,
    Method,
    Model,
    Params,
    RunContext,
    component_field,
)

from .optim import FOP, effective_lr
from .spectrum import plot_spectra


@dataclass
class Quadratic:
    """The problem: Hessian ``a``, its eigen-decomposition, minimizer and start point."""

    a: torch.Tensor
    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    theta_star: torch.Tensor
    theta0: torch.Tensor
    name: str = "fop/quadratic"

    @property
    def dim(self) -> int:
        return int(self.a.shape[0])

    @property
    def condition(self) -> float:
        return float(self.eigenvalues.max() / self.eigenvalues.min())

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        e = theta - self.theta_star.to(theta.dtype)
        return 0.5 * e @ (self.a.to(theta.dtype) @ e)


class QuadraticData(Dataset):
    """Ill-conditioned quadratic 1/2 (x-x*)^T A (x-x*), A with a given condition number."""

    name = "fop/quadratic"

    class Params(Params):
        dim: int = Field(20, ge=1, le=2000)
        condition: float = Field(100.0, ge=1, description="lambda_max / lambda_min")
        spectrum: Literal["log", "linear"] = Field("log", description="eigenvalue spacing")
        lambda_max: float = Field(1.0, gt=0)
        rotate: bool = Field(True, description="random eigenbasis (False: axis-aligned)")
        start_distance: float = Field(1.0, gt=0, description="|theta_0 - theta*|")

    def load(self, ctx: RunContext) -> Quadratic:
        p = self.params
        rng = ctx.rng
        lo = p.lambda_max / p.condition
        lam = (np.geomspace(p.lambda_max, lo, p.dim) if p.spectrum == "log"
               else np.linspace(p.lambda_max, lo, p.dim))
        if p.rotate:
            q, r = np.linalg.qr(rng.normal(size=(p.dim, p.dim)))
            q = q * np.sign(np.diag(r))  # Haar-distributed rotation
        else:
            q = np.eye(p.dim)
        a = (q * lam) @ q.T
        a = 0.5 * (a + a.T)
        star = rng.normal(size=p.dim)
        direction = rng.normal(size=p.dim)
        theta0 = star + p.start_distance * direction / np.linalg.norm(direction)
        t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
        return Quadratic(t(a), t(lam), t(q), t(star), t(theta0))


class Iterate(torch.nn.Module):
    def __init__(self, theta0: torch.Tensor) -> None:
        super().__init__()
        self.theta = torch.nn.Parameter(theta0.clone())


class QuadraticIterate(Model):
    """The quadratic's parameter vector, starting at the dataset's theta_0."""

    name = "fop/quadratic-iterate"

    class Params(Params):
        dtype: Literal["float64", "float32"] = "float64"

    def build(self, ctx: RunContext, data: Any) -> torch.nn.Module:
        if not isinstance(data, Quadratic):
            raise HarnessError(f"fop/quadratic-iterate needs the fop/quadratic dataset, got "
                               f"{getattr(data, 'name', type(data).__name__)!r}",
                               hint="exclude this model for other datasets (cells.exclude)")
        return Iterate(data.theta0.to(getattr(torch, self.params.dtype)))


class Minimize(Method):
    """Run any optimizer component on fop/quadratic; iterations to a relative tolerance."""

    name = "fop/minimize"

    class Params(Params):
        optimizer: Component = component_field("optimizer", "torch/sgd", "any optimizer component")
        steps: int = Field(5000, ge=1, description="iteration budget")
        tol: float = Field(1e-6, gt=0, lt=1, description="relative loss f(theta_t)/f(theta_0)")
        stop_at_tol: bool = Field(False, description="stop when the tolerance is reached")
        divergence: float = Field(1e6, gt=1, description="relative loss counted as diverged")
        history_points: int = Field(200, ge=2, description="loss curve points kept")

    def run(self, ctx: RunContext, data: Quadratic, model: torch.nn.Module) -> dict[str, Any]:
        p = self.params
        if not isinstance(data, Quadratic) or not isinstance(model, Iterate):
            raise HarnessError("fop/minimize runs on the fop/quadratic dataset with the "
                               "fop/quadratic-iterate model")
        theta = model.theta
        model.train()
        opt = p.optimizer.build().build(ctx.derive("optimizer"), model)
        if isinstance(opt, FOP):
            opt.param_names = {id(theta): "theta"}
        with torch.no_grad():
            f0 = float(data.loss(theta))
        every = max(1, p.steps // p.history_points)
        history: list[list[float]] = [[0, 1.0]]
        hit: int | None = None
        diverged = False
        rel = 1.0
        t_step = t_all = 0.0
        done = 0
        with ctx.progress.task("minimize", p.steps) as tick:
            for t in range(1, p.steps + 1):
                start = time.perf_counter()
                opt.zero_grad()
                data.loss(theta).backward()
                s0 = time.perf_counter()
                opt.step()
                t_step += time.perf_counter() - s0
                t_all += time.perf_counter() - start
                done = t
                with torch.no_grad():
                    rel = float(data.loss(theta)) / f0
                if t % every == 0:
                    history.append([t, rel])
                if not math.isfinite(rel) or rel > p.divergence:
                    diverged = True
                    break
                if hit is None and rel <= p.tol:
                    hit = t
                    if p.stop_at_tol:
                        break
                tick()
        scalars: dict[str, float] = {
            "iterations": float(hit) if hit is not None else math.nan,
            "reached_tol": float(hit is not None), "diverged": float(diverged),
            "final_loss": rel if math.isfinite(rel) else math.inf, "steps_run": float(done),
            "step_ms": 1e3 * t_all / max(done, 1),
            "optimizer_step_ms": 1e3 * t_step / max(done, 1), "final_lr": effective_lr(opt),
        }
        out: dict[str, Any] = {"history": history, "scalars": scalars}
        if isinstance(opt, FOP) and opt.structure == "layerwise" and not diverged:
            scalars.update(self._spectrum(ctx, data, opt, out))
        return out

    @staticmethod
    def _spectrum(ctx: RunContext, data: Quadratic, opt: FOP, out: dict[str, Any]
                  ) -> dict[str, float]:
        """The learned P against the Newton preconditioner (eps A)^-1, and cond(PA)."""
        m = opt.state[next(iter(opt.param_groups[0]["params"]))]["M"].double()
        eig = torch.linalg.eigvalsh(m @ m.t())
        lr = opt.param_groups[0]["lr"]
        newton = sorted((1.0 / (lr * data.eigenvalues)).tolist())
        # P A = M M^T A has the eigenvalues of the symmetric M^T A M
        pa = torch.linalg.eigvalsh(m.t() @ data.a @ m)
        eff = float(pa.max() / pa.min()) if float(pa.min()) > 0 else math.inf
        out["spectrum"] = {"theta": eig.tolist(), "newton (eps A)^-1": newton}
        plot_spectra(ctx.artifact("preconditioner_spectrum.png"),
                     {"learned P": eig.tolist(), "(eps A)^-1": newton},
                     title=f"fop/quadratic d={data.dim}, condition {data.condition:g}: "
                           f"cond(PA)={eff:.3g}")
        along = curvature_profile(m @ m.t(), data)
        out["p_along_curvature"] = along
        plot_curvature(ctx.artifact("preconditioner_curvature.png"), along, lr,
                       title=f"fop/quadratic d={data.dim}, condition {data.condition:g}, "
                             f"eps {lr:g}: cond(PA) = {eff:.3g}")
        k = max(1, data.dim // 4)
        return {"p_eig_min": float(eig.min()), "p_eig_max": float(eig.max()),
                "effective_condition": eff, "condition": data.condition,
                "p_top_curvature": float(np.mean([r for _, r in along[:k]])),
                "p_low_curvature": float(np.mean([r for _, r in along[-k:]]))}


def curvature_profile(p: torch.Tensor, data: Quadratic) -> list[list[float]]:
    """``[lambda_i, q_i^T P q_i]`` for each Hessian eigenpair, largest curvature first: how
    much the preconditioner scales the step along each curvature direction."""
    q, lam = data.eigenvectors, data.eigenvalues
    rayleigh = torch.einsum("ij,jk,ki->i", q.t(), p.to(q.dtype), q)
    pairs = sorted(zip(lam.tolist(), rayleigh.tolist(), strict=True), reverse=True)
    return [[a, b] for a, b in pairs]


def plot_curvature(path: Any, along: list[list[float]], lr: float, title: str = "") -> None:
    """The learned P's gain along each Hessian eigenvector against its curvature, beside
    P = I (the base optimizer) and the Newton preconditioner (eps lambda)^-1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lam = [a for a, _ in along]
    fig, ax = plt.subplots(figsize=(5.6, 3.9))
    ax.plot(lam, [max(b, 1e-12) for _, b in along], "o-", markersize=4,
            label="learned P: q_i^T P q_i")
    ax.plot(lam, [1.0] * len(lam), "k:", label="P = I (plain SGD)")
    ax.plot(lam, [1.0 / (lr * a) for a in lam], "--", label="Newton (eps A)^-1")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Hessian eigenvalue lambda_i (curvature)")
    ax.set_ylabel("gain of P along the eigenvector")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


ADAPTERS = [QuadraticData, QuadraticIterate, Minimize]
