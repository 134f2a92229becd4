"""Per-candidate model inputs: the one definition the pipeline (training rows) and the runtime
(scoring) both call, so a candidate is described identically on both sides.

A quality model sees, beside the query's features, for each candidate:

- ``model__<name>``: 1.0 for the candidate called <name>, else 0.0 (its learned identity);
- ``model_cap__<kind>``: 1.0 when the candidate declares that capability;
- ``model_size_b``: parameters in billions (NaN when not declared);
- ``model_log2_context``: log2 of the context length in tokens (NaN when not declared).

Training also shows the model rows with every identity input at 0.0 ("a model it has never seen"),
so a model added to the pool later is scored from its descriptors instead of being ignored.

The descriptor prior (the artifact's optional ``descriptor_prior``, ``flows/prior.py``) scores a model
the quality model has no outcomes for from what is known about it, never its identity: the
capabilities and ``model_size_b``, ``model_log2_context`` above, plus

- ``model_family__<family>``: 1.0 when the candidate declares that ``family`` (pool field);
- ``model_name_token__<token>``: 1.0 when ``<token>`` is one of the words of the candidate's name
  (``name_tokens``: "llama3-chatqa-1.5-8b" -> llama, chatqa), for the words of the trained models'
  names: what is known about a model even when nothing is declared.  A fine-tune's name says what it
  was tuned for (ChatQA, Nemotron, Coder), which its size does not;
- ``model_benchmark_score``: its declared public ``benchmark_score`` in [0, 1] (NaN when absent);
- ``model_quant_bits``: bits per weight read from its ``quantization`` ("Q4_K_M" 4, "Q8_0" 8,
  "F16"/"BF16" 16, "F32" 32; NaN when absent or not of that form).

These names are new in this runtime; only the prior uses them, so the quality model's inputs (and an
older runtime's reading of them) are unchanged.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from .pool import ModelInfo

__all__ = ["IDENTITY_PREFIX", "CAPABILITY_PREFIX", "FAMILY_PREFIX", "NAME_TOKEN_PREFIX", "DESCRIPTORS", "PRIOR_DESCRIPTORS",
           "is_candidate_input", "candidate_input_names", "prior_input_names", "candidate_value",
           "candidate_vector", "quant_bits", "declared_descriptors", "name_tokens"]

IDENTITY_PREFIX = "model__"
CAPABILITY_PREFIX = "model_cap__"
FAMILY_PREFIX = "model_family__"
NAME_TOKEN_PREFIX = "model_name_token__"
DESCRIPTORS = ("model_size_b", "model_log2_context")
PRIOR_DESCRIPTORS = (*DESCRIPTORS, "model_benchmark_score", "model_quant_bits")
_NAN = float("nan")


def is_candidate_input(name: str) -> bool:
    return (name.startswith(IDENTITY_PREFIX) or name.startswith(CAPABILITY_PREFIX)
            or name.startswith(FAMILY_PREFIX) or name.startswith(NAME_TOKEN_PREFIX) or name in PRIOR_DESCRIPTORS)


def name_tokens(name: str) -> frozenset[str]:
    """The words of a model's name: its runs of ASCII letters, lower-cased, of two letters or more
    ("Llama-3.1-Nemotron-51B-Instruct" -> llama, nemotron, instruct; the "b" of a size and the "v"
    of a version are dropped with the digits).  "it", Google's suffix for instruction-tuned, reads as
    "instruct", so Gemma's "-it" and Llama's "-Instruct" say the same."""
    words, run = set(), []
    for ch in name.lower() + " ":
        if "a" <= ch <= "z":
            run.append(ch)
            continue
        if len(run) >= 2:
            word = "".join(run)
            words.add(_WORD_SYNONYMS.get(word, word))
        run = []
    return frozenset(words)


_WORD_SYNONYMS = {"it": "instruct"}


def quant_bits(quantization: object) -> float:
    """Bits per weight of a quantization name ("Q4_K_M" -> 4.0, "BF16" -> 16.0); NaN when unknown."""
    if not isinstance(quantization, str):
        return _NAN
    q = quantization.strip().upper()
    for prefix in ("IQ", "Q", "BF", "F"):
        if q.startswith(prefix):
            digits = ""
            for ch in q[len(prefix):]:
                if not "0" <= ch <= "9":
                    break
                digits += ch
            return float(digits) if digits and 0 < int(digits) <= 64 else _NAN
    return _NAN


def candidate_input_names(trained_models: Iterable[str], pool: Sequence[ModelInfo]) -> list[str]:
    """Identity one-hots of the trained models, then capabilities seen in the pool, then descriptors."""
    caps = sorted({c for m in pool for c in m.capabilities})
    return ([IDENTITY_PREFIX + m for m in sorted(trained_models)]
            + [CAPABILITY_PREFIX + c for c in caps] + list(DESCRIPTORS))


def prior_input_names(pool: Sequence[ModelInfo]) -> list[str]:
    """The descriptor prior's candidate inputs: capabilities, families and name words seen in the
    pool, then the numeric descriptors (never an identity)."""
    caps = sorted({c for m in pool for c in m.capabilities})
    families = sorted({m.extra["family"] for m in pool if isinstance(m.extra.get("family"), str)})
    words = sorted({w for m in pool for w in name_tokens(m.name)})
    return ([CAPABILITY_PREFIX + c for c in caps] + [FAMILY_PREFIX + f for f in families]
            + [NAME_TOKEN_PREFIX + w for w in words] + list(PRIOR_DESCRIPTORS))


def declared_descriptors(model: ModelInfo) -> list[str]:
    """What is declared about ``model`` that a descriptor prior reads, as ``field value`` texts
    (for a decision's reason): size, family, benchmark score, quantization, context."""
    out = []
    if model.size_b is not None:
        out.append(f"size_b {model.size_b:g}")
    fam = model.extra.get("family")
    if isinstance(fam, str):
        out.append(f"family {fam}")
    score = model.extra.get("benchmark_score")
    if isinstance(score, (int, float)) and not isinstance(score, bool):
        out.append(f"benchmark_score {score:g}")
    if not math.isnan(quant_bits(model.extra.get("quantization"))):
        out.append(f"quantization {model.extra['quantization']}")
    if model.context_length is not None:
        out.append(f"context_length {model.context_length}")
    return out


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
    if name.startswith(FAMILY_PREFIX):
        return 1.0 if model.extra.get("family") == name[len(FAMILY_PREFIX):] else 0.0
    if name.startswith(NAME_TOKEN_PREFIX):
        return 1.0 if name[len(NAME_TOKEN_PREFIX):] in name_tokens(model.name) else 0.0
    if name == "model_benchmark_score":
        v = model.extra.get("benchmark_score")
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else _NAN
    if name == "model_quant_bits":
        return quant_bits(model.extra.get("quantization"))
    raise KeyError(f"not a candidate input: {name!r}")


def candidate_vector(names: Sequence[str], model: ModelInfo, *, known: bool = True) -> tuple[float, ...]:
    return tuple(candidate_value(n, model, known=known) for n in names)
