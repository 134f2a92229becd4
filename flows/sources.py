"""Where training and evaluation data come from, and the one rule that splits it into train and test.

``load_source`` reads every source the pipeline takes: a benchmark table file (``table``), a raw data
set through its importer (``routeprofile``, ``dcrouter``) or outcome logs (``logs``: the same ingestion
as the production loop, curated Parquet beside the logs).  It returns the training table and its
provenance (what it is, its cost model, whether it is full information).

``split_table`` is the split of ``zeta train`` and ``zeta evaluate-benchmark`` alike: by a
``train``/``test`` column when one is given, else by a seeded hash of ``query_id``
(``split_query_ids``); then every test query whose exact text also occurs in the train part is dropped
from the test part and counted, because the model has seen its answers (LLMRouter's two files share
119 questions): a held-out number must not include them.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import polars as pl

from router_runtime.errors import ContractError

from .curated import curated_training_table, default_curated_dir, read_curated
from .importers import COST_MODELS, import_benchmark
from .ingest import ingest_logs
from .tables import read_table, validate_benchmark_table

__all__ = ["SOURCE_FORMATS", "TABLE_FORMATS", "load_source", "load_table", "split_query_ids", "split_table"]

TABLE_FORMATS = ("table", "routeprofile", "dcrouter")   # full-information benchmark data
SOURCE_FORMATS = (*TABLE_FORMATS, "logs")


def load_table(source: str, fmt: str = "table") -> tuple[pl.DataFrame, str]:
    """A validated benchmark table and the statement of its cost model."""
    if fmt == "table":
        return validate_benchmark_table(read_table(source), source=str(source)), "the table's cost column"
    if fmt in COST_MODELS:
        return import_benchmark(source, fmt), COST_MODELS[fmt]
    raise ContractError("source_format", f"must be one of {TABLE_FORMATS}, got {fmt!r}")


def load_source(source: str, source_format: str) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The training table and a description of where it came from."""
    if source_format in TABLE_FORMATS:
        table, cost_model = load_table(source, source_format)
        return table, {"source": str(source), "format": source_format, "full_information": True,
                       "cost_model": cost_model}
    if source_format == "logs":
        # The same ingestion as the production loop (quarantine, dedupe, curated Parquet beside the logs).
        curated = default_curated_dir(source)
        ing = ingest_logs(source, curated, settle_seconds=0)
        table = curated_training_table(read_curated(curated))
        if table.is_empty():
            raise ContractError("logs", f"no usable outcome records in {source}")
        return table, {"source": str(source), "format": "logs", "full_information": False,
                       "cost_model": "the logged cost field (0 when absent)", "curated": str(curated),
                       "files": ing.files, "records": len(table), "ingested_now": ing.ingested,
                       "feedback_now": ing.feedback, "quarantined": ing.quarantined,
                       "quarantine_file": ing.quarantine_file, "duplicates": ing.duplicates,
                       "window": {"start": table["ts"].min().isoformat(), "end": table["ts"].max().isoformat()}}
    raise ContractError("source_format", f"must be one of {SOURCE_FORMATS}, got {source_format!r}")


def split_query_ids(query_ids: Sequence[str], test_fraction: float, seed: int) -> set[str]:
    """The test part of a split by query_id: a seeded hash, stable across runs, machines and row order."""
    if not 0.0 <= test_fraction < 1.0:
        raise ContractError("test_fraction", f"must be in [0, 1), got {test_fraction}")
    test = set()
    for q in set(query_ids):
        h = int.from_bytes(hashlib.sha256(f"{seed}:{q}".encode()).digest()[:8], "big")
        if h / 2**64 < test_fraction:
            test.add(q)
    return test


def split_table(table: pl.DataFrame, split_column: str | None = None, test_fraction: float = 0.3,
                seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Train and test parts (see the module docstring) and how they were made: ``how`` and
    ``test_queries_dropped_as_seen_in_train``.  Either part may be empty; callers that need both say so."""
    if split_column is not None:
        if split_column not in table.columns:
            raise ContractError(split_column, f"no such column (columns: {', '.join(table.columns)})")
        values = set(table[split_column].cast(pl.String).unique().to_list())
        if values != {"train", "test"}:
            raise ContractError(split_column, f"must hold exactly 'train' and 'test', got {sorted(map(str, values))}")
        is_test = pl.col(split_column).cast(pl.String) == "test"
        how = f"column {split_column!r}"
    else:
        test_ids = split_query_ids(table["query_id"].to_list(), test_fraction, seed)
        is_test = pl.col("query_id").is_in(sorted(test_ids))
        how = f"query_id hash, test fraction {test_fraction}, seed {seed}"
    train, test = table.filter(~is_test), table.filter(is_test)
    seen = pl.col("query").is_in(sorted(set(train["query"].unique().to_list())))
    leaked = test.filter(seen)["query_id"].n_unique()
    return train, test.filter(~seen), {"how": how, "test_queries_dropped_as_seen_in_train": leaked}
