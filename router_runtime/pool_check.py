"""``zeta validate POOL [--artifact A]``: what would go wrong with this pool (and artifact) before
``zeta serve`` or a host service finds out under traffic.

Each check yields ``Finding``s (``ok`` / ``warning`` / ``error``).  The checks reuse the loaders'
own rules instead of restating them: the pool file is read by ``load_pool`` (unknown keys with the
nearest name, types, aliases), its settings by ``load_pool_settings`` (the judge), the artifact by
``load_artifact`` (hashes, format, every field), and the serving pool is ``merge_pool``'s, the one
the Router builds.  What is added here is what those loaders cannot know on their own: whether the
GGUF files are there, whether the memory budget can hold each model, and what an artifact can and
cannot say about this particular pool (cold models, capabilities it never saw, latency coverage).

Standard library only, like the rest of the core: the GGUF files are checked by their magic bytes and
their metadata's trained context length, never loaded.
"""

from __future__ import annotations

import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from .artifact import load_artifact
from .candidates import CAPABILITY_PREFIX, IDENTITY_PREFIX
from .errors import ContractError, ZetaError
from .pool import ModelInfo, load_aliases, load_pool, load_pool_settings, resolve_gguf
from .router import described_descriptors, merge_pool

__all__ = ["Finding", "LEVELS", "check_pool", "findings_summary"]

LEVELS = ("ok", "warning", "error")
GGUF_MAGIC = b"GGUF"  # the first four bytes of every GGUF file (ggml's gguf.h)
# GGUF metadata value types (gguf.h: GGUF_TYPE_*) of fixed size, by their struct format.
_GGUF_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_GGUF_MAX_KEYS = 1 << 16


@dataclass(frozen=True)
class Finding:
    level: str      # ok | warning | error
    subject: str    # what it is about: "pool", "artifact", a model name, "models[2].capabilites" ...
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def line(self) -> str:
        return f"{self.level:7s} {self.subject}: {self.message}"


def findings_summary(findings: Sequence[Finding]) -> dict[str, Any]:
    counts = {lvl: sum(f.level == lvl for f in findings) for lvl in LEVELS}
    return {"ok": counts["error"] == 0, "errors": counts["error"], "warnings": counts["warning"],
            "findings": [f.to_dict() for f in findings]}


def check_pool(pool_path: str | os.PathLike, *, artifact: str | os.PathLike | None = None,
               memory_budget_mb: float | None = None) -> list[Finding]:
    """Every finding about the pool file at ``pool_path`` and, with ``artifact`` (a registry root, a
    version directory or a router.json), about that artifact serving this pool."""
    out: list[Finding] = []
    pool = _check_pool_file(Path(pool_path), out)
    if pool is not None:
        _check_gguf_files(pool, Path(pool_path).resolve().parent, out)
        _check_memory(pool, Path(pool_path).resolve().parent, memory_budget_mb, out)
    if artifact is not None:
        _check_artifact(pool, artifact, out)
    elif pool is not None:
        _check_declared_models(pool, out)
    return out


