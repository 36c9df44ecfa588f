"""vs_official row ``supsup``: RAIVNLab/supsup's ``main.py`` ``main()`` in its GNu setting
(its task loop, ``trainers/default.py``, ``models/modules.py`` ``FastMultitaskMaskConv``
with ``models/init.py`` ``signed_constant`` built by ``models/builder.py``, and
``adaptors.py`` ``se_oneshot_entropy_minimization``) against ``harness run`` of
``supsup/train`` on ``supsup/permuted-digits`` with ``supsup/masked-mlp``.

Same work on both sides: the harness's own permuted-digits tasks (this script loads them
with the harness's dataset and the seed the runner gives that dataset, and writes them to
a file the official side reads: the same split, normalization and permutations), 10
tasks, a bias-free 64-256-256-500 network of fixed signed-constant weights (the official
FC models are 1x1 convolutions, ``FC1024``'s layout; here at the adapter's sizes), the
GNu mask rule (an edge is kept when its score is >= 0; no sparsity parameter), per task a
fresh RMSprop at lr 1e-3 over that task's scores for ``steps`` steps of batch 128 (the
official ``iter_lim``; ``epochs`` just enough to reach it), no scheduler; then, after the
last task, every task's test set in shuffled batches of 16: its task inferred by one
gradient of the output entropy w.r.t. the mixing coefficients alphas, the batch then
classified with the inferred mask, a batch with a wrong task counting as all wrong
(``unshared_labels``). Two cases: the entropy read from the first example of each batch
(the official GNu ``data_to_repeat`` 1; the harness's ``objective_examples: 1``) and from
the whole batch (``data_to_repeat`` 16; ``specs/supsup.yaml``'s ``supsup``). Both sides
seed with the same seed but draw weights, scores and batches from their own generators
(other draws).

Headline, mean over tasks: ``gg_acc`` (test accuracy with the task given: the official
``curr_acc1`` of each task, read from its ``results.csv``, 4 decimals; the harness's
``avg_accuracy``), ``gn_acc`` (accuracy with the task inferred: the official adaptor's
return; ``avg_accuracy_gn``) and ``task_inference`` (the fraction of test batches whose
task was inferred right: the official adaptor prints each batch's inferred task, the shim
counts them; ``task_inference_accuracy``).

The official side runs with stubs for three modules its path never uses, when they are
not installed: ``torchvision`` (the MNIST/CIFAR loaders, not used: the tasks come from
the file), ``seaborn`` (imported by ``main.py`` only) and ``torch.utils.tensorboard``
(a ``SummaryWriter`` that drops its scalars: the official side's tensorboard writes are not
timed). The official loop also tests the current task after each epoch; the harness
tests it after the task (its intermediate task-inference checkpoints and accuracy matrix
are switched off: the official run with no ``eval_ckpts`` evaluates after the last task).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from _official_common import Case, harness_side, json_headline, script_side

TASKS, HIDDEN, OUTPUTS, BATCH, INFER_BATCH, LR = 10, (256, 256), 500, 128, 16, 1e-3
DATASET = "permuted"  # the dataset's name in the harness spec: part of its seed

OFFICIAL = """
    # RAIVNLab/supsup's main() from the checkout on the harness's tasks (_official_supsup.py).
    import contextlib, csv, importlib.util, io, json, math, os, re, shutil, sys, types
    import numpy as np
    import torch
    from torch import nn
    torch.set_num_threads(1)
    path, tasks_file = sys.argv[1:3]
    work = json.loads(sys.argv[3])   # the sizes and settings of the case

    def stub(name, **attrs):
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
        return module

    if importlib.util.find_spec("torchvision") is None:   # used by its MNIST/CIFAR loaders
        stub("torchvision", datasets=stub("torchvision.datasets"),
             transforms=stub("torchvision.transforms"))
    if importlib.util.find_spec("seaborn") is None:       # imported by main.py, unused
        stub("seaborn")
    if importlib.util.find_spec("tensorboard") is None:   # a writer that drops its scalars
        class SummaryWriter:
            def __init__(self, *a, **k): pass
            def add_scalar(self, *a, **k): pass
            def close(self): pass
        stub("torch.utils.tensorboard", SummaryWriter=SummaryWriter)

    sys.argv = ["main.py"]          # args.py parses the command line when imported
    sys.path.insert(0, path)
    from args import args
    import data, models
    import main as official
    from models.builder import Builder

    tasks = np.load(tasks_file)
    x_train, y_train = torch.from_numpy(tasks["x_train"]), torch.from_numpy(tasks["y_train"])
    x_test, y_test = torch.from_numpy(tasks["x_test"]), torch.from_numpy(tasks["y_test"])
    perms = torch.from_numpy(tasks["perms"])
    features = x_train.shape[1]

    class Permuted(torch.utils.data.Dataset):
        # one image at a time, permuted by the current task (its data/mnist.py Permute)
        def __init__(self, x, y, loader):
            self.x, self.y, self.loader = x, y, loader
        def __len__(self):
            return len(self.x)
        def __getitem__(self, i):
            return self.x[i][self.loader.perm], self.y[i]

    class DigitsPerm:
        # the harness's permuted digits as an official loader (its MNISTPerm's interface)
        def __init__(self):
            self.perm = perms[0]
            self.train_loader = torch.utils.data.DataLoader(
                Permuted(x_train, y_train, self), batch_size=args.batch_size, shuffle=True)
            self.val_loader = torch.utils.data.DataLoader(
                Permuted(x_test, y_test, self), batch_size=args.test_batch_size,
                shuffle=True)
        def update_task(self, i):
            self.perm = perms[i]

    class FC(nn.Module):
        # models/small.py FC1024's layout (1x1 convs, no biases) at the harness's sizes
        def __init__(self):
            super().__init__()
            builder = Builder()
            self.linear = nn.Sequential(
                builder.conv1x1(features, work["hidden"][0], first_layer=True), nn.ReLU(),
                builder.conv1x1(work["hidden"][0], work["hidden"][1]), nn.ReLU(),
                builder.conv1x1(work["hidden"][1], args.output_size, last_layer=True))
        def forward(self, x):
            return self.linear(x.view(x.size(0), features, 1, 1)).squeeze()

    data.DigitsPerm, models.FC = DigitsPerm, FC
    batches = math.ceil(len(x_train) / work["batch_size"])
    # the GNu FC config (experiments/GNu/MNISTPerm/FC-250-tasks/supsup_h.py) at our sizes
    settings = dict(set="DigitsPerm", model="FC", conv_type="FastMultitaskMaskConv",
                    conv_init="signed_constant", num_tasks=work["tasks"],
                    output_size=work["outputs"], adaptor="se_oneshot_entropy_minimization",
                    optimizer="rmsprop", lr=work["lr"], iter_lim=work["steps"],
                    epochs=math.ceil(work["steps"] / batches),
                    batch_size=work["batch_size"], test_batch_size=work["infer_batch"],
                    no_scheduler=True, unshared_labels=True,
                    data_to_repeat=work["objective_examples"], eval_ckpts=[],
                    seed=work["seed"], name="supsup", log_dir=os.path.abspath("logs"),
                    multigpu=None, save=False, workers=0)
    args.__dict__.update(settings)
    shutil.rmtree("logs", ignore_errors=True)   # its results.csv is appended to, run by run
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        gn = official.main()
    lines = printed.getvalue().splitlines()
    task, right, seen = None, 0, 0
    for line in lines:                  # "Testing i: ..." then one "tensor([[[[k]]]])" a batch
        testing = re.match(r"Testing (\\d+):", line)
        guess = re.fullmatch(r"tensor\\(\\[+(\\d+)\\]+\\)", line.strip())
        if testing:
            task = int(testing.group(1))
        elif guess and task is not None:
            right += int(guess.group(1)) == task
            seen += 1
    with open(os.path.join("logs", "results.csv")) as f:
        gg = [float(row["Current Val"]) for row in csv.DictReader(f, skipinitialspace=True)]
    json.dump({"gg_acc": sum(gg) / len(gg), "gn_acc": sum(gn) / len(gn),
               "task_inference": right / max(1, seen), "batches": seen},
              open("headline.json", "w"))
    open("official_stdout.txt", "w").write(printed.getvalue())
