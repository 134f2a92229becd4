"""The loop the session 5 studies share: run a study over sets and seeds, keep each result as JSON,
print per-seed and 5-seed summaries (normalized AIQ gain, seeds beating kNN and per-task)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent


def run_sets(run: Callable[[str, int], dict], out_name: str, default_sets: str = "rp,hm,dc") -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default=default_sets)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    a = ap.parse_args()
    out = HERE / out_name
    out.mkdir(exist_ok=True)
    for s in a.sets.split(","):
        wins: dict[str, list] = {}
        for seed in map(int, a.seeds.split(",")):
            r = run(s, seed)
            (out / f"{s}_{seed}.json").write_text(json.dumps(r, indent=1))
            for k, v in r["rows"].items():
                wins.setdefault(k, []).append((v["gain_aiq"], v["beats_aiq"], v["beats_q"]))
            print(s, seed, {k: (round(v["gain_aiq"], 3), v["beats_aiq"], v["beats_q"]) for k, v in r["rows"].items()},
                  flush=True)
        for k, v in wins.items():
            g = np.array([x[0] for x in v])
            print(f"  {s} {k:14s} gain {g.mean():+.3f} ± {g.std(ddof=1):.3f}  beats AIQ {sum(x[1] for x in v)}/{len(v)}"
                  f"  q {sum(x[2] for x in v)}/{len(v)}", flush=True)
