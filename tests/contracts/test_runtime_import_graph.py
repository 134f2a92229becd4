"""No import cycles in router_runtime/: the module-level import graph is acyclic, each module imports
on its own in a fresh interpreter, and the few imports made at call time (to keep a module light or
to build on a lower layer) are pinned here so that a new one is a decision, not an accident."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "router_runtime"


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        parts = p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


MODULES = _modules()


def _target(module: str, path: Path, node: ast.ImportFrom) -> str:
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def _imports(module: str, path: Path) -> tuple[set[str], set[str]]:
    """(module-level, call-time) imports of router_runtime modules by ``module``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top, deferred = set(), set()

    def visit(node, into):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, deferred)
                continue
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # never executed
            if isinstance(child, ast.ImportFrom) and child.level:
                target = _target(module, path, child)
                names = {target} | {f"{target}.{a.name}" for a in child.names if f"{target}.{a.name}" in MODULES}
                into.update(n for n in names if n in MODULES)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in child.names] if isinstance(child, ast.Import) else [child.module or ""]
                into.update(m for m in mods if m in MODULES)
            visit(child, into)

    visit(tree, top)
    return top - {module}, deferred - {module}


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}

# Imports made at call time, each with its reason.
DEFERRED = {
    # set_current verifies a version by loading it; artifact.py builds on the registry's layout.
    ("router_runtime.registry", "router_runtime.artifact"),
    # the compiled engine (and its C extension) is loaded only when that engine is asked for
    ("router_runtime.engines", "router_runtime.compiled"),
    ("router_runtime.compiled", "router_runtime"),  # `from . import _speedups`, the C extension itself
    # a server is assembled from the core only when `zeta serve` builds one
    ("router_runtime.serving.http", "router_runtime.logger"),
    ("router_runtime.serving.http", "router_runtime.pool"),
    ("router_runtime.serving.http", "router_runtime.router"),
    ("router_runtime.serving.http", "router_runtime.serving.llama"),
    ("router_runtime.serving.calibration", "router_runtime.serving.llama"),
}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = walk(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = walk(m)
            if found:
                return found
    return None


def test_the_walk_finds_the_imports_it_should():
    assert "router_runtime.registry" in GRAPH["router_runtime.artifact"][0]
    assert "router_runtime.serving.service" in GRAPH["router_runtime.serving"][0]
    assert "router_runtime.serving.http" in GRAPH["router_runtime.server"][0]


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_the_module_level_import_graph_has_no_cycle():
    assert _cycle({m: top for m, (top, _) in GRAPH.items()}) is None


def test_call_time_imports_are_the_pinned_ones():
    found = {(m, n) for m, (_, deferred) in GRAPH.items() for n in deferred}
    assert found == DEFERRED


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_imports_alone_in_a_fresh_interpreter(module):
    out = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
