"""Completion tokens per answer in the data sets (the generation a better routing decision could save),
as the project's importers read them: routeprofile's measured completion_tokens, dcrouter's cost model.

    cd /work/wt-t && /work/main/.venv/bin/python tests/studies/probe_tier/tokens.py
"""
import sys
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from flows.importers import import_dcrouter, import_routeprofile  # noqa: E402

DATA = Path("/work/shared/data")
for name, t in (("routeprofile", import_routeprofile(DATA / "routeprofile")),
                ("dcrouter", import_dcrouter(DATA / "llmrouter_dcrouter"))):
    c = t["completion_tokens"].cast(pl.Float64).to_numpy()
    c = c[~np.isnan(c)]
    print(name, "answers", len(c), "completion tokens mean %.1f p50 %.0f p90 %.0f" %
          (c.mean(), np.median(c), np.percentile(c, 90)) if len(c) else "no completion_tokens")
