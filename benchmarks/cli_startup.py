"""Start-up time of the ``harness`` command: wall and CPU seconds per command.

Each command runs ``--repeat`` times in a fresh interpreter (``python -m harness ...``);
the figures are medians, with the ratio to ``python -c pass`` measured in the same run
(so a loaded machine shows up in the baseline too). The plugin manifest is warmed first;
``--no-manifest`` measures with it off (every plugin imported, as before the manifest).
The targets: ``--help`` under 0.5 s and ``validate specs/digits-mlp.yaml`` under 1.5 s.

    python benchmarks/cli_startup.py [--repeat 5] [--no-manifest]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    ("baseline: python -c pass", ["-c", "pass"]),
    ("harness --help", ["-m", "harness", "--help"]),
    ("harness list", ["-m", "harness", "list"]),
    ("harness validate specs/digits-mlp.yaml", ["-m", "harness", "validate",
                                                 "specs/digits-mlp.yaml"]),
    ("harness describe torch/mlp", ["-m", "harness", "describe", "torch/mlp"]),
]


def measure(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; CPU is user + system of the child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-manifest", action="store_true",
                        help="HARNESS_NO_MANIFEST=1: import every plugin, as before")
    opts = parser.parse_args()
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if opts.no_manifest:
        env["HARNESS_NO_MANIFEST"] = "1"
    measure(["-m", "harness", "list"], env)  # warm the manifest and the OS file cache
    print(f"{'command':42s} {'wall s':>8s} {'cpu s':>8s} {'wall x':>8s} {'cpu x':>8s}"
          f"   (median of {opts.repeat}; x = ratio to the baseline)")
    base: tuple[float, float] | None = None
    for label, args in COMMANDS:
        runs = [measure(args, env) for _ in range(opts.repeat)]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        if base is None:
            base = (wall, max(cpu, 1e-3))
        print(f"{label:42s} {wall:8.3f} {cpu:8.3f} {wall / base[0]:8.1f} {cpu / base[1]:8.1f}")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs; "
          f"manifest {'off' if opts.no_manifest else 'on'}")


if __name__ == "__main__":
    main()
