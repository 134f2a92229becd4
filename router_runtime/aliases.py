"""Routing options and model aliases: the one check of a request's routing knobs, wherever they come from.

A request's routing options (cost weight, latency limit, kind, timeout, candidates) arrive in three
places, and each is checked by ``check_routing_options`` here:

1. a **model alias**, the request's ``model`` (what standard UIs and agent frameworks can set):
   ``auto:cw=0.3`` (any cost weight, built in) or a name declared in the pool file's ``[aliases]``
   table, RouteLLM's way of putting the router's knobs into the model name::

       [aliases]
       "auto:cheap" = { cost_weight = 1.0 }
       "auto:best"  = { cost_weight = 0.0 }
       "auto:fast"  = { max_latency_ms = 2000, candidates = ["small", "medium"] }

   An alias name starts with ``auto:`` (so it can never shadow a pool model) and routes like ``auto``
   with its options;
2. **request headers** ``x-zeta-cost-weight``, ``x-zeta-kind``, ``x-zeta-max-latency-ms``,
   ``x-zeta-timeout-ms``;
3. the body field ``zeta`` (``router_runtime.serving.openai_api``).

Precedence, per option: the body field wins over a header, a header over the alias.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ._checks import is_finite
from .errors import ContractError
from .policy import check_cost_weight

__all__ = ["ROUTING_OPTION_KEYS", "ALIAS_PREFIX", "COST_WEIGHT_ALIAS", "check_routing_options", "parse_aliases",
           "resolve_alias", "ROUTING_HEADERS"]

ROUTING_OPTION_KEYS = ("cost_weight", "max_latency_ms", "kind", "timeout_ms", "candidates")
ALIAS_PREFIX = "auto:"
COST_WEIGHT_ALIAS = "auto:cw="      # auto:cw=0.3: route with cost weight 0.3
# Header -> routing option; header values are text, so numbers are parsed before the common check.
ROUTING_HEADERS = {"x-zeta-cost-weight": "cost_weight", "x-zeta-kind": "kind",
                   "x-zeta-max-latency-ms": "max_latency_ms", "x-zeta-timeout-ms": "timeout_ms"}
_MAX_KIND_CHARS = 64


def check_routing_options(values: Mapping[str, Any], where: str, *, extra_keys: Sequence[str] = (),
                          models: Sequence[str] | None = None) -> dict[str, Any]:
    """``values`` checked: a dict of the options that are set (None values dropped), numbers as floats.

    ``where`` prefixes the field named in a ContractError (``zeta``, ``aliases.auto:cheap``);
    ``extra_keys`` are further keys the caller checks itself; ``models`` (when known) the names that
    ``candidates`` may list."""
    if not isinstance(values, Mapping):
        raise ContractError(where, f"must be a table of routing options ({', '.join(ROUTING_OPTION_KEYS)})")
    known = (*ROUTING_OPTION_KEYS, *extra_keys)
    for k in values:
        if k not in known:
            raise ContractError(f"{where}.{k}", f"unknown routing option ({', '.join(known)})")
    out: dict[str, Any] = {}
    cw = values.get("cost_weight")
    if cw is not None:
        out["cost_weight"] = check_cost_weight(cw, f"{where}.cost_weight")
    for key in ("max_latency_ms", "timeout_ms"):
        v = values.get(key)
        if v is not None:
            if not is_finite(v) or v <= 0:
                raise ContractError(f"{where}.{key}", f"must be a positive number, got {v!r}")
            out[key] = float(v)
    kind = values.get("kind")
    if kind is not None:
        if not isinstance(kind, str) or not kind or len(kind) > _MAX_KIND_CHARS:
            raise ContractError(f"{where}.kind", f"must be a non-empty string of at most {_MAX_KIND_CHARS} "
                                                 f"characters, got {kind!r}")
        out["kind"] = kind
    cands = values.get("candidates")
    if cands is not None:
        if not isinstance(cands, (list, tuple)) or not cands or not all(isinstance(c, str) and c for c in cands):
            raise ContractError(f"{where}.candidates", "must be a non-empty list of model names")
        if models is not None:
            unknown = [c for c in cands if c not in models]
            if unknown:
                raise ContractError(f"{where}.candidates", f"{unknown[0]!r} is not a model of the pool "
                                                           f"(known: {', '.join(models)})")
        out["candidates"] = tuple(cands)
    for k in extra_keys:
        if values.get(k) is not None:
            out[k] = values[k]
    return out


def parse_aliases(table: Any, models: Sequence[str], source: str | None = None) -> dict[str, dict[str, Any]]:
    """A pool file's ``[aliases]`` table checked: alias name -> routing options."""
    if table is None:
        return {}
    if not isinstance(table, Mapping):
        raise ContractError("aliases", "must be a table of alias name -> { routing options }", source=source)
    out = {}
    for name, opts in table.items():
        if not name.startswith(ALIAS_PREFIX) or len(name) <= len(ALIAS_PREFIX) or len(name) > 128:
            raise ContractError(f"aliases.{name}", f'an alias name starts with "{ALIAS_PREFIX}" (e.g. "auto:cheap"), '
                                                   "so it never hides a model; at most 128 characters", source=source)
        if name.startswith(COST_WEIGHT_ALIAS):
            raise ContractError(f"aliases.{name}", f'"{COST_WEIGHT_ALIAS}<number>" is built in', source=source)
        if name in models:
            raise ContractError(f"aliases.{name}", "is also a model's name", source=source)
        try:
            out[name] = check_routing_options(opts, f"aliases.{name}", models=models)
        except ContractError as exc:
            raise ContractError(exc.field, exc.problem, source=source) from None
    return out


def resolve_alias(model: str, aliases: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """The routing options of an alias (``auto:cw=X`` or a declared one); None when ``model`` is no
    alias (``auto`` or a model's name).  An unknown ``auto:...`` name is refused naming the known ones."""
    if not model.startswith(ALIAS_PREFIX):
        return None
    if model.startswith(COST_WEIGHT_ALIAS):
        raw = model[len(COST_WEIGHT_ALIAS):]
        try:
            value = float(raw)
        except ValueError:
            raise ContractError("model", f'"{COST_WEIGHT_ALIAS}" takes a number (e.g. auto:cw=0.3), got {raw!r}') \
                from None
        return {"cost_weight": check_cost_weight(value, "model")}
    if model in aliases:
        return dict(aliases[model])
    known = ", ".join(["auto", f"{COST_WEIGHT_ALIAS}<number>", *sorted(aliases)])
    raise ContractError("model", f"unknown alias {model[:80]!r} (known: {known}); declare it in the pool file's "
                                 "[aliases] table")
