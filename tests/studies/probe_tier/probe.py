"""Stage 1 of the probe-tier study (issue 12 item 3): per query, one llama.cpp prefill of SmolLM2-135M-Instruct
Q4_1 (the smallest GGUF model the tests use), n_threads=1, prompt = BOS + raw query text truncated to MAX_TOKENS.
From that single decode:
  - emb: mean over the prompt's tokens of the model's last hidden state (pooling NONE, per-token embeddings),
  - lp_mean / lp_std / lp_min: log-probability of each prompt token given its prefix (logits of every position),
  - n_tok: the untruncated token count.
Timed per query: tokenize, decode (llama.cpp prefill), post (log-softmax + pooling in numpy).

    cd /work/wt-t && nice -n 10 /work/main/.venv/bin/python tests/studies/probe_tier/probe.py --set rp
    ... --set dc                      -> tests/studies/probe_tier/probe_<set>.npz (rebuildable; not committed)
    ... --gen 8                       -> ms/token of generation on SmolLM2 (same settings) -> gen.json
    ... --bench 60 --max-tokens 512   -> probe latency p50/p99 (wall and thread CPU) at a 512-token cap
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
DATA = Path("/work/shared/data")
MAX_TOKENS = 128  # 512 in the brief; 128 because prefill ran at ~13 ms/token on this shared machine (RESULTS.md)
DC_LIMIT = 1200   # dcrouter: the first 1,200 distinct query texts in sha256 order (CPU budget, RESULTS.md)


def queries(setkey: str) -> list[str]:
    from flows.importers import import_dcrouter, import_routeprofile
    t = import_routeprofile(DATA / "routeprofile") if setkey == "rp" else import_dcrouter(DATA / "llmrouter_dcrouter")
    # sha256 order: any prefix is a random subset, so a checkpoint or a --limit is an unbiased sample
    return sorted(t["query"].unique().to_list(), key=lambda q: hashlib.sha256(q.encode("utf-8")).hexdigest())


def model(embedding: bool):
    import llama_cpp
    from llama_models import smollm2_path
    kw = dict(embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_NONE, logits_all=True) if embedding else {}
    return llama_cpp.Llama(str(smollm2_path()), n_ctx=MAX_TOKENS + 64, n_batch=MAX_TOKENS, n_ubatch=MAX_TOKENS,
                           n_threads=1, n_threads_batch=1, verbose=False, seed=0, **kw)


def probe_one(llm, text: str):
    import llama_cpp
    t0 = time.perf_counter()
    toks_all = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
    toks = toks_all[:MAX_TOKENS]
    n = len(toks)
    t1 = time.perf_counter()
    llm._ctx.kv_cache_clear()
    llm._batch.reset()
    llm._batch.set_batch(batch=toks, n_past=0, logits_all=True)
    llm._ctx.decode(llm._batch)
    t2 = time.perf_counter()
    logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n, llm.n_vocab()))
    hid = np.ctypeslib.as_array(llama_cpp.llama_get_embeddings(llm._ctx.ctx), shape=(n, llm.n_embd()))
    emb = hid.mean(axis=0, dtype=np.float64)
    if n > 1:
        lg = logits[:-1]
        mx = lg.max(axis=1)
        lse = mx + np.log(np.exp(lg - mx[:, None]).sum(axis=1))
        lp = lg[np.arange(n - 1), toks[1:]] - lse
        stats = (float(lp.mean()), float(lp.std()), float(lp.min()))
    else:
        stats = (0.0, 0.0, 0.0)
    t3 = time.perf_counter()
    return emb, stats, len(toks_all), n, (t1 - t0, t2 - t1, t3 - t2)


def save(setkey, qs, embs, stats, ntok, nused, times, offset=0):
    np.savez_compressed(HERE / f"probe_{setkey}{f'_{offset}' if offset else ''}.npz", queries=np.array(qs, dtype=str), emb=np.vstack(embs),
                        lp=np.array(stats), n_tok=np.array(ntok), n_used=np.array(nused),
                        ms=np.array(times) * 1000, max_tokens=MAX_TOKENS)


def run_probe(setkey: str, limit: int | None, offset: int = 0):
    # --offset N: continue the sha256 order from query N into probe_<set>_<N>.npz (probe_study reads all parts)
    qs = queries(setkey)[offset:limit or (DC_LIMIT if setkey == "dc" else None)]
    llm = model(embedding=True)
    probe_one(llm, "warm up the model once")
    embs, stats, ntok, nused, times = [], [], [], [], []
    t_start = time.time()
    for i, q in enumerate(qs):
        e, s, na, nu, t = probe_one(llm, q)
        embs.append(e.astype(np.float32)); stats.append(s); ntok.append(na); nused.append(nu); times.append(t)
        if i % 100 == 0 or i == len(qs) - 1:
            print(setkey, i, len(qs), f"{time.time() - t_start:.0f}s", flush=True)
            save(setkey, qs[:i + 1], embs, stats, ntok, nused, times, offset)
    times = np.array(times) * 1000
    tot = times.sum(axis=1)
    print(json.dumps({"set": setkey, "n": len(qs), "tokens_used_p50": float(np.median(nused)),
                      "tokens_used_mean": float(np.mean(nused)), "truncated": int(np.sum(np.array(ntok) > MAX_TOKENS)),
                      "decode_ms_p50": float(np.percentile(times[:, 1], 50)),
                      "decode_ms_p99": float(np.percentile(times[:, 1], 99)),
                      "total_ms_p50": float(np.percentile(tot, 50)), "total_ms_p99": float(np.percentile(tot, 99)),
                      "post_ms_p50": float(np.percentile(times[:, 2], 50))}), flush=True)


def run_gen(n_prompts: int, max_tokens: int = 32):
    """Generation speed of the same model and settings: ms per generated token (decode phase only, greedy,
    EOS not stopping the loop so every prompt gives max_tokens steps).  Wall time is what the machine's load
    allows; thread CPU time is what one uncontended core would take."""
    qs = queries("rp")[:n_prompts]
    llm = model(embedding=False)
    wall, cpu = [], []
    for q in qs:
        toks = llm.tokenize(q.encode("utf-8"), add_bos=True)[:MAX_TOKENS]
        llm.reset()
        llm.eval(toks)
        t0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(max_tokens):
            llm.eval([llm.sample(temp=0.0)])
        wall.append((time.perf_counter() - t0) * 1000 / max_tokens)
        cpu.append((time.thread_time() - c0) * 1000 / max_tokens)
    r = {"prompts": len(wall), "max_tokens": max_tokens, "wall_ms_per_token_p50": float(np.median(wall)),
         "cpu_ms_per_token_p50": float(np.median(cpu)), "cpu_ms_per_token_mean": float(np.mean(cpu))}
    (HERE / "gen.json").write_text(json.dumps(r, indent=1))
    print(json.dumps(r), flush=True)


def run_bench(n: int, max_tokens: int):
    """Probe latency at a given prompt cap (512 as in the brief): wall and thread-CPU ms per query."""
    global MAX_TOKENS
    MAX_TOKENS = max_tokens
    qs = queries("rp")[:n]
    llm = model(embedding=True)
    probe_one(llm, "warm up the model once")
    wall, cpu, used = [], [], []
    for q in qs:
        t0, c0 = time.perf_counter(), time.thread_time()
        _, _, _, nu, _ = probe_one(llm, q)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
        used.append(nu)
    wall, cpu, used = map(np.array, (wall, cpu, used))
    r = {"n": n, "max_tokens": max_tokens, "tokens_p50": float(np.median(used)), "tokens_max": int(used.max()),
         "wall_ms_p50": float(np.percentile(wall, 50)), "wall_ms_p99": float(np.percentile(wall, 99)),
         "cpu_ms_p50": float(np.percentile(cpu, 50)), "cpu_ms_p99": float(np.percentile(cpu, 99)),
         "cpu_ms_per_prompt_token": float(cpu.sum() / used.sum())}
    (HERE / f"bench_{max_tokens}.json").write_text(json.dumps(r, indent=1))
    print(json.dumps(r), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", choices=("rp", "dc"))
    ap.add_argument("--limit", type=int)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--gen", type=int)
    ap.add_argument("--bench", type=int, help="number of routeprofile queries to time at --max-tokens")
    ap.add_argument("--max-tokens", type=int, default=512)
    a = ap.parse_args()
    if a.bench:
        run_bench(a.bench, a.max_tokens)
    elif a.gen:
        run_gen(a.gen)
    else:
        run_probe(a.set, a.limit, a.offset)
