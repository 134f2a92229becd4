import numpy as np, study, collections
from catboost import CatBoostClassifier
from flows.benchmark_eval import split_benchmark
name, load = study.SETS["rp"]; t = load()
for seed in range(2):
    train, test, _ = split_benchmark(t, None, 0.3, seed)
    tr, te, scale = study.prepare(name, train, test, seed)
    to = dict(t.select("query_id","task").unique("query_id").iter_rows())
    ttr=np.array([to[q] for q in tr.query_ids]); tte=np.array([to[q] for q in te.query_ids])
    se = study.StaticEmbedding(tr.queries, dims=32)
    xb_tr, xb_te = study.base_features(tr.queries, [tr.queries, te.queries])
    for lab,(a,b) in {"base": (xb_tr, xb_te), "base+static32": (np.hstack([xb_tr,se.transform(tr.queries)]), np.hstack([xb_te,se.transform(te.queries)]))}.items():
        m = CatBoostClassifier(iterations=300, depth=4, learning_rate=0.1, thread_count=1, verbose=0, random_seed=0)
        m.fit(a, ttr); p = m.predict(b).ravel()
        print(seed, lab, round(np.mean(p==tte),3))
        if lab=="base+static32": print(collections.Counter((x,y) for x,y in zip(tte,p) if x!=y).most_common(8))
