"""Artifacts (router_runtime.artifact): write and load, integrity, the content of router.json and the
refusals of write_artifact.  Every refusal checks the exact exception class and that the message
names the field and the problem."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from datetime import datetime
from pathlib import Path

import pytest

import router_runtime.artifact as artifact_mod
from artifact_docs import VERSION_RE, edit_router, make_doc, raises, registry_snapshot, rewrite_router
from router_runtime.artifact import (
    current_version,
    list_versions,
    load_artifact,
    new_version_name,
    parse_router,
    set_current,
    write_artifact,
)
from router_runtime.errors import (
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ContractError,
    SchemaVersionError,
    UnknownOpError,
)
from router_runtime.features import default_feature_spec


def test_write_then_load_round_trip(reg):
    doc = make_doc()
    before = copy.deepcopy(doc)
    path = write_artifact(reg, doc, {"training": {"rows": 12}, "parent_version": None, "note": "ü"})
    assert doc == before  # the caller's dict is not mutated
    version = path.name
    assert VERSION_RE.fullmatch(version), version
    assert path == reg / "versions" / version
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "router.json"]

    router_bytes = (path / "router.json").read_bytes()
    man = json.loads((path / "manifest.json").read_text())
    assert man["files"] == {"router.json": {"sha256": hashlib.sha256(router_bytes).hexdigest(),
                                            "bytes": len(router_bytes)}}
    assert man["manifest_version"] == 1 and man["format_version"] == 1 and man["artifact_version"] == version
    created = datetime.fromisoformat(man["created_at"])
    assert man["created_at"].endswith("Z") and created.utcoffset().total_seconds() == 0
    assert man["training"] == {"rows": 12} and man["parent_version"] is None and man["note"] == "ü"

    stored = json.loads(router_bytes)
    assert stored["version"] == version
    # the 8 hex digits are the sha256 of the document with an empty version
    assert version.endswith("-" + hashlib.sha256(artifact_mod._dumps(dict(doc, version=""))).hexdigest()[:8])

    art = load_artifact(path)
    assert art.version == version and art.path == str(path)
    assert [m.name for m in art.pool] == ["a", "b"]
    assert art.pool[1].size_b == 7.0 and art.pool[1].capabilities == ("chat", "code")
    assert art.policy.cost_weight == 0.1 and art.policy.cost_scale == 1e-3 and art.policy.quality_floor == 0.0
    assert art.clip_quality == (0.0, 1.0)
    assert art.candidate_inputs == ("model__a", "model__b")
    assert art.input_plan == (("q", 0), ("c", 0), ("c", 1))
    assert art.feature_spec.to_json() == make_doc()["feature_spec"]
    assert art.manifest["training"] == {"rows": 12}
    # the ensemble is live: model a's one-hot goes right (0.8), b's left (0.2)
    feats = art.feature_spec.extract("def f(): pass")
    for m, want in (("a", 0.8), ("b", 0.2)):
        row = [feats[i] if src == "q" else art.candidate_vector(art.model(m))[i] for src, i in art.input_plan]
        assert art.ensemble.predict(row) == want
    assert list_versions(reg) == [version]


def test_version_name_format():
    name = new_version_name(b"abc", datetime(2026, 2, 3, 4, 5, 6, tzinfo=__import__("datetime").timezone.utc))
    assert name == "20260203T040506Z-" + hashlib.sha256(b"abc").hexdigest()[:8]


def test_explicit_version_is_kept(reg):
    path = write_artifact(reg, dict(make_doc(), version="v1.2-fixture"), {})
    assert path.name == "v1.2-fixture" and load_artifact(path).version == "v1.2-fixture"


def test_load_via_registry_root_version_dir_and_router_json(reg, vdir):
    set_current(reg, vdir.name)
    assert current_version(reg) == vdir.name
    assert (reg / "CURRENT").read_text() == vdir.name + "\n"
    for p in (reg, str(reg), vdir, vdir / "router.json"):
        art = load_artifact(p)
        assert art.version == vdir.name and art.path == str(vdir)


def test_fitted_default_spec_round_trips(reg):
    from flows.features import fit_feature_spec
    import polars as pl

    spec = fit_feature_spec(default_feature_spec(n_buckets=8),
                            pl.Series(["def add(a, b): return a + b", "what is the capital of France?",
                                       "def mul(a, b): return a * b", "capital of Spain?"]))
    assert not spec.needs_fit
    path = write_artifact(reg, make_doc(spec), {})
    art = load_artifact(path)
    assert art.feature_spec.to_json() == spec.to_json()
    assert art.feature_spec.extract("def x(): return 1") == spec.extract("def x(): return 1")


# -- integrity ---------------------------------------------------------------------------------------

def test_tampered_router_json(vdir):
    data = bytearray((vdir / "router.json").read_bytes())
    i = data.index(b"0.8")
    data[i + 2] = ord("9")  # 0.8 -> 0.9: still valid JSON, still a valid router
    (vdir / "router.json").write_bytes(bytes(data))
    raises(ArtifactIntegrityError, lambda: load_artifact(vdir), "router.json", "sha256", "does not match")


def test_truncated_router_json(vdir):
    data = (vdir / "router.json").read_bytes()
    (vdir / "router.json").write_bytes(data[: len(data) // 2])
    raises(ArtifactIntegrityError, lambda: load_artifact(vdir), "router.json", "sha256")


def test_router_json_missing(vdir):
    (vdir / "router.json").unlink()
    raises(ArtifactNotFoundError, lambda: load_artifact(vdir), "router.json", "missing")


def test_manifest_missing(vdir):
    (vdir / "manifest.json").unlink()
    raises(ArtifactNotFoundError, lambda: load_artifact(vdir), "manifest.json", "missing")


def test_manifest_invalid_json(vdir):
    (vdir / "manifest.json").write_text('{"manifest_version": 1, "files": ')
    raises(ArtifactError, lambda: load_artifact(vdir), "manifest.json", "invalid JSON")


def test_manifest_not_an_object(vdir):
    (vdir / "manifest.json").write_text("[1]")
    raises(ArtifactError, lambda: load_artifact(vdir), "manifest.json", "JSON object")


@pytest.mark.parametrize("mv", [2, 0, "1", None, True, [1]])
def test_manifest_version_unknown(vdir, mv):
    man = json.loads((vdir / "manifest.json").read_text())
    man["manifest_version"] = mv
    (vdir / "manifest.json").write_text(json.dumps(man))
    raises(SchemaVersionError, lambda: load_artifact(vdir), "manifest_version", "unknown version")


def test_manifest_without_router_entry(vdir):
    man = json.loads((vdir / "manifest.json").read_text())
    man["files"] = {}
    (vdir / "manifest.json").write_text(json.dumps(man))
    raises(ArtifactError, lambda: load_artifact(vdir), "manifest.json", "router.json", "files")


@pytest.mark.parametrize("name", ["../x", "./router.json", "sub/x", "..\\x", ".hidden", "", "a\x00b"])
def test_manifest_naming_a_file_outside_the_artifact(vdir, name):
    (vdir.parent / "x").write_text("{}")
    man = json.loads((vdir / "manifest.json").read_text())
    man["files"][name] = {"sha256": hashlib.sha256(b"{}").hexdigest(), "bytes": 2}
    (vdir / "manifest.json").write_text(json.dumps(man))
    raises(ArtifactError, lambda: load_artifact(vdir), "outside the artifact")


def test_manifest_entry_without_sha(vdir):
    man = json.loads((vdir / "manifest.json").read_text())
    man["files"]["router.json"] = {"bytes": 3}
    (vdir / "manifest.json").write_text(json.dumps(man))
    raises(ArtifactError, lambda: load_artifact(vdir), "router.json", "no sha256")


def test_extra_listed_file_is_verified_too(vdir):
    (vdir / "notes.txt").write_text("hello")
    man = json.loads((vdir / "manifest.json").read_text())
    man["files"]["notes.txt"] = {"sha256": hashlib.sha256(b"hello").hexdigest(), "bytes": 5}
    (vdir / "manifest.json").write_text(json.dumps(man))
    load_artifact(vdir)
    (vdir / "notes.txt").write_text("hellO")
    raises(ArtifactIntegrityError, lambda: load_artifact(vdir), "notes.txt", "sha256")


# -- content of router.json (hash fixed, so only the content check can fail) -------------------------

@pytest.mark.parametrize("fv", [2, 0, "1", None, True, [1], {"v": 1}])
def test_format_version_unknown(vdir, fv):
    edit_router(vdir, lambda d: d.update(format_version=fv))
    raises(SchemaVersionError, lambda: load_artifact(vdir), "format_version", "unknown format")


def test_router_json_invalid_json_with_matching_hash(vdir):
    rewrite_router(vdir, '{"format_version": 1,')
    raises(ArtifactError, lambda: load_artifact(vdir), "router.json", "invalid JSON")


def test_router_json_not_an_object(vdir):
    rewrite_router(vdir, "[]")
    raises(ContractError, lambda: load_artifact(vdir), "router", "JSON object")


def test_unknown_feature_op(vdir):
    edit_router(vdir, lambda d: d["feature_spec"]["features"][0].update(op="regex_count"))
    exc = raises(UnknownOpError, lambda: load_artifact(vdir), "features[0].op", "unknown op", "regex_count")
    assert "router.json" in str(exc)  # the loader says which file


def test_unfitted_spec_is_refused(reg):
    raises(ContractError, lambda: parse_router(dict(make_doc(default_feature_spec()), version="v")),
           "feature_spec", "unfitted")


def test_quality_model_input_neither_feature_nor_candidate(vdir):
    edit_router(vdir, lambda d: d["quality_model"]["inputs"].__setitem__(0, "not_a_feature"))
    raises(ContractError, lambda: load_artifact(vdir), "quality_model.inputs", "not_a_feature",
           "neither a feature of the spec nor a candidate input")


def test_quality_model_input_not_a_string(vdir):
    edit_router(vdir, lambda d: d["quality_model"]["inputs"].__setitem__(0, 7))
    raises(ContractError, lambda: load_artifact(vdir), "quality_model.inputs", "7")


def test_leaf_values_wrong_length(vdir):
    edit_router(vdir, lambda d: d["quality_model"].update(leaf_values=[0.2, 0.8, 0.5]))
    raises(ContractError, lambda: load_artifact(vdir), "quality_model.leaf_values", "expected 2 values, got 3")


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_leaf_value_in_json_text(vdir, token):
    text = (vdir / "router.json").read_text()
    assert text.count("0.8") == 1
    rewrite_router(vdir, text.replace("0.8", token))
    raises(ArtifactError, lambda: load_artifact(vdir), "router.json", "non-finite", token,
           "quality_model.leaf_values[1]")


def test_number_overflowing_to_infinity_is_refused(vdir):
    text = (vdir / "router.json").read_text()
    rewrite_router(vdir, text.replace("0.8", "1e400"))
    raises(ArtifactError, lambda: load_artifact(vdir), "non-finite", "quality_model.leaf_values[1]")


@pytest.mark.parametrize("key,value,field", [
    ("tree_depth", ["x"], "quality_model.tree_depth"),
    ("tree_depth", [1.5], "quality_model.tree_depth"),
    ("tree_depth", [True], "quality_model.tree_depth"),
    ("leaf_values", [True, 0.8], "quality_model.leaf_values"),
    ("split_border", [None], "quality_model.split_border[0]"),
    ("nan_as_true", [["a"]], "quality_model.nan_as_true"),
    ("split_input", [5], "quality_model.split_input[0]"),
    ("scale", "1", "quality_model.scale"),
])
def test_malformed_ensemble_is_a_contract_error(vdir, key, value, field):
    edit_router(vdir, lambda d: d["quality_model"].update({key: value}))
    raises(ContractError, lambda: load_artifact(vdir), field)


def test_negative_cost_weight(vdir):
    edit_router(vdir, lambda d: d["policy"].update(cost_weight=-0.1))
    raises(ContractError, lambda: load_artifact(vdir), "policy.cost_weight", "in [0, 1e+06]", "-0.1")


@pytest.mark.parametrize("scale", [0, 0.0, -1])
def test_cost_scale_not_positive(vdir, scale):
    edit_router(vdir, lambda d: d["policy"].update(cost_scale=scale))
    raises(ContractError, lambda: load_artifact(vdir), "policy.cost_scale", "> 0")


def test_policy_number_of_wrong_type(vdir):
    edit_router(vdir, lambda d: d["policy"].update(cost_weight=True))
    raises(ContractError, lambda: load_artifact(vdir), "policy.cost_weight", "finite number")


def test_duplicate_pool_names(vdir):
    edit_router(vdir, lambda d: d["pool"][1].update(name="a"))
    raises(ContractError, lambda: load_artifact(vdir), "pool", "duplicate model names")


def test_calibration_low_above_high(vdir):
    edit_router(vdir, lambda d: d.update(calibration={"kind": "clip", "low": 0.9, "high": 0.1}))
    raises(ContractError, lambda: load_artifact(vdir), "calibration", "low 0.9 > high 0.1")


@pytest.mark.parametrize("key", ["feature_spec", "pool", "quality_model", "policy"])
def test_missing_section(vdir, key):
    edit_router(vdir, lambda d: d.pop(key))
    raises(ContractError, lambda: load_artifact(vdir), key, "missing")


# -- write_artifact refusals ---------------------------------------------------------------------------

def bad_docs():
    def mutate(fn):
        d = make_doc()
        fn(d)
        return d

    return {
        "unknown_op": (mutate(lambda d: d["feature_spec"]["features"][0].update(op="nope")), UnknownOpError),
        "cost_scale_zero": (mutate(lambda d: d["policy"].update(cost_scale=0)), ContractError),
        "nan_leaf": (mutate(lambda d: d["quality_model"]["leaf_values"].__setitem__(0, float("nan"))),
                     ContractError),
        "format_2": (mutate(lambda d: d.update(format_version=2)), SchemaVersionError),
        "not_json_able": (mutate(lambda d: d["policy"].update(cost_weight={1, 2})), ContractError),
    }


@pytest.mark.parametrize("case", sorted(bad_docs()))
def test_write_refuses_what_the_runtime_could_not_load(reg, case):
    doc, cls = bad_docs()[case]
    with pytest.raises(cls):
        write_artifact(reg, doc, {})
    assert registry_snapshot(reg) == []  # nothing written, not even the registry directories


def test_write_refuses_into_existing_registry_leaving_it_unchanged(reg, vdir):
    before = registry_snapshot(reg)
    doc, _ = bad_docs()["cost_scale_zero"]
    with pytest.raises(ContractError):
        write_artifact(reg, doc, {})
    assert registry_snapshot(reg) == before


def test_write_refuses_an_existing_version(reg):
    doc = dict(make_doc(), version="20260101T000000Z-aaaaaaaa")
    path = write_artifact(reg, doc, {"n": 1})
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    raises(ArtifactError, lambda: write_artifact(reg, doc, {"n": 2}), "already exists", doc["version"])
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert [p.name for p in (reg / "versions").iterdir()] == [path.name]


def test_same_document_twice_gets_distinct_or_refused_versions(reg):
    # Version names carry the second and the content hash: the same document within one second is
    # the same version, which must be refused rather than overwritten.
    a = write_artifact(reg, make_doc(), {})
    try:
        b = write_artifact(reg, make_doc(), {})
    except ArtifactError as exc:
        assert "already exists" in str(exc)
    else:
        assert a != b
    assert all(load_artifact(reg / "versions" / v) for v in list_versions(reg))


@pytest.mark.parametrize("version", ["../escape", "a/b", ".hidden", "x\x00y", "with space", "a\\b"])
def test_write_refuses_a_version_name_that_is_not_a_plain_name(reg, version):
    raises(ContractError, lambda: write_artifact(reg, dict(make_doc(), version=version), {}), "version")
    assert registry_snapshot(reg.parent) == []  # nothing anywhere, not even outside the registry


@pytest.mark.parametrize("key", ["manifest_version", "artifact_version", "format_version", "files"])
def test_write_refuses_manifest_keys_it_owns(reg, key):
    raises(ContractError, lambda: write_artifact(reg, make_doc(), {key: 2}), key)
    assert registry_snapshot(reg) == []


def test_write_refuses_a_manifest_that_is_not_json(reg):
    raises(ContractError, lambda: write_artifact(reg, make_doc(), {"metrics": {"auc": float("nan")}}),
           "manifest.metrics.auc", "non-finite number nan")
    raises(ContractError, lambda: write_artifact(reg, make_doc(), {"when": datetime.now()}), "manifest")
    assert registry_snapshot(reg) == []


def test_a_crash_while_writing_leaves_no_temp_dir(reg, monkeypatch):
    write_artifact(reg, dict(make_doc(), version="20260101T000000Z-00000001"), {})
    before = registry_snapshot(reg)

    def failing_fsync(fd):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(artifact_mod.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        write_artifact(reg, make_doc(), {})
    assert registry_snapshot(reg) == before  # no .tmp-* dir, no half version


def test_losing_a_race_for_the_same_version_is_an_artifact_error(reg, monkeypatch):
    # Another writer creates the same version between the existence check and the rename.
    doc = dict(make_doc(), version="20260101T000000Z-0000000a")
    real_rename = os.rename

    def racing_rename(src, dst):
        os.makedirs(dst)
        Path(dst, "router.json").write_text("{}")
        return real_rename(src, dst)

    monkeypatch.setattr(artifact_mod.os, "rename", racing_rename)
    raises(ArtifactError, lambda: write_artifact(reg, doc, {}), "already exists")
    assert [p.name for p in (reg / "versions").iterdir()] == [doc["version"]]  # the winner's, no temp dir


# -- the registry -------------------------------------------------------------------------------------

def test_deeply_nested_router_json_is_an_artifact_error(vdir):
    rewrite_router(vdir, '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    raises(ArtifactError, lambda: load_artifact(vdir), "router.json", "nested too deeply")


def test_manifest_non_finite_number_is_named(vdir):
    man = (vdir / "manifest.json").read_text()
    (vdir / "manifest.json").write_text(man.rstrip().rstrip("}") + ', "metrics": {"auc": NaN}}')
    raises(ArtifactError, lambda: load_artifact(vdir), "manifest.json", "non-finite number NaN", "metrics.auc")


def test_write_names_a_non_finite_number_in_the_document(reg):
    doc = make_doc()
    doc["quality_model"]["leaf_values"][1] = float("inf")
    raises(ContractError, lambda: write_artifact(reg, doc, {}), "router.quality_model.leaf_values[1]", "non-finite")
    assert registry_snapshot(reg) == []


def test_manifest_for_another_version_is_refused(vdir):
    man = json.loads((vdir / "manifest.json").read_text())
    man["artifact_version"] = "20990101T000000Z-deadbeef"
    (vdir / "manifest.json").write_text(json.dumps(man))
    raises(ArtifactIntegrityError, lambda: load_artifact(vdir), "manifest is for version", "20990101T000000Z")


# -- the optional length model (issue 11): a new key of format_version 1 ----------------------------
def _length_model(inputs=("chars", "model__b"), target="log1p_completion_tokens"):
    return {"kind": "oblivious_trees", "target": target, "inputs": list(inputs), "tree_depth": [1],
            "split_input": [1], "split_border": [0.5], "leaf_values": [3.0, 5.0], "scale": 1.0, "bias": 0.0}


def test_length_model_is_optional_and_loads_with_its_own_inputs(vdir):
    assert load_artifact(vdir).length is None  # written without it: routed on the pool's completion_tokens
    edit_router(vdir, lambda d: d.update(length_model=_length_model()))
    art = load_artifact(vdir)
    assert art.length is not None and art.length.candidate_inputs == ("model__b",)
    assert art.length.ensemble.predict([10.0, 1.0]) == 5.0
    b = art.model("b")
    assert art.length.scorer.score([10.0] + [0.0] * 3, [art.length.scorer.candidate_base(
        art.length.candidate_vector(b))]) == [5.0]


@pytest.mark.parametrize("bad, words", [
    (_length_model(target="tokens"), ("length_model.target", "log1p_completion_tokens")),
    (_length_model(inputs=("chars", "mystery")), ("length_model.inputs", "mystery")),
    (dict(_length_model(), leaf_values=[1.0]), ("length_model.leaf_values",)),
    ([1, 2], ("length_model.target",)),
])
def test_a_bad_length_model_is_refused_naming_it(vdir, bad, words):
    edit_router(vdir, lambda d: d.update(length_model=bad))
    raises(ContractError, lambda: load_artifact(vdir), *words)


def test_an_older_runtime_ignores_the_length_model_key(vdir):
    # The compatibility rule of artifacts/README.md: readers ignore keys they do not know, so the key
    # adds no format_version.  What an older loader reads is exactly the document without the key.
    edit_router(vdir, lambda d: d.update(length_model=_length_model()))
    doc = json.loads((vdir / "router.json").read_text())
    assert doc["format_version"] == 1
    without = parse_router({k: v for k, v in doc.items() if k != "length_model"})
    assert without.length is None and without.ensemble.leaf_values == load_artifact(vdir).ensemble.leaf_values
