"""The production flow on a real Dask cluster (distributed.LocalCluster, worker processes) through
prefect-dask: ingest units run on the workers, and the curated store, the quarantine and the
promotion are the same as with the default in-process runner."""

from __future__ import annotations

import pytest

from conftest import SAMPLE

pytest.importorskip("prefect_dask")
distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_pipeline_on_a_dask_local_cluster_matches_the_default_runner(tmp_path):
    from prefect_dask import DaskTaskRunner

    from flows.importers import import_dcrouter
    from flows.ingest import read_curated
    from flows.production import run_pipeline
    from flows.synth import simulate_logs_at_scale
    from router_runtime import current_version

    logs = tmp_path / "logs"
    simulate_logs_at_scale(import_dcrouter(SAMPLE / "dcrouter"), logs, rows=3000, days=3, seed=2)
    (logs / "broken.jsonl").write_bytes(b'{"schema_version": 1}\nnot json\n\xff\xfe\n')
    kw = dict(iterations=30, settle_seconds=0, train_budget=1500, eval_budget=400)

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        flow = run_pipeline.with_options(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
        s = flow(logs=str(logs), registry=str(tmp_path / "reg"), curated=str(tmp_path / "cur"), **kw)
        with distributed.Client(cluster) as client:
            prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    assert any("ingest_unit" in p for p in prefixes), prefixes  # the units ran on the cluster's workers
    assert (s["ingested"], s["quarantined"], s["duplicates"]) == (3000, 3, 0)
    assert s["promoted"] and current_version(tmp_path / "reg") == s["candidate_version"]

    local = run_pipeline(logs=str(logs), registry=str(tmp_path / "reg2"), curated=str(tmp_path / "cur2"), **kw)
    assert (local["ingested"], local["quarantined"]) == (s["ingested"], s["quarantined"])
    a, b = read_curated(tmp_path / "cur"), read_curated(tmp_path / "cur2")
    assert a.equals(b)
