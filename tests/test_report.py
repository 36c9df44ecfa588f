"""`harness report`: the harness's plots (each claimed metric against each swept param, one
line per other axis) and an HTML page that fits the window, loaded in headless Chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import run_harness

from harness.plots import series, swept_axes
from harness.results import ResultsDir
from harness.stats import summarize

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def sweep_summary(root: Path) -> dict[str, Any]:
    """A results folder of a 2-dataset x lr x hidden sweep, 3 seeds, with one artifact."""
    cells, aggregates = [], {}
    for dataset in ("wine", "cancer"):
        for lr in (0.01, 0.001, 0.0001):
            for hidden in ([16], [64]):
                point = f"lr={lr:g},hidden=[{hidden[0]}]"
                group = f"{dataset}/mlp/train/{point}"
                accs = [0.9 - 200 * lr * (1 if hidden == [16] else 0.5) - 0.01 * s
                        for s in range(3)]
                aggregates[group] = {"accuracy": summarize(accs),
                                     # a wide table: long metric names nobody claimed
                                     **{f"unclaimed_metric_with_a_long_name_{i}":
                                        summarize([float(i)]) for i in range(14)}}
                for seed in range(3):
                    cells.append({"name": f"{group}/seed={seed}", "group": group,
                                  "id": f"{dataset}-{lr}-{hidden[0]}-{seed}", "status": "ok",
                                  "axes": {"dataset": dataset, "model": "mlp",
                                           "method": "train", "point": point, "lr": lr,
                                           "hidden": hidden},
                                  "metrics": {"accuracy": accs[seed]}})
    summary = {"spec": "sweep", "description": "a sweep " * 40, "cells": cells,
               "aggregates": aggregates, "report": [],
               "claims": [{"id": "acc", "text": "accuracy >= 0.5 " + "and more words " * 30,
                           "metric": "accuracy", "quantity": "value", "passed": True,
                           "status": "PASS", "groups": [{"group": g, "value": 0.8,
                                                         "lhs_mean": 0.8} for g in aggregates]}]}
    ResultsDir(root).write_summary(summary)
    art = root / "cells" / cells[0]["id"] / "artifacts"
    art.mkdir(parents=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(12, 3))  # wider than the window: must shrink to fit
    ax.plot([0, 1], [0, 1])
    fig.savefig(art / "curve.png")
    plt.close(fig)
    return summary


def test_series_one_line_per_other_axis(tmp_path: Path) -> None:
    summary = sweep_summary(tmp_path)
    assert swept_axes(summary) == ["lr", "hidden"]
    lines = series(summary, "lr", "accuracy")
    assert sorted(lines) == ["cancer / mlp / train / hidden=[16]",
                             "cancer / mlp / train / hidden=[64]",
                             "wine / mlp / train / hidden=[16]", "wine / mlp / train / hidden=[64]"]
    assert sorted(v for v, _ in lines["wine / mlp / train / hidden=[16]"]) == [0.0001, 0.001, 0.01]
    assert set(series(summary, "hidden", "accuracy")) >= {"wine / mlp / train / lr=0.01"}


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless Chromium here (Debian: apt-get install chromium; "
                ".ci/run installs it)")


def test_report_plots_and_page_in_headless_chromium(tmp_path: Path) -> None:
    out = tmp_path / "r"
    sweep_summary(out)
    res = run_harness("report", str(out))
    assert res.returncode == 0, res
    plots = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert plots == ["accuracy-vs-hidden.png", "accuracy-vs-lr.png"]  # claimed metric only
    page = (out / "report.html").read_text()
    assert "<table id='claims'>" in page and "class='scroll'" in page
    n_images = page.count("<img ")
    assert n_images == 3  # two harness plots, one cell artifact
    browser = _browser()
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--window-size=800,600", "--virtual-time-budget=5000",
                           "--dump-dom", (out / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=180)
    dom = proc.stdout
    assert "<body" in dom, proc.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    images = json.loads(html.unescape(attrs["data-images"]))
    assert len(images) == n_images
    assert all(w > 0 and h > 0 for _, w, h in images), images  # every image decoded
    assert attrs["data-fit"] == "true"  # no horizontal scroll of the page at 800 px
    assert re.search(r'<table id="claims">.*PASS', dom, re.S)
