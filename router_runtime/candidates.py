"""Per-candidate model inputs: the one definition the pipeline (training rows) and the runtime
(scoring) both call, so a candidate is described identically on both sides.

A quality model sees, beside the query's features, for each candidate:

- ``model__<name>``: 1.0 for the candidate called <name>, else 0.0 (its learned identity);
- ``model_cap__<kind>``: 1.0 when the candidate declares that capability;
- ``model_size_b``: parameters in billions (NaN when not declared);
- ``model_log2_context``: log2 of the context length in tokens (NaN when not declared).

Training also shows the model rows with every identity input at 0.0 ("a model it has never seen"),
so a model added to the pool later is scored from its descriptors instead of being ignored.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from .pool import ModelInfo

__all__ = ["IDENTITY_PREFIX", "CAPABILITY_PREFIX", "DESCRIPTORS", "is_candidate_input",
           "candidate_input_names", "candidate_value", "candidate_vector"]

IDENTITY_PREFIX = "model__"
CAPABILITY_PREFIX = "model_cap__"
DESCRIPTORS = ("model_size_b", "model_log2_context")
_NAN = float("nan")


def is_candidate_input(name: str) -> bool:
    return name.startswith(IDENTITY_PREFIX) or name.startswith(CAPABILITY_PREFIX) or name in DESCRIPTORS


def candidate_input_names(trained_models: Iterable[str], pool: Sequence[ModelInfo]) -> list[str]:
    """Identity one-hots of the trained models, then capabilities seen in the pool, then descriptors."""
    caps = sorted({c for m in pool for c in m.capabilities})
    return ([IDENTITY_PREFIX + m for m in sorted(trained_models)]
            + [CAPABILITY_PREFIX + c for c in caps] + list(DESCRIPTORS))


def candidate_value(name: str, model: ModelInfo, *, known: bool = True) -> float:
    """The value of candidate input ``name`` for ``model``; ``known=False`` hides its identity."""
    if name.startswith(IDENTITY_PREFIX):
        return 1.0 if known and name[len(IDENTITY_PREFIX):] == model.name else 0.0
    if name.startswith(CAPABILITY_PREFIX):
        return 1.0 if name[len(CAPABILITY_PREFIX):] in model.capabilities else 0.0
    if name == "model_size_b":
        return _NAN if model.size_b is None else float(model.size_b)
    if name == "model_log2_context":
        return _NAN if model.context_length is None else math.log2(model.context_length)
    raise KeyError(f"not a candidate input: {name!r}")


def candidate_vector(names: Sequence[str], model: ModelInfo, *, known: bool = True) -> tuple[float, ...]:
    return tuple(candidate_value(n, model, known=known) for n in names)
