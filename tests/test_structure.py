"""The core's structure: no import circles, one expansion per run, a small public API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

import harness


def _runtime_imports(path: Path, package: str, root: str) -> set[str]:
    """Modules of ``root`` that ``path`` imports when it is imported: module-level imports,
    not those under ``if TYPE_CHECKING:`` and not those inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, (ast.Try,)):
                visit(node.body)
                for h in node.handlers:
                    visit(h.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith(root))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    mod = f"{base}.{node.module}" if node.module else base
                    names = [f"{mod}.{a.name}" for a in node.names]
                    found.add(mod)
                    found.update(names)
                elif node.module and node.module.startswith(root):
                    found.add(node.module)
                    found.update(f"{node.module}.{a.name}" for a in node.names)

    visit(tree.body)
    return found


def import_graph(folder: Path, root: str) -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for path in folder.rglob("*.py"):
        rel = path.relative_to(folder).with_suffix("")
        parts = [root, *rel.parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        graph[name] = {m for m in _runtime_imports(path, package, root)
                       if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle (a strongly connected component of more than one module).
    A package's ``__init__`` importing its own submodules is not a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def edges(v: str) -> set[str]:
        return {w for w in graph[v] if not w.startswith(v + ".")}

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges(v):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


@pytest.mark.parametrize("folder, root", [("harness", "harness"),
                                          ("adapters", "harness_adapters")])
def test_no_runtime_import_circles(folder: str, root: str) -> None:
    graph = import_graph(ROOT / folder, root)
    assert len(graph) > 10
    assert cycles(graph) == []


def test_the_circle_check_can_fail() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"p": {"p.x"}, "p.x": {"p"}}) == []  # a package and its own submodule


def test_the_pipeline_runs_one_way() -> None:
    """spec -> cells -> plan -> runner -> executors -> cli: no module imports a later one."""
    graph = import_graph(ROOT / "harness", "harness")
    order = ["spec", "cells", "plan", "runner", "executors", "cli"]
    for i, name in enumerate(order):
        later = {f"harness.{m}" for m in order[i + 1:]}
        assert not graph[f"harness.{name}"] & later, name


def test_public_api_is_small_and_importable() -> None:
    assert sorted(harness.__all__) == sorted([
        "Adapter", "CellResult", "ClassificationData", "Component", "Dataset",
        "HarnessError", "Method", "Metric", "Model", "OptimizerAdapter", "Params",
        "RunContext", "SelectionPolicy", "StepInfo", "TrainingObserver", "TrainingRun",
        "component_field", "hookimpl", "__version__"])
    for name in harness.__all__:
        assert getattr(harness, name) is not None


def test_a_run_expands_the_spec_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.cells
    import harness.plan
    from harness.executors import InProcessExecutor
    from harness.registry import get_registry
    from harness.runner import run_spec
    from harness.spec import load_spec

    spec_path = tmp_path / "s.yaml"
    spec_path.write_text("name: once\nseeds: [0, 1]\ndatasets: {iris: {use: sklearn/iris}}\n"
                         "models: {mlp: {use: torch/mlp, hidden: [4]}}\n"
                         "methods: {train: {use: torch/train-classifier, steps: 2}}\n"
                         "metrics: [accuracy]\nexpect: [{metric: accuracy, at_least: 0}]\n")
    spec = load_spec(spec_path, get_registry())
    calls = []
    real = harness.cells.expand

    def counting(s):  # type: ignore[no-untyped-def]
        calls.append(s.name)
        return real(s)

    monkeypatch.setattr(harness.plan, "expand", counting)
    monkeypatch.setattr(harness.cells, "expand", counting)
    report = run_spec(spec, tmp_path / "out", executor=InProcessExecutor(),
                      cache_dir=tmp_path / "cache")
    assert len(report.summary["cells"]) == 2 and report.exit_code == 0
    assert calls == ["once"]
