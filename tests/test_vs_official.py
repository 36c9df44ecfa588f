"""benchmarks/vs_official.py without any official checkout: the row table, the CLI, skipped
rows (exit 0) and bad input (exit 2); the measuring of one process."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "vs_official.py"


@pytest.fixture(scope="module")
def vs():
    spec = importlib.util.spec_from_file_location("vs_official", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["vs_official"] = module
    spec.loader.exec_module(module)
    return module


def test_rows_in_order(vs):
    assert list(vs.all_rows()) == ["hnn", "d3g", "sb", "supsup", "bigbench"]
    for row in vs.all_rows().values():
        assert row.steps > 0 and row.what


def test_rows_without_checkout_are_skipped(vs, capsys):
    assert vs.main([]) == 0
    out = capsys.readouterr().out
    for name in vs.all_rows():
        assert f"skipped: give --official {name}=PATH" in out
    assert "wall h/o" in out  # the table's header is printed all the same


def test_rows_option_selects(vs, capsys):
    assert vs.main(["--rows", "hnn"]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped: give --official") == 1


@pytest.mark.parametrize("argv, message", [
    (["--rows", "nope"], "unknown row 'nope'"),
    (["--official", "hnn"], "expected NAME=VALUE"),
    (["--official", "nope=/tmp"], "unknown row 'nope'"),
    (["--official", "hnn=/no/such/folder"], "no such path"),
    (["--steps", "hnn=many"], "N must be an integer"),
])
def test_bad_input_exits_2(vs, capsys, argv, message):
    assert vs.main(argv) == 2
    assert message in capsys.readouterr().err


def test_pairs_and_steps(vs, tmp_path):
    args = vs.parse_args(["--official", f"hnn={tmp_path}", "--steps", "hnn=5",
                          "--rows", "hnn"], vs.all_rows())
    assert args.official == {"hnn": tmp_path.resolve()}
    assert args.steps == {"hnn": 5} and args.rows == ["hnn"]


def test_a_venv_python_is_kept_as_given(vs, tmp_path):
    # a venv's bin/python is a symlink to the base interpreter: its target has no venv
    link = tmp_path / "venv" / "bin" / "python"
    link.parent.mkdir(parents=True)
    link.symlink_to(sys.executable)
    args = vs.parse_args(["--official", f"bigbench={link}"], vs.all_rows())
    assert args.official == {"bigbench": link} and args.official["bigbench"].is_symlink()


def test_measure_one_process(vs, tmp_path):
    measure = sys.modules["_official_common"].measure
    res = measure([sys.executable, "-c", "print(sum(range(10**6)))"], tmp_path, {})
    assert res["rc"] == 0 and res["stdout"].strip() == str(sum(range(10**6)))
    assert res["wall_s"] > 0 and res["cpu_s"] > 0 and res["peak_mb"] > 1
    res = measure([sys.executable, "-c", "raise SystemExit(3)"], tmp_path, {})
    assert res["rc"] == 3


def test_hnn_cases_are_the_same_work(vs, tmp_path):
    cases = vs._official_hnn.cases(tmp_path / "checkout", tmp_path / "work", 7, 1)
    assert [c.label for c in cases] == ["spring baseline", "spring hnn",
                                        "pendulum baseline", "pendulum hnn"]
    spec = (cases[1].harness.work / "spec.yaml").read_text()
    assert "total_steps: 7" in spec and "threads: 1" in spec and "hnn/hnn" in spec
    assert cases[1].official.argv[-4:] == ["experiment-spring", "7", "1", "hnn"]
    assert vs._official_hnn.official_headline(tmp_path, "Final train loss 1e-2 +/- 1e-3\n"
                                    "Final test loss 3.5e-02 +/- 1e-3") == {"test_loss": 0.035}


def test_d3g_cases_are_the_same_work(vs, tmp_path):
    cases = vs._official_d3g.cases(tmp_path / "checkout", tmp_path / "work", 3000, 0)
    assert [c.label for c in cases] == ["pendulum d3g", "pendulum td3"]
    spec = (cases[0].harness.work / "spec.yaml").read_text()
    for text in ("steps: 3000", "start_steps: 1000", "eval_every: 1000", "hidden: 256",
                 "batch_size: 256", "qss/d3g", "Pendulum-v1"):
        assert text in spec
    assert cases[0].official.argv[-6:] == [str(tmp_path / "checkout"), "D3G", "3000",
                                           "1000", "1000", "0"]
    assert (cases[0].official.work / "shims" / "gym" / "__init__.py").is_file()
    stdout = "Evaluation over 10 episodes: -1200.5\n...\nEvaluation over 10 episodes: -150.25"
    assert vs._official_d3g.official_headline(tmp_path, stdout) == {"final_return": -150.25}


def test_supsup_cases_are_the_same_work(vs, tmp_path):
    """Both sides of each case: the same sizes and settings, and the official side's tasks
    file holds exactly the data the harness runner loads for the harness side's cell."""
    import json

    import torch

    from harness.cells import expand
    from harness.plan import CellPlan, load_data
    from harness.registry import get_registry
    from harness.spec import load_spec
    ss = sys.modules["_official_supsup"]
    cases = ss.cases(tmp_path / "checkout", tmp_path / "work", 7, 3)
    assert [c.label for c in cases] == ["one-shot, 1 example", "one-shot, batch of 16"]
    for case, examples in zip(cases, (1, 16), strict=True):
        work = json.loads(case.official.argv[-1])
        assert work == {"tasks": 10, "hidden": [256, 256], "outputs": 500, "lr": 1e-3,
                        "steps": 7, "batch_size": 128, "infer_batch": 16,
                        "objective_examples": examples, "seed": 3}
        assert case.official.argv[-3:-1] == [str(tmp_path / "checkout"),
                                             str(tmp_path / "work" / "tasks.npz")]
        spec = (case.harness.work / "spec.yaml").read_text()
        for text in ("steps: 7", "batch_size: 128", "infer_batch: 16", "outputs: 500",
                     "mask: threshold", "tasks: 10", "lr: 0.001", "threads: 1",
                     f"objective_examples: {examples}", "- oneshot/entropy"):
            assert text in spec, text
    spec = load_spec(cases[0].harness.work / "spec.yaml", get_registry())
    (cell,) = expand(spec)
    data, _ = load_data(CellPlan.from_cell(cell, spec, tmp_path / "cache"))
    tasks = np.load(tmp_path / "work" / "tasks.npz")
    for name in ("x_train", "y_train", "x_test", "y_test", "perms"):
        assert torch.equal(torch.from_numpy(tasks[name]), getattr(data, name)), name
    assert tasks["perms"].shape == (10, 64) and len(tasks["x_test"]) == 450


