"""``hnn/pixel-rollout``: the pixel pendulum's evaluation (Greydanus, Dzamba & Yosinski,
"Hamiltonian Neural Networks", arXiv 1906.01563), after the official ``analyze-pixels``
notebook: encode the first observation (a pair of frames) of a held-out episode,
integrate the latent field with ``solve_ivp`` (RK45), decode every latent state back to
a pair of frames, and compare with the true frames.

Numbers (each cell):

- ``test_loss`` / ``train_loss``: the official loss ``ae + cc + 0.1 hnn`` on the whole
  split (the official "Final train/test loss"), and its terms ``test_ae``, ``test_cc``,
  ``test_hnn``; ``test_frozen`` is the ``hnn`` term of a field that predicts no change
  (``mean (z_next - z)^2``), the reference the latent dynamics must beat.
- ``energy_mse``: the pendulum's energy ``omega^2 / 2 + 15 (1 - cos phi)`` (gym's
  pendulum, per unit inertia) read off the frames: ``phi`` from the intensity centroid of
  a frame seen from the pivot, ``omega`` from the angle change within the pair (``/ dt``,
  dt = 0.05 s); mean over episodes and times of ``(E(true frames) - E(decoded frames))^2``.
  The same reader measures both sides, so its pixel error is common to them.
  The official README reports a pixel-pendulum energy MSE (baseline 9.27e-3, HNN 1.53e-4)
  without the notebook code that computes it being available here, so this is our own
  definition of "keeps the pendulum's energy", stated here and in ``docs/hnn.md``.
- ``energy_drift``: mean ``|E(t) - E(0)|`` of the decoded rollout's energy.
- ``frame_mse``: mean squared error of the decoded first frames against the true ones.

Plots: ``rollout_frames.png`` (true frames over predicted ones at regular times) and
``pixel_rollout.npz``; the run-finished hook draws ``compare_rollout_frames.png``
(truth, baseline, HNN) for cells that share a dataset and seed.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field
from scipy.integrate import solve_ivp

from harness import CellResult, HarnessError, Metric, Params, RunContext

from .pixel_models import PixelModel, pixel_losses
from .pixels import DT, PixelData, pendulum_energy, read_angle


def frame_energy(pairs: np.ndarray, data: PixelData) -> np.ndarray:
    """Energy read off pairs of frames ``(..., 2 * side^2)``."""
    half = pairs.shape[-1] // 2
    flat = pairs.reshape(-1, pairs.shape[-1])
    a0 = read_angle(flat[:, :half], data.geometry)
    a1 = read_angle(flat[:, half:], data.geometry)
    return pendulum_energy(a0, (a1 - a0) / DT).reshape(pairs.shape[:-1])


def latent_rollout(model: PixelModel, x0: torch.Tensor, steps: int, rtol: float
                   ) -> np.ndarray:
    """Decoded pairs ``(k, steps, 2 * side^2)`` from the first pairs ``x0`` ``(k, ...)``."""
    with torch.no_grad():
        z0 = model.encode(x0).double().numpy()
    k, dim = z0.shape

    def fun(t: float, y: np.ndarray) -> np.ndarray:
        z = torch.tensor(y, dtype=torch.float32).view(k, dim)
        return model.time_derivative(z, create_graph=False).numpy().reshape(-1).astype(
            np.float64)

    t_eval = np.arange(steps, dtype=np.float64)  # time unit: one frame
    sol = solve_ivp(fun, (0.0, float(steps - 1)), z0.reshape(-1), t_eval=t_eval,
                    rtol=rtol / np.sqrt(k), atol=1e-6 / np.sqrt(k))
    if not sol.success or sol.y.shape[1] != steps:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    z = torch.tensor(sol.y.T.reshape(steps, k, dim).transpose(1, 0, 2), dtype=torch.float32)
    with torch.no_grad():
        return model.decode(z.reshape(-1, dim)).numpy().reshape(k, steps, -1)


class PixelRollout(Metric):
    """Official losses, and energy and frame error of decoded latent rollouts."""

    name = "hnn/pixel-rollout"
    outputs = ("train_*", "test_*", "energy_mse", "energy_drift", "frame_mse")

    class Params(Params):
        steps: int | None = Field(None, ge=2, description="rollout length in frames; "
                                  "default: the evaluation episodes' length - 1")
        rtol: float = Field(1e-6, gt=0, description="solve_ivp rtol (divided by sqrt(k))")
        plots: bool = True
        plot_every: int = Field(10, ge=1, description="frames between figure columns")
        plot_columns: int = Field(12, ge=2)

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        p: PixelRollout.Params = self.params  # type: ignore[assignment]
        data, model = result.data, result.outputs.get("model", result.model)
        if not isinstance(data, PixelData) or not isinstance(model, PixelModel):
            raise HarnessError(f"{self.name} needs hnn/pixel-pendulum and a pixel model",
                               hint="use it with hnn/pixel-mlp or hnn/pixel-hnn")
        model.eval()
        out: dict[str, float] = {}
        for split in ("train", "test"):
            terms: dict[str, list[torch.Tensor]] = {}
            index = data.pair_index(test=split == "test")
            for chunk in index.split(2000):
                for key, val in pixel_losses(model, *data.pairs(chunk)).items():
                    terms.setdefault(key, []).append(val.detach())
            for key, vals in terms.items():
                name = f"{split}_loss" if key == "loss" else f"{split}_{key}"
                out[name] = float(torch.cat(vals).mean())
        frames = data.eval_frames
        steps = p.steps or frames.shape[1] - 1
        true = torch.cat([frames[:, :steps], frames[:, 1:steps + 1]], 2).numpy()
        pred = latent_rollout(model, torch.from_numpy(true[:, 0]), steps, p.rtol)
        e_true, e_pred = frame_energy(true, data), frame_energy(pred, data)
        half = true.shape[-1] // 2
        out.update({
            "energy_mse": float(np.mean((e_true - e_pred) ** 2)),
            "energy_drift": float(np.mean(np.abs(e_pred - e_pred[:, :1]))),
            "frame_mse": float(np.mean((true[..., :half] - pred[..., :half]) ** 2)),
        })
        if p.plots:
            from .pixel_plots import save_frames
            save_frames(ctx, data, true, pred, e_true, e_pred, ctx.label or "model",
                        "baseline" if model.dynamics.baseline else
                        f"hnn:{model.dynamics.field_type}", p.plot_every, p.plot_columns)
        return out

