"""Shared fixtures.  Prefect gets its own PREFECT_HOME per session (never the user's), and the
Prefect test harness (about 12 s to start) is started at most once per session."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
SHARED_DATA = ROOT.parent / "shared" / "data"

_prefect_home = tempfile.mkdtemp(prefix="zeta-prefect-home-")
os.environ["PREFECT_HOME"] = _prefect_home
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")  # loaded CI machines start it slowly
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def wait_for(pred, timeout: float = 10.0) -> bool:
    """Poll ``pred`` until it holds or ``timeout`` seconds pass (a background thread's effect)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip when the shared data is not mounted."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available at {p}")
    return p


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def sample_table():
    from flows.importers import import_routeprofile

    return import_routeprofile(SAMPLE / "routeprofile")


@pytest.fixture(scope="session")
def demo_pool():
    from router_runtime import load_pool

    return load_pool(SAMPLE / "pool.toml")


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory, sample_table, demo_pool):
    """A small but real artifact (CatBoost, 60 trees) trained on the sample, written and marked CURRENT."""
    from flows.export import cost_scale, export_artifact, typical_chars
    from flows.training import TrainParams, build_pool, train_quality_model
    from router_runtime import default_feature_spec, set_current

    reg = tmp_path_factory.mktemp("registry")
    pool = build_pool(sample_table, demo_pool)
    model = train_quality_model(sample_table, default_feature_spec(), pool, TrainParams(iterations=60, depth=4))
    scale = cost_scale(pool, sample_table["model"].unique().to_list(), sample_table["query"].str.len_chars().to_numpy())
    path = export_artifact(reg, model, pool, cost_weight=0.1, scale=scale, manifest={"training": {"rows": model.rows}},
                           chars=typical_chars(sample_table["query"].str.len_chars().to_numpy()))
    set_current(reg, path.name)
    return reg


@pytest.fixture
def reg(tmp_path) -> Path:
    """Where a test's artifact registry goes (created by the first write)."""
    return tmp_path / "registry"


@pytest.fixture
def vdir(reg) -> Path:
    """One small artifact version written into ``reg`` (tests/artifact_docs.make_doc)."""
    from artifact_docs import make_doc
    from router_runtime.artifact import write_artifact

    return write_artifact(reg, make_doc(), {})
