"""What the server logs for client retries and forgotten feedback, through ingestion: request_id and
retry_of reach the curated store on both validation paths (fast Arrow and Python alike); a stand-in
label line for a forgotten decision gives its quality to the decision's record."""

from __future__ import annotations

import json

import pytest

from flows.ingest import ingest_logs, read_curated
from router_runtime import FunctionBackend, OutcomeLogger, Router, RoutingService
from router_runtime.pool import parse_model
from router_runtime.serving.backends import GenerationRequest
from router_runtime.serving.completion import RouteOptions

POOL = (parse_model({"name": "m1", "capabilities": ["chat"], "ms_per_token": 1.0}),
        parse_model({"name": "m2", "capabilities": ["chat"], "ms_per_token": 2.0}))
CHAT = GenerationRequest("chat", messages=({"role": "user", "content": "hello there"},))


@pytest.mark.parametrize("fast", [True, False])
def test_retries_and_stand_in_feedback_survive_ingestion(tmp_path, fast):
    raw, cur = tmp_path / "logs", tmp_path / "curated"
    fail = {"on": True}

    def model(m, req):
        if fail["on"]:
            raise RuntimeError("down")
        return "fine"

    svc = RoutingService(Router(None, pool=POOL, use_numpy=False, logger=OutcomeLogger(raw)), FunctionBackend(model),
                         max_hops=0, cooldown_s=0.0, background_records=False, feedback_capacity=1)
    with pytest.raises(Exception):
        svc.complete(CHAT, RouteOptions(request_id="job-1"))
    fail["on"] = False
    retry = svc.complete(CHAT, RouteOptions(request_id="job-1"))
    other = svc.complete(GenerationRequest("chat", messages=({"role": "user", "content": "bye"},)))
    svc.feedback(retry.decision_id, 0.8)  # forgotten (capacity 1): a stand-in label line
    r = ingest_logs(raw, cur, settle_seconds=0, fast=fast)
    assert r.quarantined == 0 and r.feedback == 1
    rows = {d["decision_id"]: d for d in read_curated(cur).to_dicts()}
    first = next(d for d in rows.values() if d["request_id"] == "job-1" and d["retry_of"] is None)
    assert first["success"] is False
    assert rows[retry.decision_id]["retry_of"] == first["decision_id"] and rows[retry.decision_id]["success"]
    assert rows[retry.decision_id]["request_id"] == "job-1"
    assert (rows[retry.decision_id]["quality"], rows[retry.decision_id]["quality_source"]) == (0.8, "user")
    assert rows[retry.decision_id]["query"] == "hello there"  # the record's own fields, not the stand-in's
    assert rows[other.decision_id]["request_id"] is None and rows[other.decision_id]["retry_of"] is None
    # the winning label's metadata says where the quality came from: a stand-in line, the record's own fields kept
    assert json.loads(rows[retry.decision_id]["label"])["stand_in"] is True
