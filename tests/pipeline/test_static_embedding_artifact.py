"""An artifact whose FeatureSpec has a ``static_embedding`` feature: trained with real CatBoost on the
sample, written, loaded, its router.json round-trips, and it decides identically on every engine.

The table is seeded random int8 over the sample's own tokens (``tests/static_table.py``), not the
real embedding model: what is tested here is the runtime's handling of the op, not its quality.
"""

from __future__ import annotations

import copy
import json
import struct

import pytest

from flows.export import cost_scale, export_artifact, typical_chars
from flows.training import TrainParams, build_pool, train_quality_model
from router_runtime import Router, available_engines, default_feature_spec, load_artifact
from router_runtime.artifact import parse_router
from router_runtime.errors import ContractError
from router_runtime.features import FeatureSpec

from static_table import sample_queries, sample_vocab, static_params, with_static

ENGINES = [e for e, why in available_engines().items() if why is None]
PARAMS = static_params(sample_vocab(4000), dims=16, seed=7)


@pytest.fixture(scope="module")
def artifact_path(tmp_path_factory, sample_table, demo_pool):
    spec = with_static(default_feature_spec(n_buckets=16), PARAMS)
    pool = build_pool(sample_table, demo_pool)
    model = train_quality_model(sample_table, spec, pool, TrainParams(iterations=60, depth=4))
    lengths = sample_table["query"].str.len_chars().to_numpy()
    scale = cost_scale(pool, sample_table["model"].unique().to_list(), lengths)
    return export_artifact(tmp_path_factory.mktemp("static-registry"), model, pool, cost_weight=0.1, scale=scale,
                           manifest={}, chars=typical_chars(lengths))


def _router_json(path) -> dict:
    return json.loads((path / "router.json").read_text())


def test_router_json_carries_the_table_and_round_trips(artifact_path):
    doc = _router_json(artifact_path)
    (emb,) = [f for f in doc["feature_spec"]["features"] if f["op"] == "static_embedding"]
    assert emb["params"] == PARAMS  # written as given: the trainer fits the token vocab only
    spec = FeatureSpec.from_json(doc["feature_spec"])
    assert spec.to_json() == doc["feature_spec"]
    assert FeatureSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    art = load_artifact(artifact_path)
    assert art.feature_spec == spec
    # the trees really read the embedding (a parity test over unused inputs would prove little)
    qm = doc["quality_model"]
    assert any(qm["inputs"][i].startswith("emb__") for i in qm["split_input"]), "no split on the embedding"


def _fingerprint(d) -> tuple:
    f = lambda x: None if x is None else struct.pack("<d", x)  # noqa: E731
    return (d.model, d.reason, f(d.propensity), tuple(struct.pack("<d", x) for x in d.features),
            tuple((s.model, f(s.quality), f(s.cost), f(s.latency_ms), f(s.utility), f(s.output_tokens)) for s in d.scores))


def test_decides_identically_on_every_engine(artifact_path):
    art = load_artifact(artifact_path)
    queries = sample_queries()[::7] + ["", "the the the", "日本語 only", b"\xff\xfe bytes"]
    routers = {e: Router(art, engine=e) for e in ENGINES}
    for e, r in routers.items():
        assert r.engine == e and r.engine_problem is None, (e, r.engine_problem)
    for q in queries:
        got = {e: _fingerprint(r.decide(q)) for e, r in routers.items()}
        assert len(set(got.values())) == 1, f"engines disagree on {q!r:.100}: {sorted(got)}"
    # and the decisions depend on the text (not one model for everything)
    assert len({routers["python"].decide(q).model for q in queries}) > 1


@pytest.mark.parametrize("field,value", [("sha256", "0" * 64), ("table", None), ("vocab", ["dup", "dup"])])
def test_a_damaged_table_is_refused_with_the_feature_named(artifact_path, field, value):
    doc = copy.deepcopy(_router_json(artifact_path))
    i, emb = next((i, f) for i, f in enumerate(doc["feature_spec"]["features"]) if f["op"] == "static_embedding")
    emb["params"][field] = value
    with pytest.raises(ContractError) as e:
        parse_router(doc)
    assert e.value.field.startswith(f"features[{i}].params.") and "'emb'" in str(e.value)


def test_an_unfitted_table_is_refused_at_load(artifact_path):
    doc = copy.deepcopy(_router_json(artifact_path))
    emb = next(f for f in doc["feature_spec"]["features"] if f["op"] == "static_embedding")
    emb["params"] = {"dims": 16, "vocab": None, "table": None, "scale": None, "sha256": None}
    with pytest.raises(ContractError, match="unfitted"):
        parse_router(doc)
