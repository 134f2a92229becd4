"""The three engines a decision can be computed on, with bit-identical results (tests check it):
``"compiled"`` (the optional C extension ``router_runtime._speedups``: features and tree scoring),
``"numpy"`` (features in Python, trees with numpy) and ``"python"`` (the standard library only, the
reference).  ``engine="auto"`` takes the first one this installation has.  This module chooses the
engine, says why one is unavailable, and builds an artifact's parts on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ContractError, MissingDependencyError, ZetaError

if TYPE_CHECKING:
    from .artifact import Artifact

__all__ = ["ENGINES", "available_engines", "resolve_engine", "build_parts", "build_scorer"]

ENGINES = ("compiled", "numpy", "python")  # fastest first: what engine="auto" tries


def build_parts(artifact: Artifact, engine: str, *, auto: bool) -> tuple[tuple[str, Any, Any, Any], str | None]:
    """((engine, extract, score, stack), problem) of ``artifact`` on ``engine``.

    The compiled engine may refuse an artifact it cannot take exactly (leaf sums beyond int64, a
    plan beyond its limits): under ``engine="auto"`` the next engine takes it and ``problem`` says
    why; asked for by name, that is the caller's error."""
    spec, scorer = artifact.feature_spec, artifact.scorer
    parts, problem = None, None
    if engine == "compiled":
        from .compiled import CompiledScorer, CompiledSpec

        try:
            compiled = CompiledScorer(scorer)
            parts = ("compiled", CompiledSpec(spec).extract, compiled.score, compiled.stack)
        except (ValueError, ZetaError) as exc:
            if not auto:
                raise ContractError("engine", f"the compiled engine cannot take artifact "
                                              f"{artifact.version}: {exc}") from None
            engine = "numpy" if _why_not("numpy") is None else "python"
            problem = f"compiled engine refused artifact {artifact.version} ({exc}): using {engine}"
    if parts is None and engine == "numpy":
        import numpy

        parts = ("numpy", spec.extract, lambda q, b: scorer.score(q, b, use_numpy=True),
                 lambda rows: numpy.asarray(rows, dtype=numpy.intp))
    elif parts is None:
        parts = ("python", spec.extract, scorer.score, tuple)
    return parts, problem


def build_scorer(scorer, engine: str) -> tuple[Any, Any]:
    """(score, stack) of a second ensemble (the length model) on the engine the quality model
    runs on: the same evaluator, so the same bit-identical results.  Where the compiled engine
    refuses it, numpy or pure Python takes it (identical numbers, slower)."""
    if engine == "compiled":
        from .compiled import CompiledScorer

        try:
            compiled = CompiledScorer(scorer)
            return compiled.score, compiled.stack
        except (ValueError, ZetaError):
            engine = "numpy" if _why_not("numpy") is None else "python"
    if engine == "numpy":
        import numpy

        return (lambda q, b: scorer.score(q, b, use_numpy=True),
                lambda rows: numpy.asarray(rows, dtype=numpy.intp))
    return scorer.score, tuple


def available_engines() -> dict[str, str | None]:
    """Per engine, None when this installation can use it, else why not."""
    return {e: _why_not(e) for e in ENGINES}


def _why_not(engine: str) -> str | None:
    # Checked one engine at a time: asking for "python" must not import numpy.
    if engine == "compiled":
        try:
            from .compiled import available, unavailable_reason
        except ImportError as exc:  # pragma: no cover - a broken installation
            return f"router_runtime.compiled cannot be imported: {exc}"
        return None if available() else unavailable_reason()
    if engine == "numpy":
        try:
            import numpy  # noqa: F401  (imported here, never at package import)
        except ImportError:
            return "numpy is not installed: pip install zeta-router[fast]"
    return None


def resolve_engine(engine: str, use_numpy: bool | None) -> str:
    if engine not in ("auto",) + ENGINES:
        raise ContractError("engine", f"must be 'auto' or one of {list(ENGINES)}, got {engine!r}")
    if use_numpy is not None:
        if engine != "auto":
            raise ContractError("use_numpy", "give engine= or use_numpy=, not both")
        engine = "numpy" if use_numpy else "python"
    if engine == "auto":
        return next(e for e in ENGINES if _why_not(e) is None)
    why = _why_not(engine)
    if why is not None:
        raise MissingDependencyError(f"engine {engine!r} is not available: {why}")
    return engine