def test_supsup_official_headline(vs, tmp_path):
    ss = sys.modules["_official_supsup"]
    (tmp_path / "headline.json").write_text(
        '{"gg_acc": 0.9, "gn_acc": 0.8, "task_inference": 0.75, "batches": 290}')
    assert ss.official_headline(tmp_path, "") == {"gg_acc": 0.9, "gn_acc": 0.8,
                                                  "task_inference": 0.75}
    assert set(ss.HEADLINE) == {"gg_acc", "gn_acc", "task_inference"}


FAKE_SUPSUP = {
    "args.py": "from types import SimpleNamespace\nargs = SimpleNamespace()\n",
    "data.py": "",
    "models/__init__.py": "",
    "models/builder.py": """
from torch import nn
class Builder:
    def conv1x1(self, n_in, n_out, first_layer=False, last_layer=False):
        return nn.Conv2d(n_in, n_out, 1, bias=False)
""",
    # main(): the official task loop's outputs, 3 test batches a task, the first one wrong
    "main.py": """
import json, os
from args import args
import data, models
def main():
    loader = getattr(data, args.set)()
    loader.update_task(1)
    x, y = next(iter(loader.train_loader))
    out = models.__dict__[args.model]()(x)
    json.dump({"args": {k: v for k, v in vars(args).items() if k != "device"},
               "batch": list(x.shape), "out": list(out.shape)}, open("seen.json", "w"))
    os.makedirs(args.log_dir)
    with open(os.path.join(args.log_dir, "results.csv"), "w") as f:
        f.write("Date Finished,Name,Current Val,Best Val,Save Directory\\n")
        for i in range(args.num_tasks):
            f.write(f"now, supsup~task={i}, {0.9 + i / 100:.4f}, 0.99, here\\n")
    for i in range(args.num_tasks):
        print(f"Testing {i}: {args.set} ({i})")
        for b in range(3):
            print(f"tensor([[[[{i if b else (i + 1) % args.num_tasks}]]]])")
    return [0.5] * args.num_tasks
""",
}


