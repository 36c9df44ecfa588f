"""A loadable plugin whose every run-time hook raises."""

import harness


class Flaky(harness.Method):
    """Loads fine; its hooks do not."""

    name = "fault/flaky"


@harness.hookimpl
def harness_adapters():
    return [Flaky]


@harness.hookimpl
def harness_executors():
    raise RuntimeError("executors hook is broken")


@harness.hookimpl
def harness_cell_finished(record):
    raise RuntimeError("cell_finished hook is broken")


@harness.hookimpl
def harness_run_finished(summary, out_dir):
    raise SystemExit(3)


@harness.hookimpl
def harness_report_sections(summary, out_dir):
    raise ValueError("report_sections hook is broken")
