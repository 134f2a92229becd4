"""The runtime imports nothing heavy, and an edge service that only decides pays for no HTTP stack:
checked in a fresh interpreter, where sys.modules tells the truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from router_runtime.artifact import write_artifact

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "artifact_format_1"
HEAVY = ("polars", "prefect", "catboost", "pyarrow", "pandas", "numpy")
# What serving needs and deciding must not load: the event loop, TLS, sockets, the HTTP modules, the
# ASGI stack, and the runtime's own serving layer (its package and the old module paths).
SERVING = ("asyncio", "ssl", "socket", "selectors", "http", "email", "concurrent", "starlette", "uvicorn",
           "sse_starlette", "llama_cpp", "opentelemetry")
SERVING_MODULES = ("router_runtime.serving", "router_runtime.server", "router_runtime.backends",
                   "router_runtime.llama_backend", "router_runtime.openai_api", "router_runtime.metrics",
                   "router_runtime.calibration")

REPORT = (
    "import json, sys\n"
    "heavy = set(json.loads(sys.argv[1]))\n"
    "def loaded():\n"
    "    return sorted({m.split('.')[0] for m in sys.modules} & heavy)\n"
)


def fresh(prelude: str, body: str, *args: str) -> dict:
    """Run ``prelude + body`` in a fresh interpreter; its last printed line, as JSON."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", prelude + body, *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(body: str, *args: str) -> dict:
    return fresh(REPORT, body, json.dumps(HEAVY), *args)


def small_artifact(root: Path) -> Path:
    doc = {
        "format_version": 1, "version": "",
        "feature_spec": {"version": 1, "max_chars": 4096, "features": [
            {"name": "chars", "op": "char_count", "params": {}},
            {"name": "log_chars", "op": "log1p", "params": {"of": "chars"}},
        ]},
        "pool": [{"name": "a", "capabilities": ["chat"], "cost": {"intercept": 0.0, "per_char": 1e-6}},
                 {"name": "b", "capabilities": ["chat"], "cost": {"intercept": 0.0, "per_char": 2e-6}}],
        "quality_model": {"kind": "oblivious_trees", "inputs": ["chars", "model__a", "model__b"],
                          "tree_depth": [1], "split_input": [1], "split_border": [0.5],
                          "leaf_values": [0.2, 0.8], "scale": 1.0, "bias": 0.0},
        "calibration": {"kind": "clip", "low": 0.0, "high": 1.0},
        "policy": {"cost_weight": 0.1, "cost_scale": 1e-3},
    }
    return write_artifact(root, doc, {})


def test_the_probe_sees_a_heavy_import():
    # The check itself must be able to fail: importing numpy shows up.
    assert run("import numpy\nprint(json.dumps({'loaded': loaded()}))")["loaded"] == ["numpy"]


def test_import_router_and_load_artifact_pull_in_nothing_heavy(tmp_path):
    path = small_artifact(tmp_path / "reg")
    got = run(
        "import router_runtime\n"
        "after_import = loaded()\n"
        "from router_runtime import Router, load_artifact\n"
        "r = Router(None, use_numpy=False)\n"
        "art = load_artifact(sys.argv[2])\n"
        "print(json.dumps({'after_import': after_import, 'after_load': loaded(), 'version': art.version,\n"
        "                  'fallback': r.artifact_version is None}))\n",
        str(path),
    )
    assert got == {"after_import": [], "after_load": [], "version": path.name, "fallback": True}


def test_deciding_without_numpy_pulls_in_nothing_heavy(tmp_path):
    path = small_artifact(tmp_path / "reg")
    got = run(
        "from router_runtime import Router, load_artifact\n"
        "r = Router(load_artifact(sys.argv[2]), use_numpy=False)\n"
        "d = r.decide('hello there')\n"
        "print(json.dumps({'loaded': loaded(), 'model': d.model, 'version': d.artifact_version}))\n",
        str(path),
    )
    assert got["loaded"] == [] and got["model"] in ("a", "b") and got["version"] == path.name


def test_router_with_numpy_imports_numpy():
    pytest.importorskip("numpy")
    got = run(
        "from router_runtime import Router\n"
        "before = loaded()\n"
        "Router(None, use_numpy=True)\n"
        "print(json.dumps({'before': before, 'after': loaded()}))\n"
    )
    assert got == {"before": [], "after": ["numpy"]}


PROBE = (
    "import json, sys\n"
    "roots, own = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
    "def serving_loaded():\n"
    "    return sorted(m for m in sys.modules if m.split('.')[0] in roots\n"
    "                  or any(m == o or m.startswith(o + '.') for o in own))\n"
)


def probe(body: str, *args: str) -> dict:
    return fresh(PROBE, body, json.dumps(SERVING), json.dumps(SERVING_MODULES), *args)


def test_the_serving_probe_sees_the_serving_stack():
    # The probe must be able to fail: touching the server's name loads the serving layer and asyncio.
    got = probe("import router_runtime\nrouter_runtime.create_app\nprint(json.dumps(serving_loaded()))")
    assert "asyncio" in got and "router_runtime.serving" in got


@pytest.mark.parametrize("engine", ["python", "auto"])
def test_import_and_one_decision_load_no_serving_stack(engine):
    got = probe(
        "import router_runtime\n"
        "after_import = serving_loaded()\n"
        "r = router_runtime.Router(router_runtime.load_artifact(sys.argv[3]), engine=sys.argv[4])\n"
        "d = r.decide('def f(x): import os')\n"
        "print(json.dumps({'after_import': after_import, 'after_decide': serving_loaded(), 'model': d.model}))\n",
        str(FIXTURE), engine,
    )
    assert got == {"after_import": [], "after_decide": [], "model": "big"}
