"""HNN pixel pendulum (arXiv 1906.01563, official experiment-pixels): the physics against
gymnasium's own pendulum, the renderer and the angle reader, the official pair offsets and
loss terms, and the latent rollout metric at a tiny size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from harness_adapters.generic.optimizers import Adam
from harness_adapters.hnn import pixel_plots
from harness_adapters.hnn.pixel_metrics import PixelRollout, frame_energy
from harness_adapters.hnn.pixel_models import (
    PixelBaseline,
    PixelHNN,
    PixelTrain,
    pixel_losses,
)
from harness_adapters.hnn.pixels import (
    Geometry,
    PixelPendulum,
    gym_step,
    pendulum_energy,
    read_angle,
    render_frames,
    simulate,
)

from harness import RunContext
from harness.adapter import CellResult, Component


def test_physics_is_gymnasiums_pendulum_bit_for_bit() -> None:
    pendulum = pytest.importorskip("gymnasium.envs.classic_control.pendulum")
    env = pendulum.PendulumEnv()
    env.reset(seed=0)
    th, thdot = np.array([np.pi + 0.4]), np.array([-0.7])
    env.state = np.array([th[0], thdot[0]])
    for _ in range(60):
        env.step(np.array([0.0], dtype=np.float32))
        th, thdot = gym_step(th, thdot)
    assert env.state[0] == th[0] and env.state[1] == thdot[0]
    # angle from hanging, and the energy its semi-implicit Euler keeps bounded
    path = simulate(np.array([0.4]), np.array([-0.7]), 400)[0]
    assert path[0, 0] == pytest.approx(0.4) and np.abs(path[:, 0]).max() < 0.6
    e = pendulum_energy(path[:, 0], path[:, 1])
    assert e.std() / e.mean() < 0.1 and abs(e[-100:].mean() / e[:100].mean() - 1) < 0.02


def test_renderer_draws_the_official_crop_and_the_reader_inverts_it() -> None:
    phi = np.linspace(-0.55, 0.55, 23)
    frames = render_frames(phi)
    assert frames.shape == (23, 784) and frames.dtype == np.float32
    assert frames.max() == pytest.approx((204 - 77) / 255, abs=1e-6) and frames.min() == 0
    img = frames[11].reshape(28, 28)  # hanging: a vertical rod below the pivot
    r0, c0 = Geometry().pivot
    assert img[: int(r0) - 2].sum() == 0 and img[int(r0) + 3, 13:15].min() > 0.4
    assert np.allclose(img, img[:, ::-1], atol=1e-6)  # symmetric about the centre column
    assert np.abs(read_angle(frames) - phi).max() < 0.01
    assert np.allclose(render_frames(-phi).reshape(23, 28, 28), frames.reshape(23, 28, 28)[
        :, :, ::-1], atol=1e-6)  # mirrored angle, mirrored frame


def test_pairs_follow_the_official_offsets_and_split() -> None:
    data = PixelPendulum(PixelPendulum.Params(trials=10, eval_rollouts=2, eval_steps=20)
                         ).load(RunContext(seed=0))
    assert data.frames.shape == (10, 103, 784) and data.test_episodes == 2
    train, test = data.pair_index(False), data.pair_index(True)
    assert len(train) == 8 * 100 and len(test) == 2 * 100  # 100 pairs per episode
    x, x_next = data.pairs(train[:5])
    assert x.shape == (5, 1568)
    assert torch.equal(x[:, 784:], x_next[:, :784])  # the next pair shifts by one frame
    starts = np.abs(data.states[:, 0, 0])
    assert starts.max() < np.pi / 6 and np.abs(data.states[:, 0, 1]).max() <= 1
    # truth read off the frames: the reader's energy follows the simulated energy
    frames = data.eval_frames
    pairs = torch.cat([frames[:, :-1], frames[:, 1:]], 2).numpy()
    e_read = frame_energy(pairs, data)
    phi, omega = data.eval_states[:, 1:, 0], data.eval_states[:, 1:, 1]
    e_true = pendulum_energy(data.eval_states[:, :-1, 0], omega)
    assert np.corrcoef(e_read.ravel(), e_true.ravel())[0, 1] > 0.8
    assert phi.shape == e_read.shape


def test_official_loss_terms() -> None:
    data = PixelPendulum(PixelPendulum.Params(trials=4, eval_rollouts=1, eval_steps=10)
                         ).load(RunContext(seed=0))
    model = PixelHNN().build(RunContext(seed=1), data)
    x, x_next = data.pairs(data.pair_index(False)[:16])
    terms = pixel_losses(model, x, x_next)
    z, zn = model.encode(x), model.encode(x_next)
    ae = ((x - model.decode(z)) ** 2).mean(1)
    hnn = ((zn - z - model.time_derivative(z)) ** 2).mean(1)
    cc = (z[:, 1] - (zn[:, 0] - z[:, 0])) ** 2
    torch.testing.assert_close(terms["loss"], ae + cc + 0.1 * hnn)
    torch.testing.assert_close(terms["frozen"], ((zn - z) ** 2).mean(1))
    zero = PixelHNN(PixelHNN.Params(field_type="zero")).build(RunContext(seed=1), data)
    t0 = pixel_losses(zero, x, x_next)
    torch.testing.assert_close(t0["hnn"], t0["frozen"])  # a zero field predicts no change
    base = PixelBaseline().build(RunContext(seed=1), data)
    ae_layers = base.autoencoder.layers
    assert [tuple(lay.weight.shape) for lay in ae_layers][:4] == [
        (200, 1568), (200, 200), (200, 200), (2, 200)]
    assert base.dynamics.net.linear3.out_features == 2 and base.dynamics.baseline


def test_pixel_training_and_rollout_metric_at_tiny_size(tmp_path: Path) -> None:
    data = PixelPendulum(PixelPendulum.Params(trials=6, eval_rollouts=2, eval_steps=25)
                         ).load(RunContext(seed=0))
    params = PixelTrain.Params(total_steps=40)
    params.optimizer = Component.resolved("torch/adam", Adam,
                                          Adam.Params(lr=1e-3, weight_decay=1e-5))
    metric = PixelRollout(PixelRollout.Params(plot_every=4, plot_columns=5))
    for i, (kind, model) in enumerate((("baseline", PixelBaseline().build(RunContext(seed=1),
                                                                           data)),
                                       ("hnn", PixelHNN().build(RunContext(seed=1), data)))):
        before = metric.compute(RunContext(seed=0), CellResult(data, model, {}))
        out = PixelTrain(params).run(RunContext(seed=2), data, model)
        assert out["scalars"]["updates"] == 41
        ctx = RunContext(seed=0, work_dir=tmp_path / "cells" / str(i) / "artifacts",
                         label=f"pixels/{kind}/train/seed=0")
        after = metric.compute(ctx, CellResult(data, model, out))
        assert after["train_loss"] < 0.5 * before["train_loss"]
        assert set(after) >= {"energy_mse", "energy_drift", "frame_mse", "test_hnn",
                              "test_frozen", "test_ae", "test_cc"}
        assert (ctx.work_dir / "rollout_frames.png").stat().st_size > 2000
    assert pixel_plots.save_pixel_comparisons(str(tmp_path)) == 2
    frozen = PixelHNN(PixelHNN.Params(untrained=True)).build(RunContext(seed=1), data)
    assert PixelTrain(params).run(RunContext(seed=2), data, frozen)["scalars"]["updates"] == 0


@pytest.mark.slow
def test_pixel_spec_zero_field_control_fails_the_latent_claim(tmp_path: Path) -> None:
    """Through the real CLI at a tiny size: with the zero-field control's override, the
    latent one-frame claim fails with ratio exactly 1 (the field predicts no change)."""
    from conftest import SPECS, load_summary, run_harness

    out = tmp_path / "zero"
    res = run_harness("run", str(SPECS / "hnn-pixels.yaml"), "--out", str(out), "--seeds",
                      "0", "--set", "datasets.pixels.trials=8",
                      "--set", "datasets.pixels.eval_steps=30",
                      "--set", "methods.train.total_steps=100",
                      "--set", "models.hnn.field_type=zero")
    assert res.returncode == 1, res
    summary = load_summary(out)
    (claim,) = [c for c in summary["claims"] if c["id"] == "pixel-latent-step"]
    assert not claim["passed"]
    assert claim["groups"][0]["per_seed"]["0"]["value"] == pytest.approx(1.0, abs=1e-6)
    cells = {c["name"]: c for c in summary["cells"]}
    assert cells["pixels/hnn/train/seed=0"]["metrics"]["energy_drift"] < 1e-6  # frozen
