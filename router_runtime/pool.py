"""The model pool: which models exist, what they can do, and what a call to each costs.

A pool comes from a TOML file (``load_pool``) or from an artifact's ``pool`` list; both use the same
fields per model:

================  ===========================  ===============================================
field             type                         meaning
================  ===========================  ===============================================
name              str, required                the model's name in decisions and logs
capabilities      list[str], default ["chat"]  chat | code | embed | reason | any other kind
size_b            float or absent              parameters in billions (a descriptor the model sees)
context_length    int or absent                tokens; longer prompts are routed elsewhere
cost              {intercept, per_char}        expected cost of one call = intercept + per_char x query chars
latency_ms        {intercept, per_char}        expected latency, same form; absent when unknown
input_price       float or absent              cost units per 1M prompt tokens  } used to derive ``cost``
output_price      float or absent              cost units per 1M output tokens  } when it is absent
completion_tokens float or absent              expected completion tokens for that derivation (default 256)
================  ===========================  ===============================================

Any other key is kept in ``ModelInfo.extra`` (a serving layer reads its GGUF path from there).
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ContractError

__all__ = ["ModelInfo", "LinearCost", "parse_model", "load_pool", "CHARS_PER_TOKEN"]

CHARS_PER_TOKEN = 4.0  # the stated prompt-token estimate used wherever tokens are not measured
DEFAULT_COMPLETION_TOKENS = 256.0
_KNOWN = {"name", "capabilities", "size_b", "context_length", "cost", "latency_ms",
          "input_price", "output_price", "completion_tokens"}


@dataclass(frozen=True)
class LinearCost:
    intercept: float
    per_char: float

    def at(self, chars: int) -> float:
        return max(0.0, self.intercept + self.per_char * chars)

    def to_json(self) -> dict[str, float]:
        return {"intercept": self.intercept, "per_char": self.per_char}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    capabilities: tuple[str, ...] = ("chat",)
    size_b: float | None = None
    context_length: int | None = None
    cost: LinearCost | None = None
    latency_ms: LinearCost | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def can(self, kind: str) -> bool:
        return kind in self.capabilities

    def expected_cost(self, chars: int) -> float:
        """Expected cost of one call; unknown cost falls back to model size, then to 1."""
        if self.cost is not None:
            return self.cost.at(chars)
        return float(self.size_b) if self.size_b is not None else 1.0

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "capabilities": list(self.capabilities)}
        if self.size_b is not None:
            d["size_b"] = self.size_b
        if self.context_length is not None:
            d["context_length"] = self.context_length
        if self.cost is not None:
            d["cost"] = self.cost.to_json()
        if self.latency_ms is not None:
            d["latency_ms"] = self.latency_ms.to_json()
        d.update(self.extra)
        return d


def _num(m: Mapping[str, Any], key: str, where: str, *, minimum: float | None = 0.0) -> float | None:
    if key not in m or m[key] is None:
        return None
    v = m[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ContractError(f"{where}.{key}", f"must be a finite number, got {v!r}")
    if minimum is not None and v < minimum:
        raise ContractError(f"{where}.{key}", f"must be >= {minimum}, got {v!r}")
    return float(v)


def _linear(m: Mapping[str, Any], key: str, where: str) -> LinearCost | None:
    v = m.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ContractError(f"{where}.{key}", "must be a table with intercept and per_char")
    a = _num(v, "intercept", f"{where}.{key}", minimum=None)
    b = _num(v, "per_char", f"{where}.{key}", minimum=None)
    if a is None or b is None:
        raise ContractError(f"{where}.{key}", "needs both intercept and per_char")
    return LinearCost(a, b)


def parse_model(m: Any, *, where: str = "model") -> ModelInfo:
    if not isinstance(m, dict):
        raise ContractError(where, "must be a table/object")
    name = m.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ContractError(f"{where}.name", "must be a non-empty string")
    caps = m.get("capabilities", ["chat"])
    if not isinstance(caps, list) or not caps or not all(isinstance(c, str) and c for c in caps):
        raise ContractError(f"{where}.capabilities", "must be a non-empty list of strings")
    ctx = m.get("context_length")
    if ctx is not None and (isinstance(ctx, bool) or not isinstance(ctx, int) or ctx <= 0):
        raise ContractError(f"{where}.context_length", f"must be a positive integer, got {ctx!r}")
    cost = _linear(m, "cost", where)
    if cost is None:
        pin, pout = _num(m, "input_price", where), _num(m, "output_price", where)
        if pin is not None or pout is not None:
            comp = _num(m, "completion_tokens", where)
            comp = DEFAULT_COMPLETION_TOKENS if comp is None else comp
            cost = LinearCost((pout or 0.0) * comp / 1e6, (pin or 0.0) / 1e6 / CHARS_PER_TOKEN)
    return ModelInfo(
        name=name,
        capabilities=tuple(caps),
        size_b=_num(m, "size_b", where),
        context_length=ctx,
        cost=cost,
        latency_ms=_linear(m, "latency_ms", where),
        extra={k: v for k, v in m.items() if k not in _KNOWN},
    )


def load_pool(path: str | os.PathLike) -> tuple[ModelInfo, ...]:
    """Read a pool file: a TOML document with one ``[[models]]`` table per model."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ContractError("pool", f"invalid TOML: {exc}", source=str(path)) from None
    except UnicodeDecodeError as exc:  # tomllib decodes the bytes itself and lets this through
        raise ContractError("pool", f"invalid TOML: not UTF-8 at byte {exc.start}", source=str(path)) from None
    models = doc.get("models")
    if not isinstance(models, list) or not models:
        raise ContractError("models", "a pool needs at least one [[models]] table", source=str(path))
    pool = tuple(parse_model(m, where=f"models[{i}]") for i, m in enumerate(models))
    names = [m.name for m in pool]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ContractError("models", f"duplicate model names {dupes}", source=str(path))
    return pool
