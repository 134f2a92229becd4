"""Cost of the static-embedding op at decision time (1 KB query, table of the train vocabulary x 32 int8).
Run: PYTHONPATH=/work/main /work/main/.venv/bin/python bench_op.py"""
import time, json, numpy as np, study
from array import array
qs = json.load(open("/work/shared/data/llmrouter_dcrouter/train.json"))
train = [r["question"] for r in qs]
se = study.StaticEmbedding(train, dims=32)
print("vocab", len(se.vocab), "dims", se.dims, "table bytes", se.table.nbytes)
q = " ".join(train[:50])[:1024]
_TB = study._TOKEN_BYTES
vocab_b = {t.encode(): i for t, i in se.vocab.items()}
rows_py = [array("b", r.tobytes()) for r in se.table]  # pure Python rows
scale = se.scale.tolist()
D = se.dims
def op_python(q):
    toks = q.encode().translate(_TB).split()
    acc = [0] * D; n = 0
    for t in toks:
        i = vocab_b.get(t)
        if i is not None:
            n += 1
            r = rows_py[i]
            for d in range(D):
                acc[d] += r[d]
    return [float(acc[d]) * scale[d] / n for d in range(D)] if n else [0.0] * D
tab64 = se.table.astype(np.int64)
def op_numpy(q):
    toks = q.encode().translate(_TB).split()
    idx = [i for i in map(vocab_b.get, toks) if i is not None]
    if not idx:
        return np.zeros(D)
    return tab64[idx].sum(axis=0).astype(np.float64) * se.scale / float(len(idx))
ref = se.transform([q])[0]
assert np.array_equal(np.array(op_python(q)), ref) and np.array_equal(op_numpy(q), ref)
for f in (op_python, op_numpy):
    ts = []
    for _ in range(2000):
        t0 = time.perf_counter_ns(); f(q); ts.append(time.perf_counter_ns() - t0)
    ts = np.array(ts) / 1000
    print(f.__name__, "p50 %.1f us p99 %.1f us" % (np.percentile(ts, 50), np.percentile(ts, 99)), "tokens", len(q.encode().translate(_TB).split()))
