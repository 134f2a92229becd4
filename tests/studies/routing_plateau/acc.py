import numpy as np, study
from flows.benchmark_eval import split_benchmark
name, load = study.SETS["rp"]; t = load()
for seed in range(5):
    train, test, _ = split_benchmark(t, None, 0.3, seed)
    tr, te, scale = study.prepare(name, train, test, seed)
    to = dict(t.select("query_id","task").unique("query_id").iter_rows())
    ttr=[to[q] for q in tr.query_ids]; tte=[to[q] for q in te.query_ids]
    se = study.StaticEmbedding(tr.queries, dims=32)
    for lab,(a,b) in {"static32": (se.transform(tr.queries), se.transform(te.queries)),
                      "sent32": tuple(study.sentence_pca(name, tr.queries, [tr.queries, te.queries]))}.items():
        names, ptr, pte = study.task_probs(a, b, ttr, texts_tr=tr.queries)
        acc = np.mean([names[i]==x for i,x in zip(pte.argmax(1), tte)])
        print(seed, lab, round(acc,3))