"""


def tasks_seed(seed: int) -> int:
    """The seed ``harness run`` gives the dataset ``permuted`` of a spec seed."""
    from harness.cells import derive_seed
    return derive_seed(seed, "dataset", DATASET)


def write_tasks(path: Path, seed: int) -> dict[str, np.ndarray]:
    """The harness's permuted-digits tasks, as its runner loads them, to ``path`` (npz)."""
    from harness import RunContext
    from harness.registry import get_registry
    cls = get_registry().get("supsup/permuted-digits")
    tasks = cls(cls.Params(tasks=TASKS)).load(RunContext(seed=tasks_seed(seed)))
    arrays = {"x_train": tasks.x_train.numpy(), "y_train": tasks.y_train.numpy(),
              "x_test": tasks.x_test.numpy(), "y_test": tasks.y_test.numpy(),
              "perms": tasks.perms.numpy()}
    np.savez(path, **arrays)
    return arrays


def official_work(steps: int, seed: int, examples: int) -> dict[str, Any]:
    """The official side's sizes and settings (its shim's third argument); ``examples``
    is its ``data_to_repeat``, the test examples of a batch the objective reads."""
    return {"tasks": TASKS, "hidden": list(HIDDEN), "outputs": OUTPUTS, "lr": LR,
            "steps": steps, "batch_size": BATCH, "infer_batch": INFER_BATCH,
            "objective_examples": examples, "seed": seed}


