"""Interleaved A/B of the compiled ``Router.decide``: the default spec against the same spec plus a
``static_embedding`` feature of 32 dims over 17,816 tokens (issue 12); ~1 KB queries (64 distinct, in
turn), 4 candidates, 300 trees, the bench's timed pool (so the length model runs too).  Each iteration
times one decision of each router in turn, so the machine's load hits both alike: the difference is the
op's cost even when the absolute p99 is noisy.  Not a pytest module (nothing is asserted); run it from
the project root:

    PYTHONPATH=$PWD python tests/benchmarks/static_embedding_ab.py [calls]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from flows.bench import ROOT, _train, queries_of, timed_pool
from router_runtime import Router


def main(calls: int = 20_000) -> None:
    registry = Path(tempfile.mkdtemp(prefix="zeta-static-ab-"))
    sample, pool_file = ROOT / "data" / "sample" / "routeprofile", ROOT / "data" / "sample" / "pool.toml"
    arts = {dims: _train(300, registry, sample, pool_file, static_dims=dims).artifact for dims in (0, 32)}
    queries = queries_of(1000)
    routers = {dims: Router(a, pool=timed_pool(a), engine="compiled") for dims, a in arts.items()}
    names = [m.name for m in arts[0].pool if m.can("chat")][:4]
    for r in routers.values():
        assert r.engine == "compiled", r.engine_problem
        for q in queries:  # warm-up
            r.decide(q, candidates=names)
    samples = {dims: np.empty(calls) for dims in routers}
    clock = time.perf_counter_ns
    for i in range(calls):
        q = queries[i % len(queries)]
        for dims, r in routers.items():
            t0 = clock()
            r.decide(q, candidates=names)
            samples[dims][i] = clock() - t0
    for dims, ns in samples.items():
        us = ns / 1000.0
        print(f"static_dims={dims}: compiled decide p50 {np.percentile(us, 50):.1f} us, "
              f"p90 {np.percentile(us, 90):.1f}, p99 {np.percentile(us, 99):.1f}, n={calls}")
    print("load average", os.getloadavg())


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
