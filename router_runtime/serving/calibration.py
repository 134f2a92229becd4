"""``zeta calibrate POOL``: measure each model's local cost model on this machine and write it back.

For every model of the pool that has a ``gguf``, the llama.cpp backend times loading it, evaluating a
prompt of ``prompt_tokens`` tokens and generating ``gen_tokens`` tokens (end-of-sequence suppressed, so
the count is exact), ``repeats`` times, and keeps the medians as ``load_ms``, ``ms_per_prompt_token``
and ``ms_per_token``.  The pool file is then updated in place (``pool.update_pool_file``: only those
three keys change; comments and layout stay).  A model whose ``cost``/``latency_ms`` is declared
explicitly keeps it: the calibrated numbers then serve the load penalty only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .._checks import is_integer
from ..errors import ContractError
from ..pool import load_pool, update_pool_file

__all__ = ["calibrate_pool", "CALIBRATED_FIELDS"]

CALIBRATED_FIELDS = ("load_ms", "ms_per_prompt_token", "ms_per_token")


def calibrate_pool(pool_path: str | os.PathLike, *, models: Sequence[str] | None = None, prompt_tokens: int = 128,
                   gen_tokens: int = 32, repeats: int = 3, write: bool = True,
                   n_threads: int | None = None) -> dict[str, dict[str, float]]:
    """Measured cost models by model name (models without a ``gguf`` are left out); written back to
    ``pool_path`` unless ``write`` is false."""
    from .llama import LlamaBackend

    for name, v, lo in (("prompt_tokens", prompt_tokens, 1), ("gen_tokens", gen_tokens, 1), ("repeats", repeats, 1)):
        if not is_integer(v) or v < lo:
            raise ContractError(name, f"must be an integer >= {lo}, got {v!r}")
    pool = load_pool(pool_path)
    by_name = {m.name: m for m in pool}
    if models is not None:
        unknown = [n for n in models if n not in by_name]
        if unknown:
            raise ContractError("models", f"not in the pool: {unknown}")
        chosen = [by_name[n] for n in models]
    else:
        chosen = [m for m in pool if m.gguf is not None]
    missing = [m.name for m in chosen if m.gguf is None]
    if missing:
        raise ContractError("gguf", f"models without a GGUF path cannot be calibrated: {missing}")
    backend = LlamaBackend(chosen, base_dir=Path(pool_path).resolve().parent, n_threads=n_threads)
    try:
        results = {m.name: backend.calibrate(m.name, prompt_tokens=prompt_tokens, gen_tokens=gen_tokens,
                                             repeats=repeats) for m in chosen}
    finally:
        backend.close()
    if write and results:
        update_pool_file(pool_path, results)
    return results
