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

Serving fields (read by the llama.cpp backend and ``zeta serve``; validated here, kept in
``ModelInfo.extra`` so that a pool written before them, and every artifact, stays as it was, and read
through the typed properties of the same name):

===================  =====================  ===================================================
field                type                   meaning
===================  =====================  ===================================================
gguf                 str or absent          path of the GGUF file; a relative path is relative to
                                            the pool file's folder (``resolve_gguf``)
ms_per_prompt_token  float >= 0 or absent   } the local cost model, measured on this machine by
ms_per_token         float >= 0 or absent   } ``zeta calibrate POOL``: milliseconds per prompt
load_ms              float >= 0 or absent   } token, per generated token, and to load the model
concurrency          int >= 1, default 1    requests one model serves at once (one llama.cpp
                                            instance, with its own KV cache, per request)
memory_mb            float > 0 or absent    memory one loaded instance needs; default: the GGUF
                                            file's size (set it to include a large KV cache)
chat_template        str or absent          absent/"auto": the GGUF's own template, a plain
                                            transcript for base models without one; "plain";
                                            a llama-cpp-python chat_format name ("chatml", ...);
                                            or a Jinja template (text containing ``{%`` or ``{{``)
load_cost            float >= 0 or absent   load penalty in the cost unit when ``cost`` is
                                            declared in a unit other than milliseconds
llama_options        table or absent        extra keyword arguments for ``llama_cpp.Llama``
                                            (n_threads, n_batch, n_gpu_layers, ...): scalars only
===================  =====================  ===================================================

``"embed"`` in ``capabilities`` is the embedding flag: embeddings requests route among those models
only, and the backend loads them with an embedding context (mean pooling, unit vectors).

**The local cost model.**  With no ``cost`` and no prices, ``ms_per_prompt_token`` and
``ms_per_token`` define both the cost and the expected latency in milliseconds of this machine's time:
``intercept = ms_per_token x completion_tokens`` and ``per_char = ms_per_prompt_token / 4`` (the
stated 4 chars a token).  ``cost_in_ms`` tells whether a model's cost is in that unit; the serving
layer then adds ``load_ms`` to the cost and latency of a model that is not loaded (``load_cost`` for a
cost declared in another unit).

Descriptor fields (kept in ``ModelInfo.extra``; what is known about a model beyond its size, for
people and for the artifact's descriptor prior, which scores a model without outcomes from
``family``, ``benchmark_score``, the bits of ``quantization``, size, context and capabilities:
``router_runtime.candidates``): ``family`` (non-empty str), ``quantization`` (non-empty str, e.g.
"Q4_K_M"), ``description`` (non-empty str), ``benchmark_score`` (a public benchmark score in [0, 1]).
Checked like the serving fields: a wrong type or range is a ContractError naming the field.

A pool *file* accepts exactly these keys (and, at the top level, ``models``, ``judge`` and ``aliases``, the
model aliases of ``router_runtime.aliases``: ``"auto:cheap" = { cost_weight = 1.0 }``): a misspelt
key (``capabilites``) would otherwise be kept silently and change routing, so it is refused with the
nearest known name.  An artifact's pool list is read as written (older artifacts carry what they carry).

**Pool settings** (top-level keys beside the ``[[models]]`` tables, read by ``load_pool_settings``;
``load_pool`` returns the models only):

================  ===========================  ===============================================
key               type                         meaning
================  ===========================  ===============================================
judge             str or absent                the model of this pool that grades logged answers
                                               (``zeta judge``); a generating model of the pool;
                                               written above the first ``[[models]]`` table
================  ===========================  ===============================================
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from ._checks import finite, is_integer
from ._atomic import atomic_write
from .aliases import parse_aliases
from .errors import ContractError

__all__ = ["ModelInfo", "LinearCost", "parse_model", "load_pool", "CHARS_PER_TOKEN", "SERVING_FIELDS", "DESCRIPTOR_FIELDS",
           "resolve_gguf", "dump_pool", "update_pool_file", "PoolSettings", "load_pool_settings", "check_judge",
           "load_aliases"]

CHARS_PER_TOKEN = 4.0  # the stated prompt-token estimate used wherever tokens are not measured
DEFAULT_COMPLETION_TOKENS = 256.0
_KNOWN = {"name", "capabilities", "size_b", "context_length", "cost", "latency_ms",
          "input_price", "output_price", "completion_tokens"}
# The serving fields live in ``extra`` (see the module docstring); these are their validators' kinds.
_SERVING_NUMBERS = ("ms_per_prompt_token", "ms_per_token", "load_ms", "load_cost")
SERVING_FIELDS = ("gguf", *_SERVING_NUMBERS, "concurrency", "memory_mb", "chat_template", "llama_options")
DESCRIPTOR_FIELDS = ("family", "quantization", "description", "benchmark_score")
POOL_FILE_KEYS = frozenset(_KNOWN | set(SERVING_FIELDS) | set(DESCRIPTOR_FIELDS))
POOL_FILE_TOP_LEVEL_KEYS = frozenset({"models", "judge", "aliases"})


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

    def __post_init__(self) -> None:
        # Built in code or parsed, a model's serving fields obey the same rules (one validator).
        _check_serving(self.extra, self.name)
        _check_descriptors(self.extra, self.name)

    # -- serving fields (stored in ``extra``; validated) ---------------------------------------
    @property
    def gguf(self) -> str | None:
        return self.extra.get("gguf")

    @property
    def ms_per_prompt_token(self) -> float | None:
        return _opt_float(self.extra.get("ms_per_prompt_token"))

    @property
    def ms_per_token(self) -> float | None:
        return _opt_float(self.extra.get("ms_per_token"))

    @property
    def load_ms(self) -> float | None:
        return _opt_float(self.extra.get("load_ms"))

    @property
    def load_cost(self) -> float | None:
        return _opt_float(self.extra.get("load_cost"))

    @property
    def memory_mb(self) -> float | None:
        return _opt_float(self.extra.get("memory_mb"))

    @property
    def concurrency(self) -> int:
        return int(self.extra.get("concurrency", 1))

    @property
    def chat_template(self) -> str | None:
        return self.extra.get("chat_template")

    @property
    def llama_options(self) -> Mapping[str, Any]:
        return dict(self.extra.get("llama_options") or {})

    @property
    def local_cost_model(self) -> LinearCost | None:
        """Cost/latency in ms derived from the local cost model, or None without one."""
        return _local_cost(self.extra, self.capabilities)

    @property
    def cost_in_ms(self) -> bool:
        """True when the cost is the local cost model's milliseconds (so a load penalty is ``load_ms``)."""
        local = self.local_cost_model
        return local is not None and self.cost == local

    def with_serving(self, **values: Any) -> "ModelInfo":
        """A copy with serving fields set (``None`` removes one).  A cost or latency model that was
        derived from the local cost model is derived again from the new numbers; a declared one stays."""
        unknown = sorted(set(values) - set(SERVING_FIELDS))
        if unknown:
            raise ContractError(f"{self.name}.{unknown[0]}", f"not a serving field (known: {', '.join(SERVING_FIELDS)})")
        extra = {k: v for k, v in self.extra.items() if not (k in values and values[k] is None)}
        extra.update({k: v for k, v in values.items() if v is not None})
        old_local = self.local_cost_model
        new_local = _local_cost(extra, self.capabilities)
        cost = new_local if (self.cost is None or self.cost == old_local) else self.cost
        latency = new_local if (self.latency_ms is None or self.latency_ms == old_local) else self.latency_ms
        return replace(self, cost=cost, latency_ms=latency, extra=extra)

    def output_rate(self) -> tuple[float, float, bool] | None:
        """How this model's expected latency depends on the output length, when it is known:
        (ms per output token, output tokens the latency model assumes, whether the cost is that same
        latency).  Known only for the local cost model (``ms_per_token``), load penalty or not:
        expected latency = load penalty + prompt tokens x ms/prompt token + output tokens x ms/token.
        None for a latency fitted or declared as one number per call."""
        local = self.local_cost_model
        if local is None or self.ms_per_token is None:
            return None
        load = self.load_ms or 0.0
        if not _is_local(self.latency_ms, local, load):
            return None
        return (self.ms_per_token, _assumed_output(self.extra, self.capabilities),
                _is_local(self.cost, local, load))

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
    return finite(m[key], f"{where}.{key}", low=minimum)


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _check_serving(extra: Mapping[str, Any], where: str) -> None:
    """Validate the serving fields found in ``extra``; every problem names the field."""
    g = extra.get("gguf")
    if g is not None and (not isinstance(g, str) or not g.strip()):
        raise ContractError(f"{where}.gguf", f"must be a non-empty path string, got {g!r}")
    for key in _SERVING_NUMBERS:
        _num(extra, key, where)
    mem = _num(extra, "memory_mb", where)
    if mem is not None and mem <= 0:
        raise ContractError(f"{where}.memory_mb", f"must be > 0, got {extra['memory_mb']!r}")
    c = extra.get("concurrency")
    if c is not None and (not is_integer(c) or c < 1):
        raise ContractError(f"{where}.concurrency", f"must be an integer >= 1, got {c!r}")
    t = extra.get("chat_template")
    if t is not None and (not isinstance(t, str) or not t.strip()):
        raise ContractError(f"{where}.chat_template",
                            f'must be "auto", "plain", a chat format name or a Jinja template, got {t!r}')
    opts = extra.get("llama_options")
    if opts is not None:
        if not isinstance(opts, Mapping):
            raise ContractError(f"{where}.llama_options", "must be a table of llama_cpp.Llama keyword arguments")
        for k, v in opts.items():
            if not isinstance(v, (str, int, float, bool)) or (isinstance(v, float) and not math.isfinite(v)):
                raise ContractError(f"{where}.llama_options.{k}", f"must be a string, number or boolean, got {v!r}")
            if k in ("model_path", "embedding", "n_ctx", "chat_format", "chat_handler", "verbose"):
                raise ContractError(f"{where}.llama_options.{k}",
                                    "is set by the serving layer (use gguf, capabilities, context_length, chat_template)")


def _check_descriptors(extra: Mapping[str, Any], where: str) -> None:
    """The descriptor fields a cold-start prior reads: strings, and a benchmark score in [0, 1]."""
    for key in ("family", "quantization", "description"):
        v = extra.get(key)
        if v is not None and (not isinstance(v, str) or not v.strip()):
            raise ContractError(f"{where}.{key}", f"must be a non-empty string, got {v!r}")
    if extra.get("benchmark_score") is not None:
        score = finite(extra["benchmark_score"], f"{where}.benchmark_score", low=0.0)
        if score > 1.0:
            raise ContractError(f"{where}.benchmark_score", f"must be in [0, 1], got {score!r}")


def _assumed_output(extra: Mapping[str, Any], capabilities: Sequence[str]) -> float:
    comp = extra.get("completion_tokens")
    if comp is None:
        # An embedder generates nothing: its calls cost the prompt only.
        return 0.0 if set(capabilities) == {"embed"} else DEFAULT_COMPLETION_TOKENS
    return float(comp)


def _local_cost(extra: Mapping[str, Any], capabilities: Sequence[str]) -> LinearCost | None:
    prompt, gen = extra.get("ms_per_prompt_token"), extra.get("ms_per_token")
    if prompt is None and gen is None:
        return None
    comp = _assumed_output(extra, capabilities)
    return LinearCost(float(gen or 0.0) * comp, float(prompt or 0.0) / CHARS_PER_TOKEN)


def _is_local(lc: LinearCost | None, local: LinearCost, load: float) -> bool:
    """True when ``lc`` is the local cost model, alone or with its load penalty (``with_load_penalty``)."""
    return lc is not None and lc.per_char == local.per_char and lc.intercept in (local.intercept,
                                                                                  local.intercept + load)


def resolve_gguf(model: ModelInfo, base_dir: str | os.PathLike | None) -> Path | None:
    """The model's GGUF path, a relative one taken relative to ``base_dir`` (the pool file's folder)."""
    if model.gguf is None:
        return None
    p = Path(model.gguf).expanduser()
    return p if p.is_absolute() or base_dir is None else Path(base_dir) / p


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
    if ctx is not None and (not is_integer(ctx) or ctx <= 0):
        raise ContractError(f"{where}.context_length", f"must be a positive integer, got {ctx!r}")
    cost = _linear(m, "cost", where)
    if cost is None:
        pin, pout = _num(m, "input_price", where), _num(m, "output_price", where)
        if pin is not None or pout is not None:
            comp = _num(m, "completion_tokens", where)
            comp = DEFAULT_COMPLETION_TOKENS if comp is None else comp
            cost = LinearCost((pout or 0.0) * comp / 1e6, (pin or 0.0) / 1e6 / CHARS_PER_TOKEN)
    extra = {k: v for k, v in m.items() if k not in _KNOWN}
    _check_serving(extra, where)
    _check_descriptors(extra, where)
    if _num(m, "completion_tokens", where) is not None and (
            "ms_per_prompt_token" in extra or "ms_per_token" in extra):
        # The local cost model reads it again (with_serving re-derives): keep it beside its numbers.
        extra["completion_tokens"] = m["completion_tokens"]
    local = _local_cost(extra, caps)
    latency = _linear(m, "latency_ms", where)
    if cost is None:
        cost = local
    if latency is None:
        latency = local
    return ModelInfo(
        name=name,
        capabilities=tuple(caps),
        size_b=_num(m, "size_b", where),
        context_length=ctx,
        cost=cost,
        latency_ms=latency,
        extra=extra,
    )


def _refuse_unknown_keys(table: Mapping[str, Any], known: frozenset[str], where: str, path: Any) -> None:
    for key in table:
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]!r}?" if near else f"; known keys: {', '.join(sorted(known))}"
            raise ContractError(f"{where}.{key}", f"unknown key{hint}", source=str(path))


def _read_pool_doc(path: str | os.PathLike) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ContractError("pool", f"invalid TOML: {exc}", source=str(path)) from None
    except UnicodeDecodeError as exc:  # tomllib decodes the bytes itself and lets this through
        raise ContractError("pool", f"invalid TOML: not UTF-8 at byte {exc.start}", source=str(path)) from None


def load_pool(path: str | os.PathLike) -> tuple[ModelInfo, ...]:
    """Read a pool file: a TOML document with one ``[[models]]`` table per model (its ``[aliases]``
    are checked too; ``load_aliases`` returns them)."""
    return _pool_of(_read_pool_doc(path), path)


def load_aliases(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The model aliases of a pool file's ``[aliases]`` table (``router_runtime.aliases``), checked
    against its models; {} when it declares none."""
    doc = _read_pool_doc(path)
    names = [m.name for m in _pool_of(doc, path)]
    return parse_aliases(doc.get("aliases"), names, source=str(path))


def _pool_of(doc: Mapping[str, Any], path: str | os.PathLike) -> tuple[ModelInfo, ...]:
    models = doc.get("models")
    if not isinstance(models, list) or not models:
        raise ContractError("models", "a pool needs at least one [[models]] table", source=str(path))
    _refuse_unknown_keys(doc, POOL_FILE_TOP_LEVEL_KEYS, "pool", path)
    for i, m in enumerate(models):
        if isinstance(m, dict):
            if "judge" in m:  # TOML puts a key written below a [[models]] header into that table
                raise ContractError(f"models[{i}].judge", "judge is a top-level key: write it above the first "
                                    "[[models]] table", source=str(path))
            _refuse_unknown_keys(m, POOL_FILE_KEYS, f"models[{i}]", path)
    pool = tuple(parse_model(m, where=f"models[{i}]") for i, m in enumerate(models))
    names = [m.name for m in pool]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ContractError("models", f"duplicate model names {dupes}", source=str(path))
    parse_aliases(doc.get("aliases"), names, source=str(path))  # a bad alias table fails the pool, early
    return pool


@dataclass(frozen=True)
class PoolSettings:
    """The pool file's top-level settings (see the module docstring); None = not set."""

    judge: str | None = None


def load_pool_settings(path: str | os.PathLike) -> PoolSettings:
    """The top-level settings of a pool file, each checked against the file's models."""
    doc = _read_pool_doc(path)
    pool = {m.name: m for m in _pool_of(doc, path)}
    judge = doc.get("judge")
    if judge is not None:
        if not isinstance(judge, str) or not judge.strip():
            raise ContractError("judge", f"must be the name of a model of the pool, got {judge!r}", source=str(path))
        check_judge(pool.values(), judge, source=str(path))
    return PoolSettings(judge=judge)


def check_judge(pool: Sequence[ModelInfo] | Any, judge: str, *, source: str | None = None) -> ModelInfo:
    """The pool's model named ``judge``; a judge must exist and generate text (not embed only)."""
    models = {m.name: m for m in pool}
    if judge not in models:
        raise ContractError("judge", f"{judge!r} is not a model of the pool (models: {', '.join(sorted(models))})",
                            source=source)
    m = models[judge]
    if set(m.capabilities) == {"embed"}:
        raise ContractError("judge", f"{judge!r} only embeds; a judge must generate text", source=source)
    return m


# -- writing pool files -------------------------------------------------------------------------
# The standard library reads TOML but cannot write it.  A pool is flat (strings, numbers, booleans,
# lists of strings, one level of inline tables), so a small writer covers it, and a round trip through
# ``tomllib`` checks every file it produces.

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else _toml_str(k)


def _toml_str(s: str) -> str:
    out = []
    for ch in s:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:  # TOML forbids raw control characters in strings
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(v: Any, where: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ContractError(where, f"cannot write a non-finite number {v!r}")
        return repr(v)  # shortest repr that round-trips; always valid TOML for finite floats
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x, f"{where}[{i}]") for i, x in enumerate(v)) + "]"
    if isinstance(v, Mapping):
        inner = ", ".join(f"{_toml_key(str(k))} = {_toml_value(x, f'{where}.{k}')}" for k, x in v.items())
        return "{ " + inner + " }" if inner else "{}"
    raise ContractError(where, f"cannot write a {type(v).__name__} to TOML")


def dump_pool(models: Sequence[ModelInfo]) -> str:
    """A pool file for ``models`` (one ``[[models]]`` table each); ``load_pool`` reads it back equal."""
    chunks = []
    for i, m in enumerate(models):
        lines = ["[[models]]"]
        d = m.to_json()
        local = m.local_cost_model
        for key in ("cost", "latency_ms"):
            if local is not None and getattr(m, key) == local:
                del d[key]  # derived from the local cost model: re-derived on reading, so calibration moves it
        for k, v in d.items():
            lines.append(f"{_toml_key(k)} = {_toml_value(v, f'models[{i}].{k}')}")
        chunks.append("\n".join(lines) + "\n")
    text = "\n".join(chunks)
    tomllib.loads(text)  # a writer bug must fail here, not in the next reader
    return text


_TABLE_HEADER = re.compile(r"\s*\[")
_MODELS_HEADER = re.compile(r"\s*\[\[\s*models\s*\]\]\s*(#.*)?")
_KEY_LINE = re.compile(r"\s*([A-Za-z0-9_-]+)\s*=")


def update_pool_file(path: str | os.PathLike, updates: Mapping[str, Mapping[str, Any]]) -> None:
    """Set keys of some models in a pool file, keeping everything else (comments, order, layout).

    ``updates`` maps a model name to ``{key: scalar value}``.  Each key's line in that model's table
    is replaced, or a line is added after the table's last key.  The result is checked to parse as
    exactly the old document plus the updates before it atomically replaces the file; anything this
    line editor cannot change safely (a key written inside an inline table, a value spanning lines)
    raises ``ContractError`` and leaves the file untouched.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")  # bytes: keep the file's own line endings
    except UnicodeDecodeError as exc:
        raise ContractError("pool", f"invalid TOML: not UTF-8 at byte {exc.start}", source=str(path)) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ContractError("pool", f"invalid TOML: {exc}", source=str(path)) from None
    models = doc.get("models")
    if not isinstance(models, list):
        raise ContractError("models", "a pool needs [[models]] tables", source=str(path))
    index = {m.get("name"): i for i, m in enumerate(models) if isinstance(m, dict)}
    for name, values in updates.items():
        if name not in index:
            raise ContractError("models", f"no model named {name!r} in the pool", source=str(path))
        for k, v in values.items():
            if not _BARE_KEY.fullmatch(k) or isinstance(v, (Mapping, list, tuple)):
                raise ContractError(f"{name}.{k}", "only scalar values under bare keys can be updated")
            _toml_value(v, f"{name}.{k}")

    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if _MODELS_HEADER.fullmatch(line.rstrip("\r\n"))]
    if len(starts) != len(models):
        raise ContractError("models", "the [[models]] tables are not all written as '[[models]]' lines; "
                            "edit the file by hand", source=str(path))
    newline = "\r\n" if text.endswith("\r\n") else "\n"
    # Edit from the last table up so earlier line numbers stay valid.
    for ti in sorted((index[n] for n in updates), reverse=True):
        values = updates[models[ti]["name"]]
        start = starts[ti]
        end = next((j for j in range(start + 1, len(lines)) if _TABLE_HEADER.match(lines[j])), len(lines))
        last_key = start
        pending = dict(values)
        for j in range(start + 1, end):
            m = _KEY_LINE.match(lines[j])
            if not m:
                continue
            last_key = j
            key = m.group(1)
            if key in pending:
                ending = "\r\n" if lines[j].endswith("\r\n") else "\n"
                lines[j] = f"{key} = {_toml_value(pending.pop(key), key)}{ending}"
        if pending:
            # After the last key (or a continuation line of it): skip a multi-line value's tail.
            at = last_key + 1
            while at < end and lines[at].strip() and not lines[at].lstrip().startswith("#") \
                    and not _KEY_LINE.match(lines[at]):
                at += 1
            if at > 0 and not lines[at - 1].endswith(("\n", "\r")):
                lines[at - 1] += newline
            added = [f"{k} = {_toml_value(v, k)}{newline}" for k, v in pending.items()]
            lines[at:at] = added
    new_text = "".join(lines)

    want = {**doc, "models": [dict(m) for m in models]}
    for name, values in updates.items():
        want["models"][index[name]].update(values)
    try:
        got = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        got = exc
    if got != want:
        raise ContractError("pool", "could not update the file safely (a value spans lines or sits in an "
                            f"inline table); set these by hand: {dict(updates)}", source=str(path))
    atomic_write(path, new_text, mode=path.stat().st_mode & 0o7777)  # the user's file keeps its mode
