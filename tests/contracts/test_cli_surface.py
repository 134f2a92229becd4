"""The pipeline's public surface, pinned: the ``zeta`` commands and their flags, the Prefect flow names,
the ``prefect.yaml`` entrypoints and the ``flows.*`` import paths that README, scripts and tests use.

A change here is a change users see (scripts, cron jobs, deployments registered under a flow name):
it belongs in CHANGELOG.md, with a migration note, before this snapshot is edited.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CLI = {
    "artifacts": ["--dry-run", "--json", "--keep", "--reason", "--registry"],
    "bench": ["--json", "--no-progress", "--progress", "--quick", "--static-dims"],
    "calibrate": ["--dry-run", "--gen-tokens", "--json", "--max-rounds", "--models", "--no-progress", "--progress",
                  "--prompt-tokens", "--repeats", "--threads", "--tolerance"],
    "demo": ["--format", "--iterations", "--pool", "--registry", "--seed", "--source", "--test-fraction"],
    "deploy": ["--cron", "--logs", "--name", "--pool", "--register-only", "--registry", "--shadow-cron", "--timezone",
               "--work-pool"],
    "evaluate-benchmark": ["--bandit", "--format", "--iterations", "--json", "--report", "--seed",
                           "--split-column", "--static-embedding", "--test-fraction"],
    "import-benchmark": ["--format", "--out"],
    "judge": ["--format", "--include-self", "--json", "--judge", "--logs", "--max", "--no-progress", "--pairwise",
              "--pool", "--progress", "--registry", "--sample-rate", "--seed", "--threads", "--validate"],
    "pipeline": ["--curated", "--dask-address", "--eval-budget", "--holdout-fraction", "--iterations", "--json",
                 "--logs", "--margin", "--min-ess", "--min-labeled-per-model", "--no-progress", "--pool", "--progress",
                 "--registry", "--seed", "--settle-seconds", "--task-runner", "--train-budget", "--workers"],
    "route": ["--artifact", "--candidates", "--cost-weight", "--json", "--kind", "--max-latency-ms", "--pool"],
    "serve": ["--artifact", "--body-timeout-s", "--cooldown-s", "--header-timeout-s", "--host", "--keep-alive-s",
              "--limit-concurrency", "--log-dir", "--log-level", "--max-body-bytes", "--max-hops",
              "--memory-budget-mb", "--otel", "--otel-endpoint", "--port", "--reload-interval-ms", "--threads",
              "--timeout-s", "--token"],
    "shadow": ["--json", "--logs", "--max", "--max-tokens", "--memory-budget-mb", "--no-progress", "--pool",
               "--progress", "--rate", "--seed", "--threads", "--time-budget-s"],
    "simulate-logs": ["--artifact", "--days", "--exploration-rate", "--format", "--no-progress", "--out", "--policy",
                      "--progress", "--rows", "--seed"],
    "validate": ["--artifact", "--json", "--memory-budget-mb"],
    "train": ["--format", "--iterations", "--json", "--no-progress", "--no-promote", "--pool", "--progress",
              "--registry", "--seed", "--static-embedding", "--test-fraction"],
}

FLOWS = {  # import path of the flow object -> its registered Prefect name
    "flows.train:train_router": "zeta-train-router",
    "flows.pipeline:train_router": "zeta-train-router",
    "flows.production:run_pipeline": "zeta-pipeline",
    "flows.evaluate.benchmark:evaluate_benchmark": "zeta-evaluate-benchmark",
    "flows.shadow:shadow_flow": "zeta-shadow",
    "flows.benchmark_eval:evaluate_benchmark": "zeta-evaluate-benchmark",
    "flows.judge.flow:judge_logs": "zeta-judge",
}

DEPLOYMENTS = {  # prefect.yaml entrypoint -> deployment name (names users see in the Prefect UI and CLI)
    "flows/production.py:run_pipeline": "zeta-nightly-yaml",
    "flows/shadow.py:shadow_flow": "zeta-shadow-nightly-yaml",
    "flows/judge/flow.py:judge_logs": "zeta-judge-after-shadow-yaml",
}

# Every `from flows.X import Y` of the README, the scripts and the tests before the layout change:
# old paths keep working (shims), new code uses the rooms of ARCHITECTURE.md.
IMPORTS = {
    "flows.bench": ["Trained", "catboost_decider", "engines", "format_table", "queries_of", "run_bench"],
    "flows.benchmark_eval": ["ROUTERS", "evaluate_benchmark", "load_benchmark", "run_evaluation", "split_benchmark"],
    "flows.cli": ["build_parser", "main"],
    "flows.deploy": ["ENTRYPOINTS", "PROJECT_ROOT", "loop_deployments", "pipeline_deployment", "register"],
    "flows.evaluation": ["QualityMatrix", "holdout_comparison", "holdout_report", "predicted_matrix",
                         "quality_matrix", "route_at"],
    "flows.export": ["cost_scale", "export_artifact", "typical_chars"],
    "flows.features": ["POLARS_OPS", "add_features", "feature_exprs", "feature_matrix", "fit_feature_spec"],
    "flows.importers": ["COST_MODELS", "import_benchmark", "import_dcrouter", "import_routeprofile"],
    "flows.judge.flow": ["judge_backend", "judge_logs", "judge_run", "resolve_judge"],
    "flows.judge.validation": ["agreement", "judge_manifest_entry", "read_validation", "validate_judge",
                               "write_validation"],
    "flows.ingest": ["CURATED_SCHEMA", "IngestPlan", "IngestResult", "IngestUnit", "UnitResult", "commit_ingest",
                     "curated_row", "curated_training_table", "ingest_logs", "ingest_unit", "is_feedback",
                     "plan_ingest", "read_curated", "scan_curated", "scan_feedback", "staging_dir",
                     "training_columns", "validate_lines"],
    "flows.labels": ["LABEL_SOURCES", "SOURCE_RANK", "STAND_IN_ORDER", "is_label", "is_label_record", "label_counts",
                     "label_key", "label_rank", "stand_in_order", "training_quality", "winning_label"],
    "flows.feedback": ["FEEDBACK_SOURCE", "STAND_IN_ORDER", "feedback_key", "feedback_rank", "is_feedback",
                       "is_feedback_record", "latest_feedback_quality", "stand_in_order"],
    "flows.logs": ["LogReadResult", "log_files", "logs_to_table", "read_outcome_logs", "simulate_logs"],
    "flows.metrics": ["aiq", "apgr", "cost_at_quality", "cpt", "nondecreasing_hull", "normalized_gain",
                      "quality_at_cost", "strong_share_curve", "sweep_curve"],
    "flows.ope": ["OPEEstimate", "deterministic_probs", "ope_estimates", "paired_difference"],
    "flows.drift": ["drift_report", "psi"],
    "flows.baselines": ["fit_knn", "fixed_choices", "task_predictions"],
    "flows.pipeline": ["SOURCE_FORMATS", "train_router"],
    "flows.production": ["default_curated_dir", "evaluate_on_logs", "load_window", "run_pipeline",
                         "stratified_sample"],
    "flows.routed_text": ["add_routed_text", "routed_text_exprs"],
    "flows.runners": ["RUNNERS", "default_workers", "task_runner", "task_runner_from_env"],
    "flows.scale": ["main"],
    "flows.synth": ["simulate_logs_at_scale"],
    "flows.tables": ["BENCHMARK_TABLE_VERSION", "OPTIONAL", "REQUIRED", "benchmark_summary", "read_table",
                     "validate_benchmark_table", "write_table"],
    "flows.training": ["SMALL_TRAINING_OUTCOMES", "SMALL_TRAINING_QUERIES", "TrainParams", "build_pool",
                       "check_parity", "ensemble_from_catboost", "split_query_ids", "train_quality_model",
                       "MIN_LABELED_PER_MODEL", "Refusal", "quality_refusal", "labeled_rows"],
}


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_cli_commands_and_flags():
    from flows.cli import build_parser

    seen = {name: sorted(o for a in p._actions for o in a.option_strings if o.startswith("--") and o != "--help")
            for name, p in _subcommands(build_parser()).items()}
    assert seen == CLI


def _resolve(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("path", sorted(FLOWS))
def test_flow_names(path):
    from prefect import Flow

    obj = _resolve(path)
    assert isinstance(obj, Flow) and obj.name == FLOWS[path]


def test_prefect_yaml_entrypoints_resolve_to_flows():
    import yaml
    from prefect import Flow

    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    entrypoints = {d["entrypoint"]: d["name"] for d in doc["deployments"]}
    assert entrypoints == DEPLOYMENTS
    for ep in entrypoints:
        file, _, name = ep.partition(":")
        flow = _resolve(file.removesuffix(".py").replace("/", ".") + ":" + name)
        assert isinstance(flow, Flow) and flow.name == FLOWS[file.removesuffix(".py").replace("/", ".") + ":" + name]


@pytest.mark.parametrize("module", sorted(IMPORTS))
def test_documented_import_paths(module):
    mod = importlib.import_module(module)
    missing = [n for n in IMPORTS[module] if not hasattr(mod, n)]
    assert not missing, f"{module} lost {missing}"