@pytest.mark.slow
def test_supsup_official_shim_on_a_fake_checkout(vs, tmp_path):
    """The official side's shim, run on a stand-in for the checkout (its args, data,
    models/builder and main modules): the settings it gives main(), the tasks and model
    it plugs in, and the headline it reads from main's printed tasks and results.csv."""
    import json
    for name, text in FAKE_SUPSUP.items():
        (tmp_path / "checkout" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "checkout" / name).write_text(text)
    ss = sys.modules["_official_supsup"]
    case = ss.cases(tmp_path / "checkout", tmp_path / "work", 25, 0)[0]
    res = sys.modules["_official_common"].run_side(case.official)
    assert "error" not in res, res.get("error")
    assert res["headline"] == pytest.approx({"gg_acc": 0.945, "gn_acc": 0.5,
                                             "task_inference": 2 / 3})
    seen = json.loads((case.official.work / "seen.json").read_text())
    assert seen["batch"] == [128, 64] and seen["out"] == [128, 500]
    args = seen["args"]
    assert {k: args[k] for k in ("set", "model", "conv_type", "conv_init", "num_tasks",
                                 "output_size", "adaptor", "optimizer", "lr", "iter_lim",
                                 "epochs", "batch_size", "test_batch_size",
                                 "data_to_repeat", "unshared_labels", "no_scheduler",
                                 "eval_ckpts", "seed")} == {
        "set": "DigitsPerm", "model": "FC", "conv_type": "FastMultitaskMaskConv",
        "conv_init": "signed_constant", "num_tasks": 10, "output_size": 500,
        "adaptor": "se_oneshot_entropy_minimization", "optimizer": "rmsprop", "lr": 1e-3,
        "iter_lim": 25, "epochs": 3, "batch_size": 128, "test_batch_size": 16,
        "data_to_repeat": 1, "unshared_labels": True, "no_scheduler": True,
        "eval_ckpts": [], "seed": 0}  # 1,347 training examples: 11 batches an epoch


def test_gym_shim_gives_the_old_api(vs, tmp_path):
    pytest.importorskip("gymnasium")
    (tmp_path / "gym").mkdir()
    (tmp_path / "gym" / "__init__.py").write_text(vs._official_d3g.GYM_SHIM)
    sys.path.insert(0, str(tmp_path))
    try:
        import gym
        env = gym.make("Pendulum-v1")
        env.seed(3)
        first = env.reset()
        env.seed(3)
        assert (env.reset() == first).all() and env._max_episode_steps == 200
        obs, reward, done, info = env.step(env.action_space.sample())
        assert obs.shape == (3,) and not done
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("gym", None)


@pytest.mark.slow
def test_sb_stream_and_harness_side(vs, tmp_path):
    """The stream both selectors read, and the harness side's script run on a short one:
    one epoch primed (all kept), then about E[p**3] = 1/4 of the candidates kept."""
    sb = sys.modules["_official_sb"]
    cases = sb.cases(tmp_path / "checkout", tmp_path / "work", 2, 0)
    stream = np.load(tmp_path / "work" / "losses.npy")
    assert stream.shape == (2, sb.N_TRAIN) and (stream > 0).all()
    assert stream[1].mean() < stream[0].mean()  # losses shrink epoch by epoch
    res = sys.modules["_official_common"].run_side(cases[0].harness)
    assert "error" not in res, res.get("error")
    kept, prob = res["headline"]["kept"], res["headline"]["mean_keep_prob"]
    assert 0.2 < prob < 0.3
    assert abs(kept - sb.N_TRAIN * (1 + prob)) < 4 * (sb.N_TRAIN * prob) ** 0.5
