"""The generic adapters: datasets, models, the hookable training, optimizers, metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import ROOT, load_summary, run_harness

from harness import CellResult, RunContext
from harness.registry import get_registry
from harness.training import StepInfo, TrainingObserver


@pytest.fixture(scope="module")
def reg():
    return get_registry()


def build(reg, name: str, **params):
    cls = reg.get(name)
    return cls(cls.Params(**params))


def test_stratified_split_is_seeded_and_keeps_class_shares(reg) -> None:
    a = build(reg, "sklearn/digits").load(RunContext(seed=1))
    b = build(reg, "sklearn/digits").load(RunContext(seed=1))
    c = build(reg, "sklearn/digits").load(RunContext(seed=2))
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
    assert len(a.y_train) + len(a.y_test) == 1797
    counts = torch.bincount(a.y_test, minlength=10).float() / len(a.y_test)
    assert counts.min() > 0.09 and counts.max() < 0.11
    assert a.x_train.max() <= 1.0 and a.image_shape == (1, 8, 8)


def test_gaussian_mixture_shapes(reg) -> None:
    d = build(reg, "synthetic/gaussian-mixture", classes=3, dim=5, n_train=50,
              n_test=20).load(RunContext(seed=0))
    assert d.x_train.shape == (50, 5) and d.x_test.shape == (20, 5) and d.num_classes == 3


def test_models_initialize_from_the_context_generator(reg) -> None:
    data = build(reg, "sklearn/digits").load(RunContext(seed=0))
    torch.manual_seed(123)
    m1 = build(reg, "torch/mlp", hidden=[16]).build(RunContext(seed=5), data)
    torch.manual_seed(999)  # global state must not matter
    m2 = build(reg, "torch/mlp", hidden=[16]).build(RunContext(seed=5), data)
    for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p, q)
    cnn = build(reg, "torch/cnn").build(RunContext(seed=5), data)
    assert cnn(data.x_test[:4]).shape == (4, 10)


class Recorder(TrainingObserver):
    name = "test/recorder"

    def on_step(self, info: StepInfo) -> None:
        self.steps = getattr(self, "steps", []) + [info]

    def on_end(self) -> dict:
        return {"n": len(self.steps)}


def test_uniform_selection_is_plain_minibatch_sgd(reg) -> None:
    """The hookable loop with the uniform policy equals a hand-written SGD loop."""
    from harness import Component
    data = build(reg, "sklearn/iris").load(RunContext(seed=0))
    method = reg.get("torch/train-classifier")
    params = method.Params(steps=7, batch_size=16)
    params.optimizer = Component.resolved("torch/sgd", reg.get("torch/sgd"),
                                          reg.get("torch/sgd").Params(lr=0.3))
    params.selection = Component.resolved("selection/uniform", reg.get("selection/uniform"),
                                          reg.get("selection/uniform").Params())
    params.observers = [Component.resolved("test/recorder", Recorder, Recorder.Params())]
    ctx = RunContext(seed=11)
    model = build(reg, "torch/mlp", hidden=[8]).build(ctx, data)
    ref = build(reg, "torch/mlp", hidden=[8]).build(RunContext(seed=11), data)
    out = method(params).run(ctx, data, model)
    # replay by hand: the same permutation stream, the same updates
    perm = torch.randperm(len(data.x_train), generator=ctx.derive("batches").generator)
    opt = torch.optim.SGD(ref.parameters(), lr=0.3)
    for step in range(7):
        idx = perm[step * 16:(step + 1) * 16]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(ref(data.x_train[idx]), data.y_train[idx]).backward()
        opt.step()
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)
    assert out["counts"]["backward_examples"] == 7 * 16
    assert out["observers"]["test/recorder"] == {"n": 7}
    assert int(out["backprop_counts"].sum()) == 7 * 16


def test_metrics_by_hand(reg) -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 2.0]])
    targets = torch.tensor([0, 0, 1, 1])
    res = CellResult(None, None, {"test_logits": logits, "test_targets": targets})
    ctx = RunContext(seed=0)
    assert build(reg, "accuracy").compute(ctx, res) == {"accuracy": 0.5}
    # class 0: tp=1 fp=1 fn=1 -> 0.5; class 1: tp=1 fp=1 fn=1 -> 0.5
    assert build(reg, "macro-f1").compute(ctx, res) == {"macro_f1": 0.5}
    ce = torch.nn.functional.cross_entropy(logits.double(), targets).item()
    assert build(reg, "cross-entropy").compute(ctx, res)["cross_entropy"] == pytest.approx(ce)


def test_evaluate_metric_from_a_local_module(tmp_path: Path) -> None:
    spec = tmp_path / "ev.yaml"
    path = ROOT / "tests" / "data" / "metrics" / "toy_accuracy"
    spec.write_text(f"""name: ev
datasets: {{iris: {{use: sklearn/iris}}}}
models: {{mlp: {{use: torch/mlp, hidden: [8]}}}}
methods: {{train: {{use: torch/train-classifier, steps: 50}}}}
metrics: [accuracy, {{use: evaluate/metric, path: {path}}}]
""")
    res = run_harness("run", str(spec), "--out", str(tmp_path / "o"), "--trust-code",
                      env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert res.returncode == 0, res
    metrics = load_summary(tmp_path / "o")["cells"][0]["metrics"]
    assert metrics["toy_accuracy"] == metrics["accuracy"]
    assert metrics["toy_accuracy_count"] == 36  # iris: 150 x 0.25 stratified, 12 per class


def test_evaluate_hub_name_offline_is_a_clear_error(tmp_path: Path) -> None:
    spec = tmp_path / "ev.yaml"
    spec.write_text("""name: ev
datasets: {iris: {use: sklearn/iris}}
models: {mlp: {use: torch/mlp, hidden: [8]}}
methods: {train: {use: torch/train-classifier, steps: 5}}
metrics: [{use: evaluate/metric, path: accuracy}]
""")
    res = run_harness("run", str(spec), "--out", str(tmp_path / "o"), "--trust-code",
                      env={"HF_HUB_OFFLINE": "1"})
    assert res.returncode == 2, res
    assert "not a local path and the hub is offline" in res.output
    assert "Traceback" not in res.output