def _describe(exc: Exception) -> str:
    """A load failure in the operator's words: the OS's message for a file problem, else our own."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.filename is None else f"{exc.strerror.lower()}: {exc.filename}"
    return str(exc)


def _check_pool_file(path: Path, out: list[Finding]) -> tuple[ModelInfo, ...] | None:
    try:
        pool = load_pool(path)
        aliases = load_aliases(path)
        settings = load_pool_settings(path)
    except (ZetaError, OSError) as exc:
        subject, problem = ((exc.field, exc.problem) if isinstance(exc, ContractError)
                            else ("pool", _describe(exc)))
        out.append(Finding("error", subject, f"{problem} ({path}; the pool's models were not checked further)"))
        return None
    out.append(Finding("ok", "pool", f"{len(pool)} models, every key known and every value valid "
                                     f"({', '.join(m.name for m in pool)})"))
    out.append(Finding("ok", "aliases", ", ".join(f"{a} -> {v}" for a, v in sorted(aliases.items()))
                       if aliases else "none declared (auto:cw=<number> still works)"))
    if settings.judge is not None:
        out.append(Finding("ok", "judge", f"{settings.judge} (a generating model of the pool)"))
    for m in pool:
        if m.context_length is None and m.capabilities != ("embed",):
            out.append(Finding("warning", m.name, "no context_length: long prompts are not routed away from it "
                                                   "(llama.cpp serves it with the backend's default context)"))
    return pool


def _check_gguf_files(pool: Sequence[ModelInfo], base: Path, out: list[Finding]) -> None:
    with_file = [m for m in pool if m.gguf is not None]
    if not with_file:
        out.append(Finding("ok", "gguf", "no model has a gguf path: a routing pool (zeta route, a host "
                                         "service), not one zeta serve can load"))
        return
    for m in pool:
        path = resolve_gguf(m, base)
        if path is None:
            out.append(Finding("warning", m.name, "no gguf path: zeta serve cannot load it (other models "
                                                   "of this pool have one)"))
            continue
        try:
            with open(path, "rb") as f:
                magic = f.read(4)
        except FileNotFoundError:
            out.append(Finding("error", f"{m.name}.gguf", f"no such file: {path}"))
            continue
        except IsADirectoryError:
            out.append(Finding("error", f"{m.name}.gguf", f"a directory, not a GGUF file: {path}"))
            continue
        except OSError as exc:
            out.append(Finding("error", f"{m.name}.gguf", f"not readable: {path}: {exc.strerror or exc}"))
            continue
        if magic != GGUF_MAGIC:
            out.append(Finding("error", f"{m.name}.gguf", f"not a GGUF file (first bytes {magic!r}): {path}"))
            continue
        out.append(Finding("ok", m.name, f"gguf readable ({path.stat().st_size / (1 << 20):.0f} MB): {path}"))
        trained = gguf_context_length(path)
        if trained is not None and m.context_length is not None and m.context_length > trained:
            out.append(Finding("warning", m.name, f"context_length {m.context_length} is above the {trained} "
                                                   "tokens the GGUF was trained for: the router admits prompts "
                                                   "the model reads poorly, and the KV cache is sized for them"))


def gguf_context_length(path: str | os.PathLike) -> int | None:
    """The ``<architecture>.context_length`` of a GGUF file's metadata (the context it was trained
    for), read with the standard library; None when the file does not say or cannot be read."""
    try:
        with open(path, "rb") as f:
            def take(fmt: str):
                size = struct.calcsize("<" + fmt)
                data = f.read(size)
                if len(data) != size:
                    raise EOFError
                return struct.unpack("<" + fmt, data)[0]

            def text() -> str:
                n = take("Q")
                if n > 1 << 20:
                    raise ValueError("string too long")
                return f.read(n).decode("utf-8", errors="replace")

            def skip(kind: int) -> None:
                if kind in _GGUF_FIXED:
                    f.seek(struct.calcsize("<" + _GGUF_FIXED[kind]), os.SEEK_CUR)
                elif kind == _GGUF_STRING:
                    f.seek(take("Q"), os.SEEK_CUR)
                elif kind == _GGUF_ARRAY:
                    inner, n = take("I"), take("Q")
                    if inner in _GGUF_FIXED:
                        f.seek(n * struct.calcsize("<" + _GGUF_FIXED[inner]), os.SEEK_CUR)
                    else:
                        for _ in range(n):
                            skip(inner)
                else:
                    raise ValueError(f"unknown GGUF value type {kind}")

            if f.read(4) != GGUF_MAGIC or take("I") < 2:  # version 1 used 32-bit counts
                return None
            take("Q")  # tensor count
            n_keys = take("Q")
            arch, contexts = None, {}
            for _ in range(min(n_keys, _GGUF_MAX_KEYS)):
                key, kind = text(), take("I")
                if key == "general.architecture" and kind == _GGUF_STRING:
                    arch = text()
                elif key.endswith(".context_length") and kind in (4, 5, 10, 11):
                    contexts[key] = take(_GGUF_FIXED[kind])
                else:
                    skip(kind)
                if arch is not None and f"{arch}.context_length" in contexts:
                    return int(contexts[f"{arch}.context_length"])
    except (OSError, EOFError, ValueError, struct.error):
        return None
    return None


def _check_memory(pool: Sequence[ModelInfo], base: Path, budget: float | None, out: list[Finding]) -> None:
    needs = {}
    for m in pool:
        path = resolve_gguf(m, base)
        if m.memory_mb is not None:
            needs[m.name] = m.memory_mb
        elif path is not None and path.is_file():
            needs[m.name] = path.stat().st_size / (1 << 20)  # the backend's estimate (serving/llama.py)
    if not needs:
        return
    total = sum(needs.values())
    if budget is None:
        out.append(Finding("warning", "memory", f"no memory budget (--memory-budget-mb, $ZETA_MEMORY_BUDGET_MB): "
                                                f"every model stays loaded once used, ~{total:.0f} MB for all"))
        return
    for name, need in needs.items():
        if need > budget:
            out.append(Finding("error", name, f"needs ~{need:.0f} MB, more than the whole memory budget of "
                                              f"{budget:.0f} MB: it can never be loaded"))
    fits = total <= budget
    out.append(Finding("ok", "memory", f"budget {budget:.0f} MB, ~{total:.0f} MB for every model once"
                                       + ("" if fits else ": idle models are unloaded to make room")))


def _check_declared_models(pool: Sequence[ModelInfo], out: list[Finding]) -> None:
    """Without an artifact the router ranks by rules: cost and latency come from the pool alone."""
    _cost_and_latency(pool, None, out)


def _cost_and_latency(pool: Sequence[ModelInfo], length: Any, out: list[Finding]) -> None:
    priceless = [m.name for m in pool if m.cost is None]
    if priceless:
        out.append(Finding("warning", "cost", f"no cost model for {', '.join(priceless)} (cost, prices or "
                                              "ms_per_token; an artifact brings the fitted ones): their cost "
                                              "falls back to their size"))
    blind = [m.name for m in pool if m.latency_ms is None]
    if blind:
        out.append(Finding("warning", "latency", "max_latency_ms cannot be checked for "
                                                 f"{', '.join(blind)} (no latency model: latency_ms or "
                                                 "ms_per_token; zeta calibrate measures one)"))
    else:
        out.append(Finding("ok", "latency", "every model has a latency model"))
    timed = [m.name for m in pool if m.output_rate() is not None and m.capabilities != ("embed",)]
    if length is not None:
        out.append(Finding("ok", "length", "the artifact's length model predicts the output of "
                                           f"{', '.join(timed) or 'no model (none has ms_per_token)'}"))


def _check_artifact(declared: Sequence[ModelInfo] | None, source: str | os.PathLike, out: list[Finding]) -> None:
    try:
        art = load_artifact(source)
    except (ZetaError, OSError) as exc:
        out.append(Finding("error", "artifact", _describe(exc)))
        return
    trained = {n[len(IDENTITY_PREFIX):] for n in art.candidate_inputs if n.startswith(IDENTITY_PREFIX)}
    out.append(Finding("ok", "artifact", f"{art.version} loads: hashes verified, format and fields valid "
                                         f"({art.ensemble.n_trees} trees, outcomes of {len(trained)} models)"))
    if declared is None:
        return
    pool = merge_pool(art.pool, declared)
    for m in pool:
        if art.knows(m.name):
            out.append(Finding("ok", m.name, "known to the artifact (it has outcomes for it)"))
            continue
        missing = [d for d, v in (("size_b", m.size_b), ("context_length", m.context_length)) if v is None]
        how = ("the quality model's average model plus the descriptor prior" if art.prior is not None
               else "the quality model with the identity hidden")
        out.append(Finding("warning", m.name, f"unknown to the artifact: scored cold until it has outcomes, as "
                                              f"{how}, from {described_descriptors(m, art)}"
                           + (f"; it declares no {' and no '.join(missing)}, so those count as unknown"
                              if missing and m.capabilities != ("embed",) else "")))
    absent = sorted(trained - {m.name for m in pool})
    if absent:
        out.append(Finding("ok", "artifact", f"trained on models not in this pool (never routed to): "
                                             f"{', '.join(absent)}"))
    # Capabilities the quality model reads (none: it scores without them, and nothing is to be said).
    seen = {n[len(CAPABILITY_PREFIX):] for n in art.candidate_inputs if n.startswith(CAPABILITY_PREFIX)}
    for cap in sorted({c for m in pool for c in m.capabilities} - seen) if seen else ():
        users = [m.name for m in pool if cap in m.capabilities]
        out.append(Finding("warning", "capabilities", f"{cap!r} ({', '.join(users)}) was not in the training "
                                                       "pool: requests that need it are routed to these models by "
                                                       "the capability filter, their scores do not reflect it"))
    for cap in sorted(seen | {c for m in art.pool for c in m.capabilities}):
        if not any(cap in m.capabilities for m in pool):
            out.append(Finding("warning", "capabilities", f"no model of this pool can serve {cap!r}, which "
                                                           "the artifact was trained with: requests of that kind "
                                                           "have no capable model"))
    _cost_and_latency(pool, art.length, out)
