"""The optional compiled engine: feature extraction and candidate scoring in C, bit-identical to Python.

``router_runtime._speedups`` is a plain CPython extension built at install time when a C compiler is
present (``setup.py``; a failed build does not fail the install).  This module is its only user:

    >>> from router_runtime import compiled
    >>> compiled.available(), compiled.unavailable_reason()
    >>> extract = compiled.CompiledSpec(artifact.feature_spec).extract      # == FeatureSpec.extract
    >>> scorer = compiled.CompiledScorer(artifact.scorer)
    >>> bases = scorer.stack([base_a, base_b])   # candidate_base tuples, validated and packed once
    >>> scorer.score(extract(query), bases)      # == CandidateScorer.score(q, [base_a, base_b])

The pure-Python code (``FeatureSpec.extract``, ``CandidateScorer.score``) stays the reference:
``tests/runtime/test_compiled.py`` checks both agree bit for bit.  Without the extension, ``available()`` is
False, ``unavailable_reason()`` says why, and constructing ``CompiledSpec`` / ``CompiledScorer`` raises
``MissingDependencyError``.  ``ZETA_NO_SPEEDUPS=1`` in the environment turns the engine off (checked
at import).  Standard library only: never imports numpy.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any, Sequence

from .errors import ContractError, MissingDependencyError
from .features import FeatureSpec
from .text import as_text
from .trees import CandidateScorer

__all__ = ["available", "unavailable_reason", "reason", "CompiledSpec", "CompiledScorer"]

# Must equal FORMAT_VERSION in _speedups.c: a stale build (the C source changed, the module was not
# rebuilt) is refused rather than fed arguments it does not understand.
_FORMAT_VERSION = 2

_OP_KIND = {
    "char_count": 0, "byte_count": 1, "count_class": 2, "count_runs": 3, "count_literal": 4,
    "contains_any": 5, "token_buckets": 6, "ratio": 7, "log1p": 8, "static_embedding": 9,
}

def _stale_source(module) -> str | None:
    """Why an in-place build (editable install, source checkout) no longer matches the C source next
    to it, or None.  Installed wheels carry no source: nothing to compare."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_speedups.c")
    built = getattr(module, "SOURCE_SHA256", "")
    try:
        with open(src, "rb") as fh:
            current = hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None
    if built and built != current:
        return ("router_runtime._speedups was built from another version of _speedups.c (stale build): "
                "rebuild it with `pip install -e .` (or `python setup.py build_ext --inplace`)")
    return None


def _load() -> tuple[Any, str | None]:
    if os.environ.get("ZETA_NO_SPEEDUPS", "") not in ("", "0"):
        return None, "disabled by the ZETA_NO_SPEEDUPS environment variable"
    try:
        from . import _speedups as module
    except ImportError as exc:
        return None, (f"the C extension router_runtime._speedups is not built ({exc}); it is compiled at install "
                      "time when a C compiler and the Python headers are present: reinstall with "
                      "`pip install -e .` (or `pip install .`) on a machine that has them")
    fmt = getattr(module, "FORMAT_VERSION", None)
    if fmt != _FORMAT_VERSION:
        return None, (f"router_runtime._speedups is a stale build (format {fmt}, expected {_FORMAT_VERSION}): "
                      "reinstall with `pip install -e .` to rebuild it")
    stale = _stale_source(module)
    return (None, stale) if stale else (module, None)


_speedups, reason = _load()  # reason: why the compiled engine is unavailable, None when it is available


def available() -> bool:
    """True when the compiled engine can be used in this installation."""
    return _speedups is not None


def unavailable_reason() -> str | None:
    """Why the compiled engine cannot be used, or None when it can."""
    return reason


def _require(what: str):
    if _speedups is None:
        raise MissingDependencyError(f"{what} needs the compiled engine, which is unavailable: {reason}")
    return _speedups


