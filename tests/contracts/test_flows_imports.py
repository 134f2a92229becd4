"""flows/ has no import cycles, new code imports the new rooms (not the compatibility aliases), and
importing it has no side effects: ``import flows.cli`` loads neither Prefect nor Polars, and importing
any flows module reads no task-runner setting, builds no task runner and writes nothing."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "flows"
# Old paths kept as aliases of their new modules (see CHANGELOG.md); nothing in flows/ imports them.
SHIMS = {"flows.evaluation", "flows.metrics", "flows.baselines", "flows.benchmark_eval", "flows.ope",
         "flows.drift", "flows.pipeline", "flows.feedback"}


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """flows modules imported at module level (inside functions: lazy on purpose, not part of the graph)."""
    mod = _module(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("flows")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("flows"):
                continue
            for a in node.names:  # `from . import sources` imports a module
                sub = f"{target}.{a.name}"
                out.add(sub if (ROOT / (sub.replace(".", "/") + ".py")).exists() else target)
    return out


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) - {_module(p)} for p in sorted(FLOWS.rglob("*.py"))}


def test_no_import_cycles_in_flows():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if n in SHIMS:
                continue
            if state.get(n) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m)
    assert len(graph) > 25  # the walk saw the package, not an empty glob


def test_flows_code_imports_new_rooms_not_the_aliases():
    offenders = {m: sorted(deps & SHIMS) for m, deps in _graph().items() if deps & SHIMS and m not in SHIMS}
    assert offenders == {}


def _run(code: str, cwd: Path, **env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_flows_cli_loads_no_prefect_and_no_polars(tmp_path):
    r = _run("import json, sys, flows.cli; "
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'polars', 'catboost'})))",
             tmp_path)
    assert r == []


def test_importing_every_flows_module_has_no_side_effects(tmp_path):
    modules = sorted(_graph())
    code = ("import json, importlib, os, sys\n"
            "before = dict(os.environ)\n"
            f"for m in {modules!r}:\n"
            "    importlib.import_module(m)\n"
            "from flows.production import run_pipeline\n"
            "print(json.dumps({'runner': type(run_pipeline.task_runner).__name__,\n"
            "                  'env_changed': sorted(k for k in set(os.environ) | set(before)\n"
            "                                        if k.startswith(('ZETA_', 'PREFECT_'))\n"
            "                                        and os.environ.get(k) != before.get(k))}))\n")
    # A runner setting that cannot be built: reading it at import time would raise.  (Polars sets its
    # allocator's variable on import: only our own and Prefect's settings are watched.)
    r = _run(code, tmp_path, ZETA_TASK_RUNNER="no-such-runner", ZETA_WORKERS="not-a-number")
    assert r == {"runner": "_RunnerFromEnv", "env_changed": []}
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_production_runner_is_chosen_when_a_run_starts(monkeypatch):
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.production import run_pipeline
    from router_runtime.errors import ContractError

    monkeypatch.setenv("ZETA_TASK_RUNNER", "threads")
    monkeypatch.setenv("ZETA_WORKERS", "3")
    runner = run_pipeline.task_runner.duplicate()
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 3
    monkeypatch.setenv("ZETA_TASK_RUNNER", "no-such-runner")
    with pytest.raises(ContractError, match="task_runner"):
        run_pipeline.task_runner.duplicate()
