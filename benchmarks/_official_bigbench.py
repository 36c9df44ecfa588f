"""vs_official row ``bigbench``: BIG-bench multiple choice scored by lm-evaluation-harness
against the harness's ``bigbench`` scoring (prefix-tree packing), on the same prompts and
choices, with ``benchmarks/bigbench_mc.py``'s pieces.

``--official bigbench=PYTHON`` names a Python that can import ``lm_eval`` (e.g. a
throwaway venv: the project does not depend on it). Before timing, one untimed process
builds the prompts (``bigbench_mc.prompts_and_choices``: BIG-bench's own, 0 shots, task
``intent_recognition``, the first ``steps`` examples) and writes them as an lm-eval task
(``bigbench_mc.TASK_YAML``); then the official side runs ``bigbench_mc.LM_EVAL_SCRIPT``
(HFLM, batch 8, float32, one thread) under that Python, and the harness side scores the
same prompts with ``CausalModel`` (batch 8, packed). Both load SmolLM2-135M from the
harness's model cache (``HARNESS_CACHE``, default ``~/.cache/harness``). Headline: the
multiple-choice accuracy (the same on both sides up to float noise: same prompts, same
continuations, lm-eval's target delimiter empty).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from _official_common import THREAD_ENV, Case, Side, json_headline, script_side

BENCH = Path(__file__).resolve().parent
TASK = "intent_recognition"
MODEL_CACHE = os.environ.get("HARNESS_CACHE", "")  # the user's, before warm_harness

PREPARE = """
    # Untimed: the prompts, choices and targets, and the lm-eval task folder.
    import json, os, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    import bigbench_mc as bb
    from harness_adapters.lm.adapters import CausalModel
    from harness import RunContext
    from harness.cli import default_cache
    work, task, n = Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    shared = bb.ROOT.parent / "shared" / "bigbench" / "tasks"   # bigbench_mc's default
    tasks_dir = os.environ.get("HARNESS_BIGBENCH_TASKS") or (
        str(shared) if shared.is_dir() else None)
    prompts, choices, targets = bb.prompts_and_choices(task, 0, n, tasks_dir)
    ctx = RunContext(seed=0, cache_dir=default_cache())
    folder = CausalModel(CausalModel.Params(batch_size=8)).build(ctx, None).info["folder"]
    with open(work / "data.jsonl", "w") as f:
        for p, c, t in zip(prompts, choices, targets):
            label = max(range(len(c)), key=lambda i: t[c[i]])
            f.write(json.dumps({"prompt": p, "choices": c, "label": label}) + "\\n")
    (work / "task.yaml").write_text(bb.TASK_YAML.format(name="harness_bb_mc",
                                                        data=work / "data.jsonl"))
    (work / "run.py").write_text(bb.LM_EVAL_SCRIPT)
    json.dump({"folder": folder, "prompts": prompts, "choices": choices,
               "targets": targets}, open(work / "prepared.json", "w"))
"""

HARNESS = """
    # The harness's packed multiple-choice scoring of the prepared prompts, one thread.
    import json, sys
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[1])
    import bigbench_mc as bb
    from harness_adapters.lm.adapters import CausalModel
    from harness import RunContext
    from harness.cli import default_cache
    prep = json.load(open(sys.argv[2]))
    lm = CausalModel(CausalModel.Params(batch_size=8)).build(
        RunContext(seed=0, cache_dir=default_cache()), None)
    scores, _, _ = bb.timed(lm, "packed", prep["prompts"], prep["choices"])
    json.dump({"acc": bb.grade(scores, prep["choices"], prep["targets"])},
              open("headline.json", "w"))
"""


def lm_eval_headline(folder: Path, _stdout: str) -> dict[str, float]:
    return {"acc": float(json.loads((folder / "out.json").read_text())["acc"])}


def cases(python: Path, work: Path, steps: int, seed: int) -> list[Case]:
    work.mkdir(parents=True, exist_ok=True)
    env = {"HARNESS_CACHE": MODEL_CACHE} if MODEL_CACHE else {}
    prep = script_side(work, "prepare.py", PREPARE, [str(BENCH), str(work), TASK, str(steps)],
                       json_headline)
    subprocess.run(prep.argv, cwd=work, env={**os.environ, **THREAD_ENV, **env}, check=True)
    folder = json.loads((work / "prepared.json").read_text())["folder"]
    (work / "official").mkdir(exist_ok=True)
    official = Side([str(python), str(work / "run.py"), folder, str(work), "harness_bb_mc",
                     "1", str(work / "official" / "out.json")], lm_eval_headline,
                    work / "official", {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    harness = script_side(work / "harness", "bb_harness.py", HARNESS,
                          [str(BENCH), str(work / "prepared.json")], json_headline)
    # the harness side scores every prompt: a second run must not be answered from the
    # log-likelihood memo the first one filled
    harness.env.update({**env, "HARNESS_NO_LM_MEMO": "1"})
    return [Case(f"{TASK}, {steps} ex.", official, harness)]
