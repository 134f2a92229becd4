"""OutcomeRecord: what happened after one routing decision.  One JSON object per line (JSONL).

Schema version 1 (``OUTCOME_SCHEMA_VERSION``).  Fields, in the order they are written:

=================  ==============================  ==========================================================
field              type                            meaning and constraints
=================  ==============================  ==========================================================
schema_version     int, required                   1.  Absent or any other value is refused (SchemaVersionError).
decision_id        str, required                   unique id of the decision (1..128 chars); ingestion dedupes on it (*)
ts                 str, required                   RFC 3339 timestamp in UTC (``Z`` or ``+00:00``)
artifact_version   str or null                     artifact that made the decision; null = rule-based fallback
query              str or null                     the query text (non-empty); null when text logging is off ...
query_sha256       str or null                     ... then the sha256 hex of the UTF-8 query; one of the two is required
request_kind       str, default "chat"             chat | code | embed | reason | any other capability name
candidates         list[str], required             the models the router could choose from; contains ``model``
model              str, required                   the model that answered (after any fallback)
propensity         float, required                 probability that the logging policy picked ``model``: in (0, 1]
scores             {model: float or null}, {}      per-candidate predicted quality at decision time
explored           bool, default false             the choice was an exploration draw
fallback_from      str or null                     the model that failed before ``model`` answered
latency_ms         float >= 0 or null              wall time of the request
ttft_ms            float >= 0 or null              time to first token
prompt_tokens      int >= 0 or null
completion_tokens  int >= 0 or null
success            bool, required                  the model returned a usable answer
error              str or null                     what went wrong when success is false
quality            float in [0, 1] or null         observed quality; null when unknown
quality_source     str or null                     judge | user | check | benchmark; required when quality is set
features           list[float] or null             the query's feature vector, logged when text logging is off
cost               float >= 0 or null              cost of the call in the pool's cost unit, when known
context_chars      int >= 0 or null                length (code points) of everything the model read; ``query``
                                                   is the routed text (``router_runtime.routed_text``: by default
                                                   the last user turn), so the two differ for a conversation;
                                                   null in lines written before the field (query was the whole text)
sticky             bool, default false             session affinity kept the conversation on its model: ``model``
                                                   was not drawn by the router, and ``propensity`` is 1 (the
                                                   affinity rule is deterministic given the conversation)
response           str or null                     the answer text (chat/completion); writers cut it to
                                                   ``RESPONSE_MAX_CHARS`` code points (``cap_response``); null when
                                                   text logging is off and for embeddings
response_truncated bool, default false             the writer cut ``response`` to the cap; true needs a response
shadow_of          str or null                     on a *shadow record*: the decision_id of the logged decision whose
                                                   query this record re-ran on another model (never its own id)
label              object or null                  on *label lines*: the label's metadata (judge, rubric, raw
                                                   verdict, ...); needs a quality
request_id         str or null                     the client's id of its request (``x-zeta-request-id`` or
                                                   ``Idempotency-Key`` header, 1..128 chars); null when none was sent
retry_of           str or null                     this request is a client's retry of an earlier one that failed
                                                   (same request_id, or the official openai client's
                                                   ``x-stainless-retry-count`` >= 1 with the same body): the
                                                   decision_id of the first request's record.  All the records of
                                                   one client request share it, or are it
=================  ==============================  ==========================================================

Client errors: a failure the client caused (its own ``timeout_ms`` ran out, it cancelled or went away)
is written with success false and an ``error`` that starts with ``CLIENT_ERROR_PREFIX`` ("client:").
It says nothing about the model's quality: training and evaluation leave such records out (filter
``error`` on that prefix); they stay in the log for traffic accounting.  Text the client sent that no
model could read (a lone surrogate) is refused before routing and leaves no record at all.

The last six fields (issue 10: ``response`` to ``label``; issue 14: ``request_id``, ``retry_of``) are
written by ``to_line`` only when they differ from their defaults, so a record without them keeps the
line it had before them.

A *shadow record* re-runs a logged query on another model (``zeta shadow``): its own fresh decision_id,
the original's query, request_kind, candidates and artifact_version, ``propensity`` 1.0, ``explored``
false, ``scores`` {}, and its own latency, tokens, success, error and response.  The logging policy did
not choose it: off-policy estimates leave shadow records out; with their original they are
full-information rows.

(*) A *label line* adds a quality to an existing record: a full copy of the record's line (same
decision_id) with ``quality``, ``ts`` = when the label was made, and ``quality_source`` "user" (explicit
feedback, what ``RoutingService.feedback`` writes), or "check" / "judge" together with ``label``
metadata (a judge's grade).  Ingestion keeps label lines apart and its readers give the record the
quality of its winning label: user > check > judge, then the latest ts (rules: ``flows/labels.py``).
Any other repeated decision_id is a duplicate: the first line wins.

Evolution rules: a new field is added with a default, so old lines stay valid; an existing field never
changes meaning or type; readers ignore fields they do not know (kept in ``extra``), so an old reader
can ingest lines from a newer writer of the same schema_version.  A change that breaks any of this is a
new schema_version, and the reader for the old one is kept.  Numbers must be finite (no NaN/Infinity)
and strings valid Unicode (no lone surrogates), in unknown fields too: every record can be written back.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Mapping

from ._checks import boolean, is_finite, is_integer, is_number
from .errors import ContractError, SchemaVersionError

__all__ = [
    "OUTCOME_SCHEMA_VERSION",
    "QUALITY_SOURCES",
    "LABEL_SOURCES",
    "MAX_LINE_BYTES",
    "CLIENT_ERROR_PREFIX",
    "is_client_error",
    "RESPONSE_MAX_CHARS",
    "cap_response",
    "OutcomeRecord",
    "parse_outcome",
    "parse_outcome_line",
]

OUTCOME_SCHEMA_VERSION = 1
QUALITY_SOURCES = frozenset({"judge", "user", "check", "benchmark"})
LABEL_SOURCES = frozenset({"user", "check", "judge"})  # who may add a quality to a record later (label lines)
MAX_LINE_BYTES = 1 << 20  # a line above this is refused whole rather than half-parsed
CLIENT_ERROR_PREFIX = "client:"  # error of a failure the client caused: never a training label


def is_client_error(error: str | None) -> bool:
    """True for the ``error`` of a client-caused failure (see "Client errors" above)."""
    return error is not None and error.startswith(CLIENT_ERROR_PREFIX)
# The answer text kept in a record, in code points: at 4 UTF-8 bytes each 64 KiB, far below a line's limit
# even beside a long query, and enough for a judge to grade a full answer.
RESPONSE_MAX_CHARS = 16_384
# Added after v1's first release: written only when not at their default (old lines stay the same bytes).
_LATE_DEFAULTS = {"response": None, "response_truncated": False, "shadow_of": None, "label": None,
                  "request_id": None, "retry_of": None}
_SHA256 = re.compile("[0-9a-f]{64}")
_RFC3339_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|\+00:00)")


@dataclass(frozen=True)
class OutcomeRecord:
    decision_id: str
    ts: str
    candidates: tuple[str, ...]
    model: str
    propensity: float
    success: bool
    artifact_version: str | None = None
    query: str | None = None
    query_sha256: str | None = None
    request_kind: str = "chat"
    scores: Mapping[str, float | None] = field(default_factory=dict)
    explored: bool = False
    fallback_from: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    quality: float | None = None
    quality_source: str | None = None
    features: tuple[float, ...] | None = None
    cost: float | None = None
    context_chars: int | None = None
    sticky: bool = False
    response: str | None = None
    response_truncated: bool = False
    shadow_of: str | None = None
    label: Mapping[str, Any] | None = None
    request_id: str | None = None
    retry_of: str | None = None
    schema_version: int = OUTCOME_SCHEMA_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        # Records built in code are checked exactly like parsed ones: one validator, one truth.  They
        # are also normalised the same way (lists -> tuples, numbers -> float), so a record built with
        # lists equals its own round trip through ``to_line`` / ``parse_outcome_line``.
        parsed = parse_outcome(self.to_dict())
        for f in fields(self):
            object.__setattr__(self, f.name, getattr(parsed, f.name))

    def to_dict(self) -> dict[str, Any]:
        d = {"schema_version": self.schema_version}
        for f in fields(self):
            if f.name in ("schema_version", "extra"):
                continue
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                v = list(v)
            elif f.name == "scores":
                v = dict(v)
            elif f.name in _LATE_DEFAULTS:
                if v == _LATE_DEFAULTS[f.name]:
                    continue
                if f.name == "label":
                    v = dict(v)
            d[f.name] = v
        for k, v in self.extra.items():
            d.setdefault(k, v)
        return d

    def to_line(self) -> str:
        """One JSONL line (with the newline).  Non-ASCII stays readable; NaN is impossible here."""
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"


def cap_response(text: str | None) -> tuple[str | None, bool]:
    """An answer text as a record may hold it, and whether it was cut: at most ``RESPONSE_MAX_CHARS``
    code points, lone surrogates (a model's broken UTF-8 decoded with ``surrogateescape``) replaced by
    U+FFFD, so a bad answer never costs its record (the record must be writable as UTF-8)."""
    if text is None:
        return None, False
    if not isinstance(text, str):
        raise ContractError("response", f"must be a string, got {type(text).__name__}")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", errors="surrogatepass").decode("utf-8", errors="replace")
    if len(text) > RESPONSE_MAX_CHARS:
        return text[:RESPONSE_MAX_CHARS], True
    return text, False


_JSON_NAMES = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _check_json_values(v: Any, path: str) -> None:
    """Refuse what ``to_line`` could never write back: a non-finite number (``NaN``/``Infinity`` in the
    text, or a literal like 1e400 that overflows to inf) or a lone surrogate (a ``\\ud800`` escape,
    which is valid JSON but not encodable as UTF-8).  Walks unknown fields too, naming the exact path."""
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ContractError(path, f"non-finite number {_JSON_NAMES[repr(v)]} is not allowed (must be finite)")
    elif isinstance(v, str):
        if not v.isascii():
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ContractError(path, f"lone surrogate at index {exc.start}: not encodable as UTF-8") from None
    elif isinstance(v, dict):
        for k, x in v.items():
            sub = f"{path}.{k}" if path else str(k)
            _check_json_values(k, sub)
            _check_json_values(x, sub)
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            _check_json_values(x, f"{path}[{i}]")


def parse_outcome_line(line: bytes | str, *, known_models: frozenset[str] | set[str] | None = None) -> OutcomeRecord:
    """Parse and validate one raw log line; every problem is a ContractError naming the field."""
    if isinstance(line, str):
        raw = line.encode("utf-8", errors="surrogatepass")
    else:
        raw = bytes(line)
    if len(raw) > MAX_LINE_BYTES:
        raise ContractError("line", f"oversized: {len(raw)} bytes > {MAX_LINE_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError("line", f"invalid UTF-8 at byte {exc.start}") from None
    if not text.strip():
        raise ContractError("line", "empty line")
    try:
        # NaN/Infinity parse to floats here; parse_outcome refuses them naming the field they are in.
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = "torn or truncated JSON" if not text.rstrip().endswith("}") else "invalid JSON"
        raise ContractError("line", f"{problem}: {exc.msg} at char {exc.pos}") from None
    except RecursionError:  # e.g. a line of 100k '[': must be quarantined, not crash the reader
        raise ContractError("line", "JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise ContractError("line", f"must be a JSON object, got {type(obj).__name__}")
    try:
        return parse_outcome(obj, known_models=known_models)
    except RecursionError:  # nesting json.loads accepted but the value walk could not follow
        raise ContractError("line", "JSON nested too deeply") from None


def parse_outcome(obj: Mapping[str, Any], *, known_models: frozenset[str] | set[str] | None = None) -> OutcomeRecord:
    """Validate a decoded record and return it as an OutcomeRecord."""
    if "schema_version" not in obj:
        # A line without a version is not known to be v1: a version problem, like any other value.
        raise SchemaVersionError("schema_version", f"missing; this reader knows {OUTCOME_SCHEMA_VERSION}")
    version = obj["schema_version"]
    # Exactly the int 1: True == 1 and 1.0 == 1 in Python, but neither is the documented int.
    if type(version) is not int or version != OUTCOME_SCHEMA_VERSION:
        raise SchemaVersionError(
            "schema_version", f"unknown version {version!r}; this reader knows {OUTCOME_SCHEMA_VERSION}")
    _check_json_values(dict(obj), "")

    out: dict[str, Any] = {}
    out["decision_id"] = _str(obj, "decision_id", required=True, max_len=128)
    out["ts"] = _ts(obj)
    out["artifact_version"] = _str(obj, "artifact_version")
    out["query"] = _str(obj, "query")
    if out["query"] is not None and not out["query"].strip():
        raise ContractError("query", "empty query")
    out["query_sha256"] = _str(obj, "query_sha256")
    if out["query_sha256"] is not None and not _SHA256.fullmatch(out["query_sha256"]):
        raise ContractError("query_sha256", "must be 64 lower-case hex characters")
    if out["query"] is None and out["query_sha256"] is None:
        raise ContractError("query", "one of query or query_sha256 is required")
    out["request_kind"] = _str(obj, "request_kind", default="chat")
    if not out["request_kind"]:
        raise ContractError("request_kind", "must not be empty")
    if "candidates" not in obj:
        raise ContractError("candidates", "missing")
    cands = obj.get("candidates")
    if not isinstance(cands, list) or not cands or not all(isinstance(c, str) and c for c in cands):
        raise ContractError("candidates", "must be a non-empty list of model names")
    out["candidates"] = tuple(cands)
    out["model"] = _str(obj, "model", required=True)
    if out["model"] not in out["candidates"]:
        raise ContractError("model", f"{out['model']!r} is not among the candidates")
    if known_models is not None and out["model"] not in known_models:
        raise ContractError("model", f"unknown model {out['model']!r}")
    p = _num(obj, "propensity", required=True)
    if not 0.0 < p <= 1.0:
        raise ContractError("propensity", f"must be in (0, 1], got {p!r}")
    out["propensity"] = float(p)
    scores = obj.get("scores", {})
    if scores is None:
        scores = {}
    if not isinstance(scores, dict):
        raise ContractError("scores", "must be an object of model -> number or null")
    for k, v in scores.items():
        if v is not None and (not is_finite(v)):
            raise ContractError(f"scores.{k}", f"must be a finite number or null, got {v!r}")
    out["scores"] = dict(scores)
    out["explored"] = _bool(obj, "explored", default=False)
    out["sticky"] = _bool(obj, "sticky", default=False)
    out["fallback_from"] = _str(obj, "fallback_from")
    for name in ("latency_ms", "ttft_ms", "cost"):
        v = _num(obj, name)
        if v is not None and v < 0:
            raise ContractError(name, f"must be >= 0, got {v!r}")
        out[name] = None if v is None else float(v)
    for name in ("prompt_tokens", "completion_tokens", "context_chars"):
        v = obj.get(name)
        if v is not None and (not is_integer(v) or v < 0):
            raise ContractError(name, f"must be an integer >= 0 or null, got {v!r}")
        out[name] = v
    out["success"] = _bool(obj, "success", required=True)
    out["error"] = _str(obj, "error")
    q = _num(obj, "quality")
    if q is not None and not 0.0 <= q <= 1.0:
        raise ContractError("quality", f"must be in [0, 1], got {q!r}")
    out["quality"] = None if q is None else float(q)
    src = _str(obj, "quality_source")
    if src is not None and src not in QUALITY_SOURCES:
        raise ContractError("quality_source", f"must be one of {sorted(QUALITY_SOURCES)}, got {src!r}")
    if q is not None and src is None:
        raise ContractError("quality_source", "required when quality is set")
    out["quality_source"] = src
    feats = obj.get("features")
    if feats is not None:
        if not isinstance(feats, list) or not all(
                is_finite(v) for v in feats):
            raise ContractError("features", "must be a list of finite numbers or null")
        feats = tuple(float(v) for v in feats)
    out["features"] = feats
    # Not refused above RESPONSE_MAX_CHARS: that is the writers' cap (cap_response); a line from a writer
    # without it is still an outcome (MAX_LINE_BYTES bounds it), and its readers cut what they show.
    out["response"] = _str(obj, "response")
    out["response_truncated"] = _bool(obj, "response_truncated", default=False)
    if out["response_truncated"] and out["response"] is None:
        raise ContractError("response_truncated", "true without a response")
    out["shadow_of"] = _str(obj, "shadow_of", max_len=128)
    if out["shadow_of"] is not None and (not out["shadow_of"] or out["shadow_of"] == out["decision_id"]):
        raise ContractError("shadow_of", "must be the decision_id of another record (not empty, not its own)")
    label = obj.get("label")
    if label is not None:
        if not isinstance(label, dict):
            raise ContractError("label", f"must be a JSON object or null, got {type(label).__name__}")
        if q is None:
            raise ContractError("label", "label metadata without a quality")
        label = dict(label)
    out["label"] = label
    out["request_id"] = _str(obj, "request_id", max_len=128)
    out["retry_of"] = _str(obj, "retry_of", max_len=128)
    for name in ("request_id", "retry_of"):
        if out[name] == "":
            raise ContractError(name, "must not be empty (null when unknown)")
    known = {f.name for f in fields(OutcomeRecord)}
    extra = {k: v for k, v in obj.items() if k not in known}
    rec = OutcomeRecord.__new__(OutcomeRecord)  # already validated: skip __post_init__'s second pass
    for k, v in out.items():
        object.__setattr__(rec, k, v)
    object.__setattr__(rec, "schema_version", OUTCOME_SCHEMA_VERSION)
    object.__setattr__(rec, "extra", extra)
    return rec


def _str(obj, name, *, required=False, default=None, max_len=None):
    if name not in obj or obj[name] is None:
        if required:
            raise ContractError(name, "missing" if name not in obj else "must not be null")
        return default
    v = obj[name]
    if not isinstance(v, str):
        raise ContractError(name, f"must be a string, got {type(v).__name__}")
    if required and not v:
        raise ContractError(name, "must not be empty")
    if max_len is not None and len(v) > max_len:
        raise ContractError(name, f"longer than {max_len} characters")
    return v


def _num(obj, name, *, required=False):
    if name not in obj or obj[name] is None:
        if required:
            raise ContractError(name, "missing" if name not in obj else "must not be null")
        return None
    v = obj[name]
    if not is_number(v):
        raise ContractError(name, f"must be a number, got {type(v).__name__}")
    try:
        finite = math.isfinite(v)
    except OverflowError:  # an integer beyond float range (JSON allows 10**400)
        raise ContractError(name, "integer too large for a float") from None
    if not finite:
        raise ContractError(name, f"must be finite, got {v!r}")
    return v


def _bool(obj, name, *, required=False, default=None):
    if name not in obj or obj[name] is None:
        if required:
            raise ContractError(name, "missing" if name not in obj else "must not be null")
        return default
    return boolean(obj[name], name)


def _ts(obj) -> str:
    v = _str(obj, "ts", required=True)
    try:
        parsed = datetime.fromisoformat(v)
    except ValueError:
        raise ContractError("ts", f"not an RFC 3339 timestamp: {v!r}") from None
    if "T" not in v and "t" not in v:
        raise ContractError("ts", f"not an RFC 3339 timestamp (no time part): {v!r}")
    if parsed.tzinfo is None or parsed.utcoffset() != timedelta(0):
        raise ContractError("ts", f"must be in UTC (Z or +00:00), got {v!r}")
    # fromisoformat (3.11) also takes ISO 8601 forms RFC 3339 does not: basic "20260102T030405Z",
    # week dates "2026-W01-1T...", hour-only "T03Z", comma fractions.  Other readers (Polars) may not.
    if not _RFC3339_UTC.fullmatch(v):
        raise ContractError("ts", f"not an RFC 3339 timestamp (want YYYY-MM-DDTHH:MM:SS[.frac]Z): {v!r}")
    return v
