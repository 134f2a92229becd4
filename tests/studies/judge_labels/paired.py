"""Paired (same seed) difference of every variant's gap against a base variant, mean ± std over seeds."""
import sys
import polars as pl
df = pl.read_ndjson(sys.argv[1])
base = sys.argv[2] if len(sys.argv) > 2 else "ips_shadow1"
b = df.filter(pl.col("variant") == base).select("dataset", "seed", "a", "r", pl.col("gap").alias("base_gap"))
j = df.join(b, on=["dataset", "seed", "a", "r"]).with_columns(d=pl.col("gap") - pl.col("base_gap"))
out = (j.group_by("dataset", "a", "r", "variant").agg(pl.col("gap").mean().alias("gap"), pl.col("gap").std().alias("gap_std"),
       pl.col("d").mean().alias(f"minus_{base}"), pl.col("d").std().alias("d_std"), (pl.col("d") > 0).sum().alias("wins"), pl.len().alias("n"))
       .sort("dataset", "a", "r", "gap", descending=[False, False, False, True]))
pl.Config.set_tbl_rows(400); pl.Config.set_fmt_str_lengths(40); pl.Config.set_tbl_width_chars(250); pl.Config.set_tbl_cols(20)
print(out)
