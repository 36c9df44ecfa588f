"""An optional MLflow logger: one MLflow run per harness cell (params, metrics, artifacts).

Off unless the user turns it on, from their environment or the command line only:

    HARNESS_MLFLOW_URI=file:///home/me/mlruns harness run specs/hnn.yaml
    harness run specs/hnn.yaml --mlflow file:///home/me/mlruns      # the same

A spec cannot turn it on or point it anywhere: where data goes is the user's choice, so a
spec someone sent you never uploads your results to a server. Any tracking URI MLflow
takes works (a local folder or ``file:`` URI, a server the user names); a local folder is
MLflow's file store (``MLFLOW_ALLOW_FILE_STORE=true`` is set for it unless already set).
``HARNESS_MLFLOW_EXPERIMENT`` names the experiment (default: the spec's name).

Each finished cell of a run (reused cells too, once) becomes an MLflow run named after the
cell, tagged ``harness.cell_id``, ``harness.identity``, ``harness.spec``,
``harness.group``, ``harness.status``; params are the cell's resolved components and
sweep values, flattened (``method.optimizer.lr``); metrics are the record's metrics; the
artifacts are ``record.json``, ``examples.jsonl`` and the cell's ``artifacts/`` folder.
A cell already logged with the same identity is not logged twice. Needs the ``mlflow``
extra: ``pip install 'harness-bench[mlflow]'``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from .errors import HarnessError
from .hookspecs import hookimpl

ENV_URI = "HARNESS_MLFLOW_URI"
ENV_EXPERIMENT = "HARNESS_MLFLOW_EXPERIMENT"
MAX_PARAM = 500  # characters of a param value (MLflow's limit is larger; keep it readable)


def tracking_uri() -> str | None:
    uri = os.environ.get(ENV_URI, "").strip()
    return uri or None


def _is_local(uri: str) -> bool:
    return uri.startswith("file:") or "://" not in uri


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts as ``a.b.c`` keys; lists and scalars as their JSON text."""
    out: dict[str, str] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif prefix:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        out[prefix] = text[:MAX_PARAM]
    return out


def cell_params(record: dict[str, Any]) -> dict[str, str]:
    cell = record.get("cell", {})
    params = flatten({k: cell.get(k) for k in ("dataset", "model", "method")})
    params.update(flatten(cell.get("sweep", {}), "sweep"))
    params.update({"seed": str(cell.get("seed")), "spec_seed": str(cell.get("spec_seed")),
                   "metrics": ",".join(m.get("use", "?") for m in cell.get("metrics", []))})
    params.update(flatten({k: v for k, v in record.get("settings", {}).items()}, "settings"))
    return params


def _client(uri: str) -> Any:
    if _is_local(uri):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise HarnessError(f"{ENV_URI} is set but the mlflow package is not installed",
                           hint="pip install 'harness-bench[mlflow]', or unset "
                           f"{ENV_URI} (or drop --mlflow)") from None
    return MlflowClient(tracking_uri=uri)


def log_cell(client: Any, experiment_id: str, record: dict[str, Any], cell_dir: Path) -> str:
    """One MLflow run for one cell record; returns its run id."""
    from mlflow.entities import Metric, Param
    cell = record.get("cell", {})
    tags = {"harness.cell_id": record.get("cell_id", ""),
            "harness.identity": record.get("identity", ""),
            "harness.spec": str(cell.get("spec", "")), "harness.group": str(cell.get("group", "")),
            "harness.status": str(record.get("status", ""))}
    run = client.create_run(experiment_id, run_name=str(cell.get("name", record.get("cell_id"))),
                            tags=tags)
    run_id = run.info.run_id
    metrics = [Metric(k, float(v), 0, 0) for k, v in record.get("metrics", {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    timings = record.get("timings", {})
    metrics += [Metric(f"harness.{k}", float(v), 0, 0) for k, v in timings.items()
                if isinstance(v, (int, float))]
    params = [Param(k[:250], v) for k, v in sorted(cell_params(record).items())]
    for i in range(0, max(len(params), 1), 100):  # MLflow takes at most 100 params a batch
        client.log_batch(run_id, metrics=metrics if i == 0 else [], params=params[i:i + 100])
    for name in ("record.json", "examples.jsonl"):
        if (cell_dir / name).is_file():
            client.log_artifact(run_id, str(cell_dir / name))
    art = cell_dir / "artifacts"
    if art.is_dir() and not art.is_symlink() and any(art.iterdir()):
        client.log_artifacts(run_id, str(art), artifact_path="artifacts")
    client.set_terminated(run_id, "FINISHED" if record.get("status") == "ok" else "FAILED")
    return str(run_id)


def log_run(summary: dict[str, Any], out_dir: Path, uri: str) -> int:
    """Log every cell of a finished harness run not yet logged; the number logged."""
    from .results import ResultsDir
    client = _client(uri)
    name = os.environ.get(ENV_EXPERIMENT) or str(summary.get("spec", "harness"))
    if summary.get("control"):
        name += f"/control/{summary['control']}"
    experiment = client.get_experiment_by_name(name)
    experiment_id = (experiment.experiment_id if experiment is not None
                     else client.create_experiment(name))
    logged = {r.data.tags.get("harness.identity") for r in client.search_runs(
        [experiment_id], max_results=50000)}
    results = ResultsDir(out_dir)
    count = 0
    for cell in summary.get("cells", []):
        record = results.read_record(cell["id"])
        if record is None or record.get("identity") in logged:
            continue
        log_cell(client, experiment_id, record, results.cell_dir(cell["id"]))
        count += 1
    return count


@hookimpl
def harness_run_finished(summary: dict[str, Any], out_dir: str) -> None:
    uri = tracking_uri()
    if uri is None:
        return
    count = log_run(summary, Path(out_dir), uri)
    shown = uri if _is_local(uri) else uri.split("@")[-1]  # no credentials in the output
    print(f"mlflow: logged {count} cell(s) to {shown}", file=sys.stderr)