def _describe(spec: FeatureSpec) -> list[tuple]:
    """The flat description ``_speedups.FeaturePlan`` takes: one tuple per feature, in spec order."""
    ops: list[tuple] = []
    index: dict[str, int] = {}  # single-output feature name -> output position
    pos = 0
    for f in spec.features:
        p = f.params
        kind = _OP_KIND[f.op]
        if f.op in ("char_count", "byte_count"):
            d: tuple = (kind,)
        elif f.op in ("count_class", "count_runs"):
            d = (kind, [(int(lo), int(hi)) for lo, hi in p["ranges"]])
        elif f.op == "count_literal":
            d = (kind, p["literal"].encode("utf-8"), bool(p["ascii_lower"]))
        elif f.op == "contains_any":
            d = (kind, tuple(lit.encode("utf-8") for lit in p["literals"]), bool(p["ascii_lower"]))
        elif f.op == "token_buckets":
            vocab = p["vocab"] or {}  # unfitted: CompiledSpec.extract refuses before the plan runs
            d = (kind, p["n_buckets"], {tok.encode("ascii"): k for tok, k in vocab.items()})
        elif f.op == "static_embedding":
            # unfitted: an empty table (never run, as above); fitted: the spec verified length and sha256
            vocab = p["vocab"] or []
            table = base64.b64decode(p["table"]) if p["vocab"] is not None else b""
            d = (kind, p["dims"], {tok.encode("ascii"): r for r, tok in enumerate(vocab)}, table,
                 tuple(float(x) for x in (p["scale"] or [0.0] * p["dims"])))
        elif f.op == "ratio":
            d = (kind, index[p["num"]], index[p["den"]])
        elif f.op == "log1p":
            d = (kind, index[p["of"]])
        else:  # pragma: no cover - FeatureSpec validated the op
            raise ContractError("op", f"unknown op {f.op!r}")
        ops.append(d)
        if f.op == "token_buckets":
            pos += p["n_buckets"]
        elif f.op == "static_embedding":
            pos += p["dims"]
        else:
            index[f.name] = pos
            pos += 1
    return ops


class CompiledSpec:
    """A ``FeatureSpec`` compiled to C.  ``extract(query)`` returns exactly ``spec.extract(query)``:
    the same floats bit for bit, the same errors (TypeError for a non-text query, ContractError for
    an unfitted spec)."""

    __slots__ = ("spec", "extract", "_plan")

    def __init__(self, spec: FeatureSpec):
        speedups = _require("CompiledSpec")
        if not isinstance(spec, FeatureSpec):
            raise TypeError(f"CompiledSpec needs a FeatureSpec, got {type(spec).__name__}")
        self.spec = spec
        self._plan = speedups.FeaturePlan(_describe(spec), spec.max_chars, as_text)
        if self._plan.n_out != len(spec.output_names):  # pragma: no cover - a bug in _describe
            raise ContractError("feature_spec", "compiled plan has a different number of outputs")
        # The C method itself, no Python frame in between; an unfitted spec keeps the reference
        # method, which raises the ContractError that names the unfitted field.
        self.extract = spec.extract if spec.needs_fit else self._plan.extract

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.spec.output_names


class CompiledScorer:
    """A ``CandidateScorer`` compiled to C.  ``score(q, bases)`` returns exactly
    ``scorer.score(q, bases, use_numpy=False)``; ``bases`` is what ``stack`` returns (fast) or a
    sequence of ``candidate_base`` tuples (converted and checked on every call)."""

    __slots__ = ("scorer", "score", "stack", "_impl")

    def __init__(self, scorer: CandidateScorer):
        speedups = _require("CompiledScorer")
        if not isinstance(scorer, CandidateScorer):
            raise TypeError(f"CompiledScorer needs a CandidateScorer, got {type(scorer).__name__}")
        ens = scorer.ensemble
        self.scorer = scorer
        self._impl = speedups.Scorer(
            [(int(i), float(t), float(f)) for i, t, f in scorer._q],
            [tuple((int(t), int(w)) for t, w in c) for c in scorer._contrib],
            [1 << d for d in ens.tree_depth],
            list(scorer._offsets),
            list(scorer._leaves),
            ens._unit, ens.scale, ens.bias,
        )
        self.score = self._impl.score  # score(q, bases) -> list[float]
        self.stack = self._impl.stack  # stack([base, ...]) -> PackedBases, what score() takes fastest

    def candidate_base(self, cand: Sequence[float]) -> tuple[int, ...]:
        """The reference ``CandidateScorer.candidate_base`` (once per model, not per decision)."""
        return self.scorer.candidate_base(cand)
