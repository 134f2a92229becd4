"""Mean ± std of the gap per (dataset, a, r, variant) of one results file (a quick look; study.py report
writes the tables)."""
import sys
import polars as pl
df = pl.read_ndjson(sys.argv[1])
keys = ["dataset", "a", "r", "variant"]
out = (df.group_by(keys, maintain_order=True)
       .agg(pl.col("gap").mean().alias("gap"), pl.col("gap").std().alias("std"), pl.len().alias("n"),
            pl.col("gain").mean().alias("gain"), pl.col("gain_full").mean().alias("gain_full"))
       .sort(["dataset", "a", "r", "gap"], descending=[False, False, False, True]))
pl.Config.set_tbl_rows(400); pl.Config.set_fmt_str_lengths(60); pl.Config.set_tbl_width_chars(250); pl.Config.set_tbl_cols(20)
print(out)
