"""``hnn/train``: the training loop of Greydanus, Dzamba & Yosinski, "Hamiltonian Neural
Networks" (arXiv 1906.01563), as the official ``experiment-*/train.py`` scripts run it.

Loss: the L2 loss ``mean((dx/dt - f(x))^2)`` between the true time derivatives and the
model's field ``f`` (for an HNN, the symplectic gradient of its learned H, differentiated
through). Optimizer: Adam, learning rate 1e-3, weight decay 1e-4 (the spring and pendulum
scripts; the two-body script uses weight decay 0). Steps: the official loop runs
``range(total_steps + 1)``, i.e. ``total_steps + 1`` updates with ``total_steps = 2000``;
this loop does the same. Batches: the spring and pendulum scripts use the full training
set every step (``batch_size: null`` here); the two-body script draws
``randperm(n)[:200]`` each step (``batch_size: 200``).

``updates`` counts the optimizer steps actually taken (the optimizer's step hook), so it
is 0 for a model built with the ``untrained`` ablation (``hnn/hnn``'s ``untrained: true``,
one of the spec's controls), which the loop does not train.

Deviations: the official scripts evaluate the test loss after every step only to log it
(it does not affect training); here it is logged every ``log_every`` steps. The two-body
script's ``input_noise`` option (default 0, noise added to the *predicted* derivative) is
not provided. Batch indices come from the run context's torch generator.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from harness import Component, Method, Params, RunContext, component_field

from .datasets import DynamicsData
from .models import DynamicsModel


def l2_loss(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The official ``L2_loss``: the mean of squared differences."""
    return (u - v).pow(2).mean()


def derivative_loss(model: DynamicsModel, x: torch.Tensor, dx: torch.Tensor
                    ) -> tuple[float, float]:
    """Mean squared error of the field on ``x`` and its standard error (official print)."""
    dist = (dx - model.time_derivative(x, create_graph=False)) ** 2
    return dist.mean().item(), dist.std().item() / float(dist.shape[0]) ** 0.5


class TrainParams(Params):
    optimizer: Component = component_field(
        "optimizer", {"use": "torch/adam", "lr": 1e-3, "weight_decay": 1e-4},
        "optimizer component; the official one is Adam, lr 1e-3, weight decay 1e-4")
    total_steps: int = Field(2000, ge=0, description="the loop runs total_steps + 1 updates, "
                             "as the official range(total_steps + 1)")
    batch_size: int | None = Field(None, ge=1, description="null: full batch (spring, "
                                   "pendulum); the two-body script uses 200")
    log_every: int = Field(200, ge=1, description="log train/test loss every N steps")


class Train(Method):
    """Fit a model's field to true time derivatives with the official loop (Adam, L2)."""

    name = "hnn/train"
    Params = TrainParams

    def run(self, ctx: RunContext, data: DynamicsData, model: DynamicsModel
            ) -> dict[str, Any]:
        p: TrainParams = self.params  # type: ignore[assignment]
        model = model.to(ctx.device)
        x = data.x_train.to(ctx.device).detach().clone().requires_grad_(True)  # data is shared
        dx = data.dx_train.to(ctx.device)
        x_te, dx_te = data.x_test.to(ctx.device), data.dx_test.to(ctx.device)
        optim = p.optimizer.build().build(ctx.derive("optimizer"), model)
        gen = ctx.derive("batches").generator
        n = x.shape[0]
        history: list[dict[str, float]] = []
        loss_value = float("nan")
        taken = [0]  # optimizer steps actually taken, counted by the optimizer's own hook
        hook = optim.register_step_post_hook(lambda *_: taken.__setitem__(0, taken[0] + 1))
        steps = 0 if model.frozen else p.total_steps + 1  # frozen: the `untrained` ablation
        with ctx.progress.task("train", steps) as tick:
            for step in range(steps):
                if p.batch_size is None:
                    xb, dxb = x, dx
                else:
                    idx = torch.randperm(n, generator=gen)[: p.batch_size]
                    xb, dxb = x[idx], dx[idx]
                loss = l2_loss(dxb, model.time_derivative(xb))
                loss.backward()
                optim.step()
                optim.zero_grad()
                loss_value = loss.item()
                if step % p.log_every == 0 or step == p.total_steps:
                    test_loss, _ = derivative_loss(model, x_te, dx_te)
                    history.append({"step": step, "train_loss": loss_value,
                                    "test_loss": test_loss})
                tick(1)
        hook.remove()
        if not history:
            history.append({"step": 0, "train_loss": derivative_loss(model, x, dx)[0],
                            "test_loss": derivative_loss(model, x_te, dx_te)[0]})
        return {"model": model, "history": history,
                "scalars": {"final_batch_loss": loss_value, "updates": taken[0]}}
