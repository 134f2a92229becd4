"""Synthetic outcome logs at scale: millions of OutcomeRecord lines from a full-information table.

``flows.logs.simulate_logs`` builds one OutcomeRecord per row in Python (about 50 µs each) and can
replay a trained router as the logging policy; this generator is vectorized (numpy draws, Polars
builds and writes the JSON lines) for the sizes the pipeline must scale to: 10M rows in about a
minute per core.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

from router_runtime.errors import ContractError

from .progress import bar

__all__ = ["simulate_logs_at_scale", "POLICIES"]

POLICIES = ("uniform", "mix")
# Realistic variation around the source queries: the same question arrives with greetings, requests
# about the answer and ticket numbers, so the logged texts are not a few thousand exact repeats.
_PREFIXES = ["", "", "", "", "Hi! ", "Please help: ", "Quick question: ", "Question: ", "Hello, ",
             "Can you answer this? "]
_SUFFIXES = ["", "", "", "", " Thanks!", " Please be concise.", " Explain your reasoning.", " (urgent)",
             "\n\nThank you.", " Answer in one paragraph."]


def _cells(table: pl.DataFrame, queries: pl.DataFrame, models: list[str], name: str) -> np.ndarray:
    """A (query, model) matrix of one column of the long table (NaN where absent)."""
    if name not in table.columns:
        return np.full((len(queries), len(models)), np.nan)
    piv = table.pivot(on="model", index="query_id", values=name, aggregate_function="first")
    return queries.select("query_id").join(piv, on="query_id", how="left").select(models).to_numpy().astype(np.float64)


def simulate_logs_at_scale(table: pl.DataFrame, out_dir: str | os.PathLike, *, rows: int, seed: int = 0,
                           days: int = 30, start: datetime | None = None, policy: str = "uniform",
                           failure_rate: float = 0.01, chunk_rows: int = 500_000) -> list[Path]:
    """Write ``rows`` records over ``days`` days, one file per day (``sim-<policy>-seed<seed>-<day>.jsonl``).

    Per record: a query of the table drawn uniformly and perturbed (a greeting before, a request or a
    ticket number after); a model drawn by the logging policy, ``uniform`` (1/K each) or ``mix``
    (∝ 1 / rank of mean cost: the cheapest model gets the most traffic), with its exact propensity;
    that model's revealed quality, cost and token counts; a latency growing with the model's cost and
    the text's length, with log-normal noise; ``failure_rate`` of the calls fail (``success`` false,
    no quality).  Timestamps have a daytime peak and are in order within each file.  Every line is a
    valid OutcomeRecord v1 (``tests/pipeline/test_scale.py`` parses a sample with ``parse_outcome_line``).
    """
    if policy not in POLICIES:
        raise ContractError("policy", f"must be one of {POLICIES} at scale, got {policy!r}")
    if rows < 1 or days < 1:
        raise ContractError("rows", f"rows and days must be positive, got {rows} and {days}")
    models = sorted(table["model"].unique().to_list())
    queries = table.select("query_id", "query").unique("query_id", keep="first").sort("query_id")
    quality, cost, pt, ct = (_cells(table, queries, models, n)
                             for n in ("quality", "cost", "prompt_tokens", "completion_tokens"))
    if np.isnan(quality).any():
        raise ContractError("table", "simulation needs full information: every query answered by every model")
    k = len(models)
    mean_cost = np.nan_to_num(np.nanmean(np.where(np.isnan(cost), np.inf, cost), axis=0), posinf=0.0)
    if policy == "uniform":
        probs = np.full(k, 1.0 / k)
    else:
        probs = 1.0 / (np.argsort(np.argsort(mean_cost, kind="stable"), kind="stable") + 1.0)
        probs /= probs.sum()
    base_ms = 150.0 + 1800.0 * (mean_cost - mean_cost.min()) / (np.ptp(mean_cost) or 1.0)
    rng = np.random.default_rng(seed)
    qtext, qids = queries["query"], queries["query_id"]
    prefixes, suffixes = pl.Series(_PREFIXES), pl.Series(_SUFFIXES)
    start = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, done = [], 0
    col = pl.col
    steps = bar("simulating logs (records)", rows)
    for d in range(days):
        n_day = rows // days + (1 if d < rows % days else 0)
        if n_day == 0:
            continue
        day0 = (start + timedelta(days=d)).astimezone(timezone.utc).replace(tzinfo=None)
        path = out / f"sim-{policy}-seed{seed}-{day0:%Y-%m-%d}.jsonl"
        # Seconds of the day: 70% around 14:00 (sd 3.5 h, wrapped), 30% uniform; sorted: time order.
        peak = rng.random(n_day) < 0.7
        secs = np.sort(np.where(peak, rng.normal(14 * 3600, 3.5 * 3600, n_day) % 86400, rng.uniform(0, 86400, n_day)))
        with open(path, "wb") as f:
            for lo in range(0, n_day, chunk_rows):
                n = min(chunk_rows, n_day - lo)
                qi = rng.integers(0, len(queries), n)
                mi = rng.choice(k, size=n, p=probs)
                ok = rng.random(n) >= failure_rate
                ticket = np.where(rng.random(n) < 0.15, rng.integers(1000, 99999, n), -1)
                frame = pl.DataFrame({
                    "pre": prefixes.gather(rng.integers(0, len(_PREFIXES), n)), "q": qtext.gather(qi),
                    "suf": suffixes.gather(rng.integers(0, len(_SUFFIXES), n)), "ticket": ticket,
                    "qid": qids.gather(qi), "model": pl.Series(models).gather(mi), "p": probs[mi], "ok": ok,
                    "us": (secs[lo:lo + n] * 1e6).astype(np.int64), "quality": quality[qi, mi],
                    "cost": cost[qi, mi], "pt": pt[qi, mi], "ct": ct[qi, mi],
                    "ms": base_ms[mi] * rng.lognormal(0.0, 0.35, n),
                })
                text = pl.concat_str([col("pre"), col("q"), col("suf"),
                                      pl.when(col("ticket") >= 0).then(pl.format(" [ticket {}]", col("ticket")))
                                      .otherwise(pl.lit(""))])
                ts = pl.lit(day0) + pl.duration(microseconds=col("us"))
                frame.select(  # the field order of OutcomeRecord.to_line; query_id is an unknown field (kept)
                    pl.lit(1).alias("schema_version"),
                    pl.format(f"sim-{policy}-{seed}-{{}}", pl.int_range(done, done + n)).alias("decision_id"),
                    ts.dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").alias("ts"),
                    pl.lit(models, dtype=pl.List(pl.String)).alias("candidates"),
                    "model", col("p").alias("propensity"), col("ok").alias("success"),
                    pl.lit(None, dtype=pl.String).alias("artifact_version"), text.alias("query"),
                    pl.lit(None, dtype=pl.String).alias("query_sha256"), pl.lit("chat").alias("request_kind"),
                    pl.lit(False).alias("explored"), pl.lit(None, dtype=pl.String).alias("fallback_from"),
                    (col("ms") * (1.0 + text.str.len_chars() / 2000.0)).round(1).alias("latency_ms"),
                    pl.lit(None, dtype=pl.Float64).alias("ttft_ms"),
                    col("pt").cast(pl.Int64).alias("prompt_tokens"),
                    col("ct").cast(pl.Int64).alias("completion_tokens"),
                    pl.when(col("ok")).then(None).otherwise(pl.lit("timeout")).alias("error"),
                    pl.when(col("ok")).then(col("quality")).alias("quality"),
                    pl.when(col("ok")).then(pl.lit("benchmark")).alias("quality_source"),
                    col("cost").fill_nan(None).alias("cost"), col("qid").alias("query_id"),
                ).write_ndjson(f)
                done += n
                steps.advance(n, note=f"{day0:%Y-%m-%d}")
        paths.append(path)
    steps.close()
    return paths