def harness_spec(steps: int, seed: int, examples: int) -> dict[str, Any]:
    """The spec of the harness side (``examples`` as in ``official_work``)."""
    return {"name": "vs-official-supsup", "seeds": [seed],
            "datasets": {DATASET: {"use": "supsup/permuted-digits", "tasks": TASKS}},
            "models": {"supermasks": {"use": "supsup/masked-mlp", "hidden": list(HIDDEN),
                                      "outputs": OUTPUTS, "mask": "threshold"}},
            "methods": {"supsup": {"use": "supsup/train",
                                   "optimizer": {"use": "torch/rmsprop", "lr": LR},
                                   "steps": steps, "batch_size": BATCH,
                                   "infer_batch": INFER_BATCH,
                                   "objective_examples": examples,
                                   "inference": ["oneshot/entropy"],
                                   "infer_checkpoints": [TASKS], "acc_matrix": False}},
            "metrics": ["supsup/continual"]}


HEADLINE = {"gg_acc": "avg_accuracy", "gn_acc": "avg_accuracy_gn",
            "task_inference": "task_inference_accuracy"}


def official_headline(folder: Path, stdout: str) -> dict[str, float]:
    out = json_headline(folder, stdout)
    out.pop("batches", None)
    return out


def cases(checkout: Path, work: Path, steps: int, seed: int) -> list[Case]:
    """Two cases: the objective read from each test batch's first example (the official
    GNu configs) and from the whole batch (``specs/supsup.yaml``'s ``supsup``)."""
    work.mkdir(parents=True, exist_ok=True)
    tasks = work / "tasks.npz"
    write_tasks(tasks, seed)
    out = []
    for label, examples in (("1 example", 1), (f"batch of {INFER_BATCH}", INFER_BATCH)):
        folder = work / f"examples-{examples}"
        official = script_side(folder / "official", "supsup_shim.py", OFFICIAL,
                               [str(checkout), str(tasks),
                                json.dumps(official_work(steps, seed, examples))],
                               official_headline)
        harness = harness_side(folder / "harness", harness_spec(steps, seed, examples),
                               HEADLINE)
        out.append(Case(f"one-shot, {label}", official, harness))
    return out
