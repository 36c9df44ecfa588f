"""The pixel-pendulum models and training loop of Greydanus, Dzamba & Yosinski, "Hamiltonian
Neural Networks" (arXiv 1906.01563), after the official ``nn_models.MLPAutoencoder``,
``hnn.PixelHNN`` and ``experiment-pixels/train.py`` (greydanus/hamiltonian-nn).

- Autoencoder (``MLPAutoencoder``): encoder ``Linear(2*784, 200) -> relu``, then two
  residual blocks ``h + relu(Linear(200, 200) h)``, then ``Linear(200, latent)``; the decoder
  mirrors it (``Linear(latent, 200) -> relu``, two residual blocks, ``Linear(200, 2*784)``,
  no output nonlinearity). Every weight orthogonal; biases keep PyTorch's default. The
  official script builds it with ``nonlinearity='relu'``; latent size 2.
- Latent dynamics (``PixelHNN``): the official MLP on the 2-d latent (hidden 200, tanh),
  as an HNN (``hnn/pixel-hnn``: symplectic gradient of the learned scalar) or as the
  baseline (``hnn/pixel-mlp``: the MLP outputs the latent derivative).
- Loss (``pixelhnn_loss``), per example and then averaged over the batch:
  ``ae = mean_i (x - decode(encode(x)))_i^2``;
  ``hnn = mean_i (z_next - (z + f(z)))_i^2`` with ``z = encode(x_t)``,
  ``z_next = encode(x_{t+1})`` (one explicit Euler step of one frame; gradients flow
  through both encodings); ``cc = (z_1 - (z_next_0 - z_0))^2``, the "canonical coordinate"
  term that makes the second latent the first one's per-frame change;
  ``loss = ae + cc + 0.1 * hnn``.
- Training: Adam, lr 1e-3, weight decay 1e-5, minibatches ``randperm(n)[:200]``,
  ``range(total_steps + 1)`` updates (official ``total_steps = 10000``), input noise 0.

Deviations: randomness from the run context; the official script evaluates the test loss
on a random minibatch every ``print_every`` steps only to print it (not done here); the
spec runs fewer steps and episodes than the official defaults to fit a few CPU minutes
(stated in the spec and docs). Ablations: ``field_type`` (``conservative``, ``zero``) and
``untrained`` as for ``hnn/hnn``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import Field
from torch import nn

from harness import Component, HarnessError, Method, Model, Params, RunContext, component_field

from .models import MLP, DynamicsModel, FieldType, Nonlinearity
from .pixels import PixelData


class MLPAutoencoder(nn.Module):
    """The official autoencoder: residual MLP encoder and decoder, orthogonal weights."""

    def __init__(self, input_dim: int, hidden: int, latent: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        dims = [(input_dim, hidden), (hidden, hidden), (hidden, hidden), (hidden, latent),
                (latent, hidden), (hidden, hidden), (hidden, hidden), (hidden, input_dim)]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in dims)
        with torch.no_grad():
            for layer in self.layers:
                bound = 1 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
                nn.init.orthogonal_(layer.weight, generator=generator)

    def _half(self, x: torch.Tensor, first: int) -> torch.Tensor:
        lay = self.layers
        h = torch.relu(lay[first](x))
        h = h + torch.relu(lay[first + 1](h))
        h = h + torch.relu(lay[first + 2](h))
        return lay[first + 3](h)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._half(x, 0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self._half(z, 4)


class PixelModel(nn.Module):
    """Autoencoder plus latent dynamics (the official ``PixelHNN``)."""

    def __init__(self, autoencoder: MLPAutoencoder, dynamics: DynamicsModel) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.dynamics = dynamics

    @property
    def frozen(self) -> bool:
        return self.dynamics.frozen

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(z)

    def time_derivative(self, z: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
        return self.dynamics.time_derivative(z, create_graph)


def pixel_losses(model: PixelModel, x: torch.Tensor, x_next: torch.Tensor
                 ) -> dict[str, torch.Tensor]:
    """The official loss terms per example: ``ae``, ``cc``, ``hnn`` and their sum ``loss``
    (``ae + cc + 0.1 hnn``); ``frozen`` is the ``hnn`` term of a zero field (reference)."""
    z, z_next = model.encode(x), model.encode(x_next)
    ae = ((x - model.decode(z)) ** 2).mean(1)
    hnn = ((z_next - (z + model.time_derivative(z))) ** 2).mean(1)
    w, dw = z.split(1, 1)
    w_next = z_next[:, :1]
    cc = ((dw - (w_next - w)) ** 2).mean(1)
    return {"loss": ae + cc + 1e-1 * hnn, "ae": ae, "cc": cc, "hnn": hnn,
            "frozen": ((z_next - z) ** 2).mean(1)}


class _PixelParams(Params):
    hidden: int = Field(200, ge=1, description="hidden width (official hidden_dim)")
    latent: int = Field(2, ge=2, description="latent size (official latent_dim); even")
    nonlinearity: Nonlinearity = "tanh"


def _build(p: _PixelParams, ctx: RunContext, data: PixelData, baseline: bool,
           field_type: str = "solenoidal") -> PixelModel:
    if not isinstance(data, PixelData):
        raise HarnessError("the pixel models need the hnn/pixel-pendulum dataset",
                           hint="use hnn/pixel-mlp and hnn/pixel-hnn with hnn/pixel-pendulum")
    if p.latent % 2:
        raise HarnessError(f"latent: {p.latent} is odd", hint="a latent of (q, p) pairs: "
                           "use an even size (the official 2)")
    gen = ctx.generator
    ae = MLPAutoencoder(2 * data.frames.shape[-1], p.hidden, p.latent, gen)
    net = MLP(p.latent, p.hidden, p.latent if baseline else 2, p.nonlinearity, gen)
    if field_type == "zero":
        with torch.no_grad():
            net.linear3.weight.zero_()
    return PixelModel(ae, DynamicsModel(net, p.latent, baseline, field_type))


class PixelBaseline(Model):
    """Baseline for pixels: the autoencoder with an MLP predicting the latent derivative."""

    name = "hnn/pixel-mlp"
    Params = _PixelParams

    def build(self, ctx: RunContext, data: PixelData) -> PixelModel:
        return _build(self.params, ctx, data, baseline=True)  # type: ignore[arg-type]


class PixelHNN(Model):
    """The pixel HNN: the autoencoder with an HNN in its latent space."""

    name = "hnn/pixel-hnn"

    class Params(_PixelParams):
        field_type: FieldType = Field("solenoidal", description="as hnn/hnn: solenoidal (the "
                                      "HNN); ablations: conservative (plain gradient), zero "
                                      "(identically zero latent field); both")
        untrained: bool = Field(False, description="ablation: hnn/pixel-train takes no step")

    def build(self, ctx: RunContext, data: PixelData) -> PixelModel:
        p: PixelHNN.Params = self.params  # type: ignore[assignment]
        model = _build(p, ctx, data, baseline=False, field_type=p.field_type)
        model.dynamics.frozen = p.untrained
        return model


class PixelTrain(Method):
    """The official pixel-pendulum loop: Adam on ae + cc + 0.1 hnn, minibatches of 200."""

    name = "hnn/pixel-train"

    class Params(Params):
        optimizer: Component = component_field(
            "optimizer", {"use": "torch/adam", "lr": 1e-3, "weight_decay": 1e-5},
            "optimizer component; the official one is Adam, lr 1e-3, weight decay 1e-5")
        total_steps: int = Field(10000, ge=0, description="the loop runs total_steps + 1 "
                                 "updates (official range(total_steps + 1), 10000)")
        batch_size: int = Field(200, ge=1)
        log_every: int = Field(500, ge=1)

    def run(self, ctx: RunContext, data: PixelData, model: PixelModel) -> dict[str, Any]:
        p: PixelTrain.Params = self.params  # type: ignore[assignment]
        optim = p.optimizer.build().build(ctx.derive("optimizer"), model)
        gen = ctx.derive("batches").generator
        index = data.pair_index(test=False)
        taken = [0]
        hook = optim.register_step_post_hook(lambda *_: taken.__setitem__(0, taken[0] + 1))
        steps = 0 if model.frozen else p.total_steps + 1
        history: list[dict[str, float]] = []
        with ctx.progress.task("train", steps) as tick:
            for step in range(steps):
                idx = index[torch.randperm(len(index), generator=gen)[: p.batch_size]]
                loss = pixel_losses(model, *data.pairs(idx))["loss"].mean()
                loss.backward()
                optim.step()
                optim.zero_grad()
                if step % p.log_every == 0 or step == p.total_steps:
                    history.append({"step": step, "train_loss": loss.item()})
                tick(1)
        hook.remove()
        return {"model": model, "history": history, "scalars": {"updates": taken[0]}}


PIXEL_ADAPTERS: list[type[Any]] = [PixelBaseline, PixelHNN, PixelTrain]
