"""The production loop under prefect_test_harness: logs → ingest → train → off-policy gate → promote,
the scheduled deployment, and the end-to-end acceptance run on the real data of ../shared/data."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import polars as pl
import pytest

from conftest import ROOT, SAMPLE, shared_data
from flows.cli import main
from flows.evaluate.holdout import quality_matrix
from flows.importers import import_dcrouter
from flows.logs import simulate_logs
from flows.production import run_pipeline
from router_runtime import ModelInfo, Router, current_version, load_artifact
from router_runtime.registry import history

pytestmark = pytest.mark.usefixtures("prefect_harness")

SUMMARY_KEYS = {"ingested", "feedback", "feedback_unmatched", "quarantined", "duplicates", "candidate_version",
                "champion_version", "promoted", "reason", "ope"}


@pytest.fixture(scope="module")
def dc_sample():
    return import_dcrouter(SAMPLE / "dcrouter")


def test_two_cycles_promote_then_gate(tmp_path, dc_sample, capsys):
    logs, reg = tmp_path / "logs", tmp_path / "reg"
    train = dc_sample.filter(pl.col("split") == "train")
    simulate_logs(train, logs, seed=0)
    with open(logs / "broken.jsonl", "wb") as f:  # bad lines never stop a cycle
        f.write(b'{"schema_version": 1}\nnot json\n\xff\xfe\n')
    answers = [json.loads(x) for x in (logs / "simulated-uniform-seed0.jsonl").read_text().splitlines()[:5]]
    with open(logs / "feedback.jsonl", "w") as f:  # a user's verdict on five answers: it reaches the data
        f.writelines(json.dumps({**a, "ts": "2026-03-01T00:00:00Z", "quality": 0.0, "quality_source": "user"})
                     + "\n" for a in answers)
    s1 = run_pipeline(logs=str(logs), registry=str(reg), iterations=60, settle_seconds=0)
    assert SUMMARY_KEYS <= set(s1) and set(s1["ope"]) >= {"ips", "snips", "dr", "ci_low", "ci_high"}
    assert (s1["ingested"], s1["quarantined"], s1["duplicates"]) == (1200, 3, 0)
    assert (s1["feedback"], s1["feedback_unmatched"]) == (5, 0)
    from flows.ingest import read_curated
    fed = read_curated(s1["curated"]).filter(pl.col("decision_id").is_in([a["decision_id"] for a in answers]))
    assert len(fed) == 5 and set(fed["quality_source"]) == {"user"} and set(fed["quality"]) == {0.0}
    assert s1["promoted"] and s1["champion_version"] is None and "no champion" in s1["reason"]
    assert current_version(reg) == s1["candidate_version"]
    assert history(reg)[-1]["reason"] == s1["reason"]
    man = load_artifact(reg).manifest
    assert man["promotion"]["promoted"] is True and man["evaluation"]["candidate"]["n"] > 0
    assert man["training"]["weighting"] == "inverse propensity"
    report = json.loads((reg / "reports" / f"{s1['candidate_version']}.json").read_text())
    assert report["decision"]["reason"] == s1["reason"] and report["evaluation"]["drift"]["features"]

    # Second cycle: the same logs again (all duplicates) plus traffic logged by the champion itself.
    simulate_logs(train, logs, seed=1, policy="artifact", artifact=str(reg), exploration_rate=0.3,
                  start=datetime(2026, 2, 1, tzinfo=timezone.utc))
    assert main(["pipeline", "--logs", str(logs), "--registry", str(reg), "--iterations", "60",
                 "--settle-seconds", "0", "--json", "--progress"]) == 0
    out = capsys.readouterr()
    s2 = json.loads(out.out)  # --progress draws on stderr only: stdout stays one JSON document
    assert "training the quality model (trees) [" in out.err and "60/60 100%" in out.err
    assert s2["ingested"] == 1200 and s2["duplicates"] == 0 and s2["champion_version"] == s1["candidate_version"]
    diff = s2["difference"]
    assert diff["ci_low"] <= diff["diff"] <= diff["ci_high"]
    # Whatever the gate decided, it is explained, recorded, and CURRENT is consistent with it.
    assert s2["reason"] and (current_version(reg) == s2["candidate_version"]) == s2["promoted"]
    assert load_artifact(reg / "versions" / s2["candidate_version"]).manifest["promotion"]["reason"] == s2["reason"]


def test_too_little_data_is_reported_not_raised(tmp_path, dc_sample):
    logs = tmp_path / "logs"
    simulate_logs(dc_sample.head(9 * 10), logs, seed=0)
    s = run_pipeline(logs=str(logs), registry=str(tmp_path / "reg"), settle_seconds=0)
    assert s["candidate_version"] is None and not s["promoted"] and "too few labeled outcomes" in s["reason"]
    assert s["refusal"]["code"] == "too_few_labels"


def test_the_deployment_is_registered_with_its_schedule(tmp_path):
    from prefect.client.orchestration import get_client

    from flows.deploy import pipeline_deployment, register

    dep = pipeline_deployment(logs=str(tmp_path / "logs"), registry=str(tmp_path / "reg"), cron="15 2 * * *")
    dep_id = register(dep)
    with get_client(sync_client=True) as client:
        d = client.read_deployment(dep_id)
    assert d.name == "zeta-nightly" and d.parameters["registry"] == str(tmp_path / "reg")
    assert [s.schedule.cron for s in d.schedules] == ["15 2 * * *"]
    assert d.schedules[0].schedule.timezone == "UTC" and d.schedules[0].active


def test_prefect_yaml_points_at_the_flow_with_a_schedule():
    import yaml

    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    dep = doc["deployments"][0]
    path, fn = dep["entrypoint"].split(":")
    assert (ROOT / path).exists() and fn == "run_pipeline"
    from prefect.flows import load_flow_from_entrypoint

    assert load_flow_from_entrypoint(str(ROOT / dep["entrypoint"])).name == "zeta-pipeline"
    assert dep["schedules"][0]["cron"] and dep["work_pool"]["name"]


@pytest.mark.slow
def test_end_to_end_on_real_data_beats_the_logging_policy(tmp_path):
    """Acceptance of the production loop: uniform logs of the real LLMRouter train set → ingest →
    train on the bandit log → off-policy estimate → promote → a running router reloads the new
    version → its decisions on the held-out test queries beat the logging policy's."""
    table = import_dcrouter(shared_data("llmrouter_dcrouter"))
    train = table.filter(pl.col("split") == "train")
    test = table.filter(pl.col("split") == "test")
    logs, reg = tmp_path / "logs", tmp_path / "reg"
    simulate_logs(train, logs, seed=0)

    # A runtime already serving (by rules: the registry is empty), watching the registry.
    pool = [ModelInfo(name) for name in sorted(train["model"].unique().to_list())]
    router = Router.load(reg, pool=pool, reload_interval_ms=10, use_numpy=True)
    assert router.decide("hello").fallback
    s = run_pipeline(logs=str(logs), registry=str(reg), iterations=300, settle_seconds=0)
    assert s["promoted"] and s["ingested"] == 5608 and s["quarantined"] == 0
    assert s["ope"]["ci_low"] <= s["ope"]["dr"] <= s["ope"]["ci_high"]
    deadline = datetime.now().timestamp() + 10
    while router.artifact_version != s["candidate_version"] and datetime.now().timestamp() < deadline:
        router.decide("ping")
    assert router.artifact_version == s["candidate_version"]

    m = quality_matrix(test)
    chosen = [m.models.index(router.decide(q, candidates=m.models).model) for q in m.queries]
    router_quality = float(m.quality[np.arange(len(chosen)), chosen].mean())
    logging_quality = float(m.quality.mean())  # the uniform logging policy's expected quality
    print(f"\nheld-out {len(chosen)} queries: router {router_quality:.4f} vs uniform logging {logging_quality:.4f}; "
          f"OPE {s['ope']}; reason: {s['reason']}")
    assert router_quality > logging_quality + 0.05
