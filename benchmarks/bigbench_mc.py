"""Multiple-choice scoring speed on a BIG-bench task: examples per second.

Compares, in one run and on the same prompts (BIG-bench's, built by ``bigbench/task``):

- ``packed``: the harness's default (prefix-tree packing: a context shared by its choices,
  and the task prefix shared by several examples, are encoded once; the vocabulary
  projection only where a choice token is scored);
- ``padded``: one padded row per (prompt, choice), 8 rows per forward (what a plain
  batched loop does);
- ``naive``: one forward per (prompt, choice);
- optionally lm-evaluation-harness (``--lm-eval-python``: a Python with ``lm_eval``
  installed, e.g. a throwaway venv) on the same prompts and choices, batch size 8.

Reported: examples/s of wall time and examples per CPU-second (the latter is steadier on
a shared machine), the multiple-choice grade, and the largest score difference between
strategies. A second ``packed`` row scores the same prompts with lm-evaluation-harness's
whitespace rule (the context's trailing space moved into each choice), which is what
makes its grade differ from BIG-bench's at 3 shots. Usage::

    python benchmarks/bigbench_mc.py --shots 0 3 --examples 100 --threads 2 \
        [--lm-eval-python /tmp/lmeval-venv/bin/python] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from harness_adapters.bigbench.dataset import BigBenchTask
from harness_adapters.bigbench.scoring import argmax
from harness_adapters.lm.adapters import CausalModel
from harness_adapters.lm.causal import CausalLM

from harness import RunContext
from harness.cli import default_cache

ROOT = Path(__file__).resolve().parents[1]

LM_EVAL_SCRIPT = textwrap.dedent("""
    import json, sys, time, torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    folder, include, task, threads, out = sys.argv[1:6]
    torch.set_num_threads(int(threads))
    lm = HFLM(pretrained=folder, batch_size=8, device="cpu", dtype="float32")
    manager = TaskManager(include_path=include)
    t0, c0 = time.perf_counter(), time.process_time()
    res = simple_evaluate(model=lm, tasks=[task], task_manager=manager, num_fewshot=0,
                          log_samples=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    acc = res["results"][task]["acc,none"]
    json.dump({"wall_s": wall, "cpu_s": cpu, "acc": acc}, open(out, "w"))
""")

TASK_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{prompt}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
"""


def prompts_and_choices(task: str, shots: int, n: int, tasks_dir: str | None
                        ) -> tuple[list[str], list[list[str]], list[dict[str, float]]]:
    ctx = RunContext(seed=0, cache_dir=default_cache())
    data = BigBenchTask(BigBenchTask.Params(task=task, tasks_dir=tasks_dir)).load(ctx)
    leaf = data.leaves()[0]
    samples = leaf.samples(shots)[:n]
    return leaf.prompts(samples), [s["choice"] for s in samples], [s["target_scores"]
                                                                     for s in samples]


def timed(lm: CausalLM, strategy: str, prompts: list[str], choices: list[list[str]]
          ) -> tuple[list[list[float]], float, float]:
    lm.scoring = strategy
    t0, c0 = time.perf_counter(), time.process_time()
    scores = lm.loglikelihood(prompts, choices)
    return scores, time.perf_counter() - t0, time.process_time() - c0


def lm_eval_split(prompts: list[str], choices: list[list[str]]
                  ) -> tuple[list[str], list[list[str]]]:
    """lm-evaluation-harness's rule: trailing whitespace of the context moves to the front
    of every continuation (BIG-bench keeps it in the context). Used to compare grades."""
    out_p, out_c = [], []
    for prompt, options in zip(prompts, choices, strict=True):
        stripped = prompt.rstrip()
        tail = prompt[len(stripped):]
        out_p.append(stripped)
        out_c.append([tail + option for option in options])
    return out_p, out_c


def grade(scores: list[list[float]], choices: list[list[str]],
          targets: list[dict[str, float]]) -> float:
    picks = [c[argmax(np.array(s) - np.logaddexp.reduce(s))] for s, c in
             zip(scores, choices, strict=True)]
    return float(np.mean([t[p] for p, t in zip(picks, targets, strict=True)]))


def run_lm_eval(python: str, folder: str, prompts: list[str], choices: list[list[str]],
                targets: list[dict[str, float]], threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.jsonl"
        with open(data, "w") as f:
            for p, c, t in zip(prompts, choices, targets, strict=True):
                label = max(range(len(c)), key=lambda i: t[c[i]])
                f.write(json.dumps({"prompt": p, "choices": c, "label": label}) + "\n")
        (Path(tmp) / "task.yaml").write_text(TASK_YAML.format(name="harness_bb_mc",
                                                              data=data))
        script = Path(tmp) / "run.py"
        script.write_text(LM_EVAL_SCRIPT)
        out = Path(tmp) / "out.json"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
               "HF_DATASETS_OFFLINE": "1"}
        proc = subprocess.run([python, str(script), folder, tmp, "harness_bb_mc",
                               str(threads), str(out)], capture_output=True, text=True,
                              env=env, timeout=7200)
        if proc.returncode != 0:
            return {"error": proc.stderr[-2000:]}
        return json.loads(out.read_text())


def main() -> None:
    # a speed benchmark scores every prompt: no answers from the log-likelihood memo
    os.environ["HARNESS_NO_LM_MEMO"] = "1"
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="intent_recognition")
    ap.add_argument("--shots", type=int, nargs="+", default=[0, 3])
    ap.add_argument("--examples", type=int, default=100)
    ap.add_argument("--naive-examples", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tasks-dir", default=os.environ.get("HARNESS_BIGBENCH_TASKS") or (
        str(ROOT.parent / "shared" / "bigbench" / "tasks")
        if (ROOT.parent / "shared" / "bigbench" / "tasks").is_dir() else None))
    ap.add_argument("--lm-eval-python", help="a Python that can import lm_eval")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ctx = RunContext(seed=0, cache_dir=default_cache())
    lm = CausalModel(CausalModel.Params(batch_size=8)).build(ctx, None)
    rows: list[dict[str, Any]] = []
    for shots in args.shots:
        prompts, choices, targets = prompts_and_choices(args.task, shots, args.examples,
                                                        args.tasks_dir)
        lm.loglikelihood(prompts[:2], choices[:2])  # warm-up
        ref, wall, cpu = timed(lm, "packed", prompts, choices)
        n = len(prompts)
        rows.append({"shots": shots, "method": "harness packed", "examples": n,
                     "ex_per_s": n / wall, "ex_per_cpu_s": n / cpu,
                     "grade": grade(ref, choices, targets), "max_abs_diff": 0.0})
        moved, wall, cpu = timed(lm, "packed", *lm_eval_split(prompts, choices))
        rows.append({"shots": shots, "method": "packed, lm-eval whitespace", "examples": n,
                     "ex_per_s": n / wall, "ex_per_cpu_s": n / cpu,
                     "grade": grade(moved, choices, targets), "max_abs_diff": None})
        for strategy, k in (("padded", n), ("naive", min(n, args.naive_examples))):
            got, wall, cpu = timed(lm, strategy, prompts[:k], choices[:k])
            diff = float(np.max(np.abs(np.array([x for r in got for x in r]) -
                                       np.array([x for r in ref[:k] for x in r]))))
            rows.append({"shots": shots, "method": f"{strategy} (batch "
                         f"{8 if strategy == 'padded' else 1})", "examples": k,
                         "ex_per_s": k / wall, "ex_per_cpu_s": k / cpu,
                         "grade": grade(got, choices[:k], targets[:k]),
                         "max_abs_diff": diff})
        if args.lm_eval_python:
            res = run_lm_eval(args.lm_eval_python, lm.info["folder"], prompts, choices,
                              targets, args.threads)
            if "error" in res:
                rows.append({"shots": shots, "method": "lm-eval", "error": res["error"]})
            else:
                rows.append({"shots": shots, "method": "lm-evaluation-harness (batch 8)",
                             "examples": n, "ex_per_s": n / res["wall_s"],
                             "ex_per_cpu_s": n / res["cpu_s"], "grade": res["acc"],
                             "max_abs_diff": None})
    lm.scoring = "packed"
    print(f"{args.task}, SmolLM2-135M float32, {args.threads} threads "
          f"(load average {os.getloadavg()[0]:.1f} at the end)")
    print(f"{'shots':>5} {'method':34} {'n':>5} {'ex/s':>8} {'ex/cpu-s':>9} "
          f"{'grade':>6} {'max|diff|':>9}")
    for r in rows:
        if "error" in r:
            print(f"{r['shots']:>5} {r['method']:34} error: {r['error'][-300:]}")
            continue
        diff = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"
        print(f"{r['shots']:>5} {r['method']:34} {r['examples']:>5} {r['ex_per_s']:>8.2f} "
              f"{r['ex_per_cpu_s']:>9.2f} {r['grade']:>6.3f} {diff:>9}")
    if args.out:
        Path(args.out).write_text(json.dumps({"task": args.task, "threads": args.threads,
                                              "rows": rows}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
