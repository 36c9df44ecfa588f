"""Run a harness spec on a SLURM (or PBS) cluster through dask-jobqueue.

    python examples/slurm_cluster.py specs/loss-prioritization.yaml --workers 8
    python examples/slurm_cluster.py SPEC --workers 4 --pbs -- --seeds 0 --out results/x

Run it on a login node, in the environment the jobs use (the same harness-bench and
plugins, see docs/distributed.md). It starts a Dask scheduler in this process, submits
``--workers`` batch jobs that each run one single-thread Dask worker, runs
``harness run SPEC --dask-address <scheduler>`` (arguments after ``--`` go to it), and
cancels the jobs at the end. Results are written here, under ``--out``; the jobs need
no access to this folder. Edit ``SLURM`` / ``PBS`` below for your site: queue, account,
memory, walltime, and the prologue that activates the environment on a compute node.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

# One worker per job, one thread per worker: cells run one at a time per process.
SLURM: dict[str, Any] = {
    "queue": "cpu",                       # the partition (#SBATCH -p)
    "account": None,                      # your allocation, if the site needs one (-A)
    "cores": 1,
    "processes": 1,
    "memory": "4GB",
    "walltime": "02:00:00",
    "job_extra_directives": [],           # more #SBATCH lines, e.g. ["--constraint=avx2"]
    "python": "python",                   # the job's python: the prologue's environment
    "job_script_prologue": [
        "source ~/venvs/harness/bin/activate",        # the environment with the plugins
        "export HARNESS_CACHE=${TMPDIR:-/tmp}/harness-cache-$SLURM_JOB_ID",
        "export PYTHONHASHSEED=0 MPLBACKEND=Agg OMP_NUM_THREADS=1",
    ],
    "local_directory": "${TMPDIR:-/tmp}",  # the workers' scratch folders (node-local)
    "log_directory": "dask-logs",
}

# The same for PBS/Torque: resource_spec instead of a partition.
PBS: dict[str, Any] = {
    **{k: v for k, v in SLURM.items() if k not in ("account", "job_extra_directives")},
    "queue": "workq",
    "resource_spec": "select=1:ncpus=1:mem=4GB",
    "job_script_prologue": [line.replace("$SLURM_JOB_ID", "$PBS_JOBID")
                            for line in SLURM["job_script_prologue"]],
}


def make_cluster(pbs: bool = False) -> Any:
    """The dask-jobqueue cluster of this file's configuration (starts its scheduler)."""
    from dask_jobqueue import PBSCluster, SLURMCluster
    return PBSCluster(**PBS) if pbs else SLURMCluster(**SLURM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec")
    parser.add_argument("--workers", type=int, default=4, help="batch jobs (one worker each)")
    parser.add_argument("--pbs", action="store_true", help="PBS/Torque instead of SLURM")
    parser.add_argument("harness_args", nargs="*", help="after --: more `harness run` options")
    args = parser.parse_args(argv)
    from harness.cli import main as harness_main
    # queued jobs can take a while to start: wait up to 30 minutes for the first worker
    os.environ.setdefault("HARNESS_DASK_WAIT_S", "1800")
    cluster = make_cluster(args.pbs)
    try:
        cluster.scale(jobs=args.workers)
        print(f"scheduler {cluster.scheduler_address}; job script:\n{cluster.job_script()}",
              file=sys.stderr)
        return harness_main(["run", args.spec, "--dask-address", cluster.scheduler_address,
                             *args.harness_args])
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
