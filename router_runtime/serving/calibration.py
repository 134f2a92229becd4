"""``zeta calibrate POOL``: measure each model's local cost model on this machine and write it back.

For every model of the pool that has a ``gguf``, the llama.cpp backend times loading it, evaluating a
prompt of ``prompt_tokens`` tokens and generating ``gen_tokens`` tokens (end-of-sequence suppressed, so
the count is exact), ``repeats`` times, and keeps the medians as ``load_ms``, ``ms_per_prompt_token``
and ``ms_per_token``.  The pool file is then updated in place (``pool.update_pool_file``: only those
three keys change; comments and layout stay).  A model whose ``cost``/``latency_ms`` is declared
explicitly keeps it: the calibrated numbers then serve the load penalty only.

One such measurement is a *round*.  A busy machine moved the medians of one round by 3x from one
run to the next, so rounds repeat (``measure_until_stable``) until the last two rounds' medians
agree within ``tolerance`` (10 %) on every field, at most ``max_rounds``; the written value is the
median of the rounds' medians, the spread (largest / smallest round, per field) is reported, and a
spread above ``SPREAD_WARNING`` (3x) is a warning: the numbers are not to be trusted as they are.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .._checks import is_integer
from ..errors import ContractError
from ..pool import load_pool, update_pool_file

__all__ = ["calibrate_pool", "measure_until_stable", "Calibration", "CALIBRATED_FIELDS", "SPREAD_WARNING"]

CALIBRATED_FIELDS = ("load_ms", "ms_per_prompt_token", "ms_per_token")
SPREAD_WARNING = 3.0


@dataclass(frozen=True)
class Calibration:
    """One model's calibration over several rounds."""

    values: Mapping[str, float]          # what is written: per field, the median of the rounds' medians
    rounds: tuple[Mapping[str, float], ...]
    stable: bool | None                  # the last two rounds agreed within the tolerance (None: one round)
    spread: Mapping[str, float]          # per field, largest / smallest round (1.0: identical)

    @property
    def warning(self) -> str | None:
        """Why these numbers are not to be trusted, or None."""
        wide = {f: x for f, x in self.spread.items() if x > SPREAD_WARNING}
        notes = []
        if wide:
            notes.append("rounds disagree by more than %gx (%s): the machine is busy or the model is "
                         "throttled; calibrate again when it is idle" % (
                             SPREAD_WARNING, ", ".join(f"{f} {x:.1f}x" for f, x in wide.items())))
        if self.stable is False:
            notes.append(f"not stable after {len(self.rounds)} rounds")
        return "; ".join(notes) or None


def _agree(a: Mapping[str, float], b: Mapping[str, float], tolerance: float) -> bool:
    return a.keys() == b.keys() and all(abs(a[f] - b[f]) <= tolerance * max(abs(a[f]), abs(b[f])) for f in a)


def _check_rounds(max_rounds: int, tolerance: float) -> None:
    if not is_integer(max_rounds) or max_rounds < 1:
        raise ContractError("max_rounds", f"must be an integer >= 1, got {max_rounds!r}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 < tolerance < 1:
        raise ContractError("tolerance", f"must be a number in (0, 1), got {tolerance!r}")


def measure_until_stable(measure: Callable[[], Mapping[str, float]], *, max_rounds: int = 5,
                         tolerance: float = 0.10) -> Calibration:
    """Call ``measure`` (one round: field -> median) until the last two rounds agree within
    ``tolerance`` (relative) on every field, at most ``max_rounds`` times."""
    _check_rounds(max_rounds, tolerance)
    rounds = [dict(measure())]
    stable = None
    while len(rounds) < max_rounds:
        rounds.append(dict(measure()))
        stable = _agree(rounds[-2], rounds[-1], tolerance)
        if stable:
            break
    fields = [f for f in rounds[0] if all(f in r for r in rounds)]
    values = {f: round(statistics.median(r[f] for r in rounds), 4) for f in fields}
    spread = {}
    for f in fields:
        lo, hi = min(r[f] for r in rounds), max(r[f] for r in rounds)
        spread[f] = hi / lo if lo > 0 else (1.0 if hi == lo else float("inf"))
    return Calibration(values, tuple(rounds), stable, spread)


def calibrate_pool(pool_path: str | os.PathLike, *, models: Sequence[str] | None = None, prompt_tokens: int = 128,
                   gen_tokens: int = 32, repeats: int = 3, write: bool = True,
                   n_threads: int | None = None, max_rounds: int = 5, tolerance: float = 0.10,
                   on_model: Callable[[str, Calibration], None] | None = None) -> dict[str, dict[str, float]]:
    """Measured cost models by model name (models without a ``gguf`` are left out); written back to
    ``pool_path`` unless ``write`` is false.  Each model is measured in rounds until stable
    (``measure_until_stable``); ``on_model`` receives each model's ``Calibration`` (rounds, spread,
    warning)."""
    from .llama import LlamaBackend

    for name, v, lo in (("prompt_tokens", prompt_tokens, 1), ("gen_tokens", gen_tokens, 1), ("repeats", repeats, 1)):
        if not is_integer(v) or v < lo:
            raise ContractError(name, f"must be an integer >= {lo}, got {v!r}")
    _check_rounds(max_rounds, tolerance)  # before any model is loaded
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
        results = {}
        for m in chosen:
            cal = measure_until_stable(
                lambda m=m: backend.calibrate(m.name, prompt_tokens=prompt_tokens, gen_tokens=gen_tokens,
                                              repeats=repeats), max_rounds=max_rounds, tolerance=tolerance)
            results[m.name] = dict(cal.values)
            if on_model is not None:
                on_model(m.name, cal)
    finally:
        backend.close()
    if write and results:
        update_pool_file(pool_path, results)
    return results
