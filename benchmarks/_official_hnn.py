"""vs_official row ``hnn``: greydanus/hamiltonian-nn's ``experiment-spring/train.py`` and
``experiment-pend/train.py`` (``train(args)``, the official loop, data and models) against
``harness run`` of ``hnn/train`` on ``hnn/spring``/``hnn/pendulum`` with ``hnn/mlp`` (the
baseline) and ``hnn/hnn``: full batch, ``steps + 1`` Adam updates on both sides, one process
per system and model. Headline: the final test loss (the official script's printed
``Final test loss``; the harness's ``hnn/derivative-loss`` ``test_loss``). The data are
drawn by each side's own generator (the same distributions, other draws).
"""

from __future__ import annotations

import re
from pathlib import Path

from _official_common import Case, harness_side, script_side

SHIM = """
    # Runs the official experiment-*/train.py `train(args)` from the checkout, one thread.
    import contextlib, io, json, os, sys
    import torch
    torch.set_num_threads(1)
    path, folder, steps, seed = sys.argv[1:5]
    baseline = sys.argv[5] == "baseline"
    sys.path[:0] = [os.path.join(path, folder), path]   # its data.py first, then hnn.py etc.
    sys.argv = ["train.py", "--total_steps", steps, "--seed", seed, "--save_dir", "."]
    sys.argv += ["--baseline"] if baseline else []
    import train
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        train.train(train.get_args())
    print(printed.getvalue())
"""

SYSTEMS = {"spring": ("experiment-spring", "hnn/spring"),
               "pendulum": ("experiment-pend", "hnn/pendulum")}


def official_headline(_folder: Path, stdout: str) -> dict[str, float]:
    found = re.search(r"Final test loss ([0-9.eE+-]+)", stdout)
    if not found:
        raise RuntimeError("no 'Final test loss' line")
    return {"test_loss": float(found.group(1))}


def cases(checkout: Path, work: Path, steps: int, seed: int) -> list[Case]:
    cases = []
    for system, (folder, dataset) in SYSTEMS.items():
        for model, adapter in (("baseline", "hnn/mlp"), ("hnn", "hnn/hnn")):
            label = f"{system} {model}"
            case_dir = work / label.replace(" ", "-")
            official = script_side(case_dir / "official", "hnn_shim.py", SHIM,
                                   [str(checkout), folder, str(steps), str(seed), model],
                                   official_headline)
            spec = {"name": f"vs-official-hnn-{system}-{model}", "seeds": [seed],
                    "datasets": {system: {"use": dataset}},
                    "models": {model: {"use": adapter}},
                    "methods": {"train": {"use": "hnn/train", "total_steps": steps}},
                    "metrics": ["hnn/derivative-loss"]}
            harness = harness_side(case_dir / "harness", spec, {"test_loss": "test_loss"})
            cases.append(Case(label, official, harness))
    return cases
