"""Shadow groups (flows.evaluate.fullinfo): a logged answer and its shadow answers form one
full-information row, on hand-built rows."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from flows.evaluate.fullinfo import shadow_groups

T = datetime(2026, 1, 1, tzinfo=timezone.utc)


def rows(*spec) -> pl.DataFrame:
    return pl.DataFrame([{"query_id": qid, "query": f"q of {shadow_of or qid}", "model": m, "quality": q, "cost": c,
                          "shadow_of": shadow_of, "ts": T} for qid, m, q, c, shadow_of in spec],
                        schema={"query_id": pl.String, "query": pl.String, "model": pl.String, "quality": pl.Float64,
                                "cost": pl.Float64, "shadow_of": pl.String, "ts": pl.Datetime("us", "UTC")})


def test_an_original_and_its_labeled_shadows_are_one_row_per_query():
    g = shadow_groups(rows(
        ("d1", "a", 1.0, 1.0, None), ("s1", "b", 0.0, 2.0, "d1"), ("s2", "c", 0.5, 3.0, "d1"),
        ("d2", "a", 1.0, 1.0, None),                                # no shadow: not full information
        ("d3", "a", None, 1.0, None), ("s3", "b", 1.0, 2.0, "d3"),  # original unlabeled: one answer is known
        ("s4", "b", 0.25, 2.0, "d4"), ("s5", "c", 0.75, 3.0, "d4"),  # the original is not curated (yet)
        ("s6", "b", 0.5, 2.0, "d1")))                               # a second answer of b: the first one counts
    got = {r["group"]: (r["models"], r["quality"], r["cost"]) for r in g.iter_rows(named=True)}
    assert got == {"d1": (["a", "b", "c"], [1.0, 0.0, 0.5], [1.0, 2.0, 3.0]),
                   "d4": (["b", "c"], [0.25, 0.75], [2.0, 3.0])}
    assert g.filter(pl.col("group") == "d1")["query"].item() == "q of d1"


def test_no_shadow_rows_no_groups():
    assert shadow_groups(rows(("d1", "a", 1.0, 1.0, None))).is_empty()
    assert shadow_groups(rows()).is_empty()
