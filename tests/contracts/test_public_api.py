"""The public surface, pinned: ``router_runtime.__all__`` exactly, and every import path the README,
the tests and flows/ use today (old serving module paths included).  A layout change that breaks a
host's import fails here first; a deliberate change of the surface edits these lists in the same
commit (and the CHANGELOG)."""

from __future__ import annotations

import importlib

import pytest

import router_runtime

PUBLIC = [
    "Artifact", "ArtifactError", "ArtifactIntegrityError", "ArtifactNotFoundError", "ArtifactParityError",
    "Attempt", "Backend", "BackendBase", "BackendError", "BackendTimeoutError", "CandidateScore", "Completion",
    "CompletionStream", "ContextOverflowError", "ContractError", "Decision", "ENGINES", "Exploration",
    "FORMAT_VERSION", "Feature", "FeatureSpec", "Finished", "FunctionBackend", "GenerationRequest",
    "LlamaBackend", "LockHeldError", "Metrics", "MissingDependencyError", "ModelInfo", "ModelUnavailableError",
    "OUTCOME_SCHEMA_VERSION",
    "ObliviousEnsemble", "Outcome", "OutcomeLogger", "OutcomeRecord", "PoolSettings", "RouteOptions", "RoutedText", "Router",
    "RoutingService", "SchemaVersionError", "ServingError", "TextDelta", "UnknownOpError", "ZetaError",
    "__version__", "available_engines", "build_service", "calibrate_pool", "check_pool", "create_app",
    "current_version",
    "default_feature_spec", "dump_pool", "history", "list_versions", "load_artifact", "load_pool", "load_pool_settings",
    "parse_outcome", "parse_outcome_line", "promote", "rollback", "routed_text", "serve", "set_current", "update_pool_file",
    "write_artifact",
]

# (module, name) pairs in use today (collected from README.md, tests/, flows/ and run.py with an
# AST walk of their ``from router_runtime... import`` statements), plus the names each old serving
# module exported.  Private names that tests reach for are listed too: moving them is allowed, but
# the old path must keep resolving.
IMPORT_PATHS = [
    ("router_runtime.artifact", n) for n in (
        "Artifact", "FORMAT_VERSION", "SUPPORTED_FORMAT_VERSIONS", "current_version", "list_versions",
        "load_artifact", "new_version_name", "parse_router", "set_current", "write_artifact",
        "resolve_artifact_dir")
] + [
    ("router_runtime.candidates", n) for n in (
        "IDENTITY_PREFIX", "candidate_input_names", "candidate_value", "candidate_vector")
] + [
    ("router_runtime.compiled", "CompiledSpec"),
] + [
    ("router_runtime.errors", n) for n in (
        "ArtifactError", "ArtifactIntegrityError", "ArtifactNotFoundError", "ArtifactParityError",
        "ContextOverflowError", "ContractError", "MissingDependencyError", "SchemaVersionError",
        "UnknownOpError", "ZetaError", "BackendError", "BackendTimeoutError", "ServingError",
        "ModelUnavailableError", "LockHeldError")
] + [
    ("router_runtime.features", n) for n in (
        "Feature", "FeatureSpec", "MAX_CODE_POINT", "OPS", "PYTHON_OPS", "default_feature_spec")
] + [
    ("router_runtime.logger", "OutcomeLogger"),
    ("router_runtime.policy", "Exploration"),
    ("router_runtime.policy", "choice_probabilities"),
] + [
    ("router_runtime.pool", n) for n in (
        "CHARS_PER_TOKEN", "LinearCost", "ModelInfo", "load_pool", "dump_pool", "update_pool_file",
        "parse_model", "resolve_gguf")
] + [
    ("router_runtime.records", n) for n in (
        "MAX_LINE_BYTES", "OUTCOME_SCHEMA_VERSION", "OutcomeRecord", "QUALITY_SOURCES", "parse_outcome",
        "parse_outcome_line")
] + [
    ("router_runtime.registry", n) for n in ("annotate_manifest", "history", "promote", "rollback", "HISTORY_FILE")
] + [
    ("router_runtime.router", n) for n in (
        "Router", "Decision", "CandidateScore", "Outcome", "ENGINES", "available_engines")
] + [
    ("router_runtime.text", "as_text"),
    ("router_runtime.text", "ascii_lower"),
    ("router_runtime.trees", "CandidateScorer"),
    ("router_runtime.trees", "ObliviousEnsemble"),
    ("router_runtime.trees", "float32_threshold"),
    # the serving stack at its old, documented module paths
    ("router_runtime.server", "build_service"),
    ("router_runtime.server", "create_app"),
    ("router_runtime.server", "serve"),
    ("router_runtime.server", "header_value"),
] + [
    ("router_runtime.serving", n) for n in (
        "RoutingService", "RouteOptions", "Completion", "CompletionStream", "Attempt", "with_load_penalty")
] + [
    ("router_runtime.backends", n) for n in (
        "Backend", "BackendBase", "FunctionBackend", "GenerationRequest", "TextDelta", "Finished")
] + [
    ("router_runtime.llama_backend", "LlamaBackend"),
    ("router_runtime.openai_api", "parse_chat"),
    ("router_runtime.openai_api", "parse_completion"),
    ("router_runtime.openai_api", "parse_embeddings"),
    ("router_runtime.metrics", "Metrics"),
    ("router_runtime.calibration", "calibrate_pool"),
]


def test_all_is_exactly_the_pinned_list():
    assert sorted(router_runtime.__all__) == PUBLIC
    assert len(router_runtime.__all__) == len(set(router_runtime.__all__))


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_resolves_and_is_listed_by_dir(name):
    assert getattr(router_runtime, name) is not None
    assert name in dir(router_runtime)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        router_runtime.no_such_name  # noqa: B018


@pytest.mark.parametrize(("module", "name"), IMPORT_PATHS, ids=[f"{m}:{n}" for m, n in IMPORT_PATHS])
def test_documented_import_path_keeps_working(module, name):
    assert hasattr(importlib.import_module(module), name)


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, n in IMPORT_PATHS if n in PUBLIC])
def test_a_public_name_is_the_same_object_at_every_path(module, name):
    assert getattr(importlib.import_module(module), name) is getattr(router_runtime, name)
