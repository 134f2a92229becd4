"""Route -> generate -> record: the serving layer between a request and the models of a pool.

``RoutingService`` is what ``zeta serve`` puts behind HTTP, and what a service that embeds the runtime
uses without any server.  Per request it:

1. **routes**: ``model="auto"`` asks the Router (``decide``) among the pool minus models cooling down;
   a named model bypasses the choice (the Router still scores it, so the record has its prediction).
   A model that is not loaded costs its load time more (``load_ms`` added to its cost and latency when
   its cost is the local cost model's milliseconds, ``load_cost`` otherwise).  When the backend can
   count tokens exactly, a prompt that cannot fit a model's context is routed elsewhere first.
2. **generates** on the chosen model, under a deadline (``timeout_s`` per attempt).
3. **falls back** on an error or a timeout: the next model of the decision's ranking answers, at most
   ``max_hops`` times.  A model that failed cools down for ``cooldown_s`` (visible in ``health()``),
   except for a prompt it cannot fit, which is not the model's fault.  A named model does not fall
   back: the caller asked for that one.
4. **records** one OutcomeRecord per attempt through ``Router.record``: the failure of a model that
   fell back is an outcome (success false, its error), so the router learns from it; each attempt has
   its own ``decision_id`` (the first the decision's, then ``<id>-fb1``, ``<id>-fb2``) because
   ingestion dedupes on it, and a fallback's record has ``fallback_from`` and propensity 1.

**Implicit quality signals**, from the answer itself, in the fields OutcomeRecord v1 has:

=============  =========================================================================
signal         record
=============  =========================================================================
empty          success false, error "empty answer", quality 0.0, quality_source "check"
invalid_json   (JSON was asked for) success false, error "invalid JSON: ...", quality 0.0, "check"
truncated      (stopped at max_tokens) success true, error "truncated at max_tokens" (or "... at
               the end of the context" when no limit was asked): a usable but cut answer; the
               error field names the signal, quality stays unknown
=============  =========================================================================

**Explicit quality**: ``feedback(decision_id, quality)`` appends the answer's record again, same
``decision_id``, with ``quality`` and ``quality_source = "user"``: the same outcome, now with a known
quality.  Feedback for a decision this process does not remember (another process answered it, or it
is older than the last ``feedback_capacity`` answers) is written all the same, as a label line whose
other fields are stand-ins (model: the one the client names, else "unknown"; no query text, only
the hash of an empty one; ``label`` says so): ingest gives its quality to the decision's own record
whenever that arrives, and never trains on the stand-in.  Ingestion (``flows/ingest.py``) keeps such a line as feedback, apart from the answer's own
line, and its readers give the answer's record the quality of its latest feedback (quality_source
"user"), whether the feedback is ingested with the answer, in a later run or before it; training,
evaluation and the off-policy estimates read the record that way.

Each answer's record carries its text in ``response`` (cut to ``records.RESPONSE_MAX_CHARS`` with
``response_truncated``; none for embeddings or failed attempts), so a judge can grade it later; a
router built with ``log_query_text=False`` logs neither the query nor the answer.

The cost logged for a model whose cost is the local cost model is the attempt's measured wall time in
ms (load included); otherwise the pool's expected cost for the query.

**Aliases and tools.**  ``model`` may be an alias (``router_runtime.aliases``: ``auto:cw=0.3``, the
pool file's ``[aliases]``): it routes like ``auto`` with the alias's options, under the request's own.
A request that may call tools (``serving.tools``) routes only among models declaring the capability
``tools``; a forced call's JSON becomes the Completion's ``tool_calls``.

**Client retries.**  A request that retries one that failed (same ``request_id``; or the openai
client's retry count >= 1 with the same body ``fingerprint``) is recorded with ``retry_of`` = the
decision_id of the first one, so its failures count as one request's (``records``).

**Tracing.**  With a ``tracer`` (``serving.otel.Tracing``) every request is one OpenTelemetry span
with the GenAI semantic-convention attributes and the decision's.

Records are written by one background thread (``background_records=True``, the default) so that
validating and appending the JSON line is not on the request's path; order is kept (a failure's line
precedes its fallback's, an answer's precedes its feedback's), lines land within about 10 ms of the
answer.  ``flush()`` waits for the queue,
``close()`` flushes and closes the backend, and pending records are flushed at interpreter exit.  When
the queue is full (a disk slower than the traffic) a record is written on the request's thread instead
of being dropped.

Never raises into its host for an operational problem: a backend's unexpected exception is a failed
attempt, a logger that cannot write is counted (``zeta_record_errors_total``) and the answer still goes
out.  ``ServingError`` (with an HTTP status) is raised when no model can answer at all;
``ContractError`` for invalid arguments.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Iterator, Mapping

from .._checks import is_finite, is_integer, unicode_text
from ..errors import (BackendError, BackendTimeoutError, ContextOverflowError, ContractError, ModelUnavailableError,
                      ServingError, ZetaError)
from ..policy import rank_scores
from ..pool import LinearCost, ModelInfo
from ..aliases import ALIAS_PREFIX, COST_WEIGHT_ALIAS, resolve_alias
from ..ids import utc_now
from ..records import CLIENT_ERROR_PREFIX, OutcomeRecord, cap_response
from ..routed_text import RoutedText, from_text
from ..router import Decision, Outcome, Router
from ..reload import ReloadTimer
from .activity import DecisionTimeline, largest_capable
from .backends import Backend, Finished, GenerationRequest, TextDelta, request_text
from .feed import Feed
from .completion import AUTO, Attempt, Completion, RouteOptions, decision_header
from .metrics import Metrics
from .signals import attempt_cost, detect, outcome_fields
from .stream import CompletionStream
from .tools import TOOLS_CAPABILITY, needs_tools, tool_calls
from .writer import RecordWriter, write_record

__all__ = ["RoutingService", "RouteOptions", "Completion", "CompletionStream", "Attempt", "with_load_penalty",
           "decision_header", "AUTO", "context_problem"]

log = logging.getLogger("zeta.serving")

_CHAT_OVERHEAD_TOKENS = 8        # per chat message: role markers and separators of a typical template
_DECIDER_CACHE = 64              # routers with load penalties, one per set of unloaded models
_FEEDBACK_TEXT_BUDGET = 64 << 20  # characters of query text kept for answers that may get feedback
_RETRY_MEMORY = 10_000           # client requests remembered to recognise their retries
_RETRY_WINDOW_S = 600.0          # a retry arrives within seconds of its failure; an old one is a new request
UNKNOWN_MODEL = "unknown"        # the model of a label line for a decision nobody here remembers
STAND_IN_NOTE = ("feedback for a decision this process does not remember: only decision_id, ts and quality are "
                 "real; ingest applies the quality to the decision's own record")


def with_load_penalty(m: ModelInfo) -> ModelInfo:
    """``m`` as it costs when it must be loaded first: ``load_ms`` more latency, and more cost
    (``load_ms`` when the cost is the local cost model's milliseconds, else ``load_cost``)."""
    load = m.load_ms or 0.0
    cost, lat = m.cost, m.latency_ms
    if cost is not None:
        if m.cost_in_ms and load:
            cost = LinearCost(cost.intercept + load, cost.per_char)
        elif not m.cost_in_ms and m.load_cost:
            cost = LinearCost(cost.intercept + m.load_cost, cost.per_char)
    if lat is not None and load:
        lat = LinearCost(lat.intercept + load, lat.per_char)
    if cost is m.cost and lat is m.latency_ms:
        return m
    return replace(m, cost=cost, latency_ms=lat)


def _sibling(base: Router, pool: tuple[ModelInfo, ...]) -> Router:
    """A Router over ``base``'s artifact with another pool, deciding exactly as ``base`` would.

    Such a sibling does not watch the registry; the service asks the base to (``maybe_reload``), and
    the cache key includes the base's artifact, so a reload of the base is picked up on the next request."""
    return base.with_pool(pool)


@dataclass
class _Attempted:
    """What one attempt produced (success or not)."""

    model: str
    text: str = ""
    final: Finished | None = None
    error: BackendError | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    streamed: bool = False
    json_error: str | None = None


@dataclass
class _Remembered:
    decision: Decision
    outcome: Outcome


class RoutingService:
    """Route, generate, fall back, record.  Thread-safe; one instance serves a whole process.

    ``router`` decides and records (give it an ``OutcomeLogger``); ``backend`` runs the models of
    ``router.pool``.  ``max_hops`` bounds fallbacks, ``cooldown_s`` rests a failing model,
    ``timeout_s`` bounds each attempt, ``feedback_capacity`` is how many recent answers can still
    receive feedback.  ``clock`` (seconds, monotonic) times cooldowns.  ``background_records``
    writes OutcomeRecords on a background thread (see the module docstring).
    """

    def __init__(self, router: Router, backend: Backend, *, max_hops: int = 2, cooldown_s: float = 30.0,
                 timeout_s: float = 300.0, feedback_capacity: int = 10_000, metrics: Metrics | None = None,
                 clock=time.monotonic, background_records: bool = True, affinity_margin: float | None = 0.05,
                 affinity_capacity: int = 10_000, aliases: Mapping[str, Mapping[str, Any]] | None = None,
                 tracer: Any = None):
        if not is_integer(max_hops) or max_hops < 0:
            raise ContractError("max_hops", f"must be an integer >= 0, got {max_hops!r}")
        for name, v in (("cooldown_s", cooldown_s), ("timeout_s", timeout_s)):
            if not is_finite(v) or v < 0:
                raise ContractError(name, f"must be a finite number >= 0, got {v!r}")
        if not router.pool:
            raise ContractError("pool", "the router has no model pool to serve")
        self.router = router
        self.backend = backend
        self.max_hops = max_hops
        self.cooldown_s = float(cooldown_s)
        self.timeout_s = float(timeout_s)
        self.metrics = metrics or Metrics()
        _declare(self.metrics)
        self._lock = threading.Lock()
        self._cooldown: dict[str, float] = {}          # model -> monotonic time it may serve again
        self._failures: dict[str, int] = {}
        self._last_error: dict[str, str] = {}
        self._deciders: OrderedDict[frozenset, tuple] = OrderedDict()  # unloaded -> (artifact, pool, router)
        self._recent: OrderedDict[str, _Remembered] = OrderedDict()
        self._capacity = feedback_capacity
        self._recent_chars = 0                          # query text held for feedback, bounded too
        self._clock = clock                             # for cooldowns; injectable so tests need no sleeping
        self._writer = RecordWriter(router, self.metrics) if background_records else None
        self._pool_ref: tuple = ()                      # (pool tuple, name -> model, names with a load penalty)
        if affinity_margin is not None and (not is_finite(affinity_margin) or affinity_margin < 0):
            raise ContractError("affinity_margin", f"must be a finite number >= 0 or None, got {affinity_margin!r}")
        self.affinity_margin = affinity_margin          # None: no session affinity
        self._affinity: OrderedDict[str, str] = OrderedDict()  # conversation key -> model that last answered
        self._affinity_capacity = affinity_capacity
        self.timeline = DecisionTimeline()              # decisions per model per minute, for the dashboard
        self.last_answer: Completion | None = None      # the most recent answer (its decision explained on /ui)
        # Hot reload without traffic too: a promotion is picked up even when no request comes to look.
        interval = router.reload_interval_ms
        self._reload_timer = ReloadTimer(self._check_reload, interval / 1000.0) if interval is not None else None
        self.aliases = {k: dict(v) for k, v in (aliases or {}).items()}  # alias -> routing options (aliases.py)
        self.tracer = tracer                            # serving.otel.Tracing, or None: no spans
        self._requests: OrderedDict[tuple, tuple[str, float]] = OrderedDict()  # client request -> (first id, when)

    # -- public API -------------------------------------------------------------------------------
    @property
    def pool(self) -> tuple[ModelInfo, ...]:
        return self.router.pool

    def _pool_index(self) -> tuple:
        pool = self.router.pool
        ref = self._pool_ref
        if not ref or ref[0] is not pool:  # the router's pool changes only on an artifact swap
            ref = self._pool_ref = (pool, {m.name: m for m in pool},
                                    frozenset(m.name for m in pool if with_load_penalty(m) is not m),
                                    frozenset(m.name for m in pool if m.cost_in_ms),
                                    frozenset(c for m in pool for c in m.capabilities))
        return ref

    def model(self, name: str) -> ModelInfo | None:
        return self._pool_index()[1].get(name)

    def _later(self, fn, *args) -> None:
        """Bookkeeping (records, metrics) off the request's path when there is a writer thread."""
        if self._writer is not None:
            self._writer.later(fn, *args)
        else:
            fn(*args)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued OutcomeRecord (and metric) is written; False if ``timeout`` ran out."""
        return self._writer.flush(timeout) if self._writer is not None else True

    def close(self) -> None:
        """Stop the reload timer, flush the records and release the backend's models."""
        if self._reload_timer is not None:
            self._reload_timer.stop()
        self.flush(timeout=30.0)
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()

    def complete(self, request: GenerationRequest, options: RouteOptions = RouteOptions()) -> Completion:
        """Answer a chat, completion or embed request (whole answer at once)."""
        gen = self._serve(request, options, streaming=False, cancel=None, state={})
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                return stop.value

    def stream(self, request: GenerationRequest, options: RouteOptions = RouteOptions()) -> "CompletionStream":
        """Answer token by token: iterate the returned stream for ``TextDelta`` events; its ``result``
        is the Completion once it is exhausted.  Fallback happens only before the first token."""
        if request.mode == "embed":
            raise ContractError("stream", "embeddings are not streamed")
        return CompletionStream(self, request, options)

    def feedback(self, decision_id: str, quality: float, model: str | None = None) -> Outcome:
        """Record an explicit quality for an answer (``Completion.decision_id``); returns the outcome as
        recorded (the answer's, with ``quality`` and quality_source "user").  A decision this service
        does not remember gets a stand-in label line (see the module docstring); ``model`` names it."""
        if not isinstance(decision_id, str) or not decision_id:
            raise ContractError("decision_id", "must be a non-empty string")
        if not is_finite(quality) \
                or not 0.0 <= quality <= 1.0:
            raise ContractError("quality", f"must be a number in [0, 1], got {quality!r}")
        with self._lock:
            seen = self._recent.get(decision_id)
        if seen is None:
            seen = _Remembered(*self._stand_in(decision_id, model))
        outcome = replace(seen.outcome, quality=float(quality), quality_source="user")
        if self._writer is not None:
            self._writer.submit(seen.decision, outcome)  # in order, after the answer's own line
        else:
            write_record(self.router, self.metrics, seen.decision, outcome)
        name = outcome.model or seen.decision.model  # a client-named stand-in must not grow the metric's labels
        self.metrics.inc("zeta_feedback_total", {"model": name if name in self._pool_index()[1] else UNKNOWN_MODEL})
        return outcome

    def remembers(self, decision_id: str) -> bool:
        """Whether feedback for ``decision_id`` copies its answer's record (else a stand-in label line)."""
        with self._lock:
            return decision_id in self._recent

    def _stand_in(self, decision_id: str, model: str | None) -> tuple[Decision, Outcome]:
        """The decision and outcome a label line for a forgotten decision copies: only decision_id,
        quality and ts are real; ingest joins it to the decision's own record by decision_id."""
        name = model or UNKNOWN_MODEL
        d = Decision(decision_id=decision_id, model=name, kind="chat", scores=(), propensity=1.0, explored=False,
                     reason="feedback for a decision this process does not remember", artifact_version=None,
                     cost_weight=0.0, excluded={}, ts=utc_now(), query=None)
        return d, Outcome(success=True, model=name, label={"stand_in": True, "model_named_by_client": model is not None,
                                                           "note": STAND_IN_NOTE})

    def cooling_down(self) -> dict[str, float]:
        """Models resting after a failure: name -> seconds left."""
        now = self._clock()
        with self._lock:
            return {m: round(t - now, 3) for m, t in self._cooldown.items() if t > now}

    def unavailable(self) -> dict[str, str]:
        """Models out of the pool until their file changes (corrupt, missing, too large): name -> why."""
        fn = getattr(self.backend, "unavailable_models", None)
        if fn is None:
            return {}
        try:
            return dict(fn() or {})
        except Exception:  # asking must never fail a request: then nobody is known to be out
            log.exception("unavailable_models() failed")
            return {}

    def health(self) -> dict[str, Any]:
        cooling = self.cooling_down()
        unavailable = self.unavailable()
        try:
            backend = self.backend.status() if hasattr(self.backend, "status") else {}
        except Exception as exc:  # health must answer even when the backend cannot
            backend = {"error": f"{type(exc).__name__}: {exc}"}
        models = {}
        with self._lock:
            for m in self.router.pool:
                models[m.name] = {
                    "capabilities": list(m.capabilities),
                    "cooling_down": m.name in cooling,
                    "cooldown_remaining_s": cooling.get(m.name, 0.0),
                    "unavailable": unavailable.get(m.name),
                    "failures": self._failures.get(m.name, 0),
                    "last_error": self._last_error.get(m.name),
                    **(backend.get(m.name, {}) if isinstance(backend.get(m.name), dict) else {}),
                }
        r = self.router
        return {
            "status": "degraded" if cooling or unavailable or r.reload_error else "ok",
            "artifact_version": r.artifact_version,
            "router": "learned" if r.artifact is not None else "rules",
            "router_problem": r.problem,
            "reload_error": r.reload_error, "reloads_refused": r.reloads_refused,
            "engine": self.router.engine, "engine_problem": self.router.engine_problem,
            "models": models,
        }

    def refresh_gauges(self) -> None:
        """Bring the state gauges (artifact, loaded models, cooldowns) up to date before a scrape."""
        m = self.metrics
        m.replace_gauge("zeta_artifact_info", {(("version", self.router.artifact_version or "none"),): 1.0})
        m.set("zeta_router_rule_based", None, 1.0 if self.router.artifact is None else 0.0)
        cooling = self.cooling_down()
        m.replace_gauge("zeta_model_cooldown_seconds", {(("model", n.name),): cooling.get(n.name, 0.0)
                                                         for n in self.router.pool})
        unavailable = self.unavailable()
        m.replace_gauge("zeta_model_unavailable", {(("model", n.name),): float(n.name in unavailable)
                                                   for n in self.router.pool})
        m.set("zeta_artifact_reload_refused", None, 0.0 if self.router.reload_error is None else 1.0)
        m.set("zeta_artifact_reloads_refused_total", None, float(self.router.reloads_refused))
        loaded = {}
        for mode in ("chat", "embed"):
            try:
                names = self.backend.loaded_models(mode) if hasattr(self.backend, "loaded_models") else None
            except Exception:
                names = None
            if names is None:
                continue
            for n in self.router.pool:
                loaded[(("mode", mode), ("model", n.name))] = 1.0 if n.name in names else 0.0
        m.replace_gauge("zeta_model_loaded", loaded)

    # -- routing ----------------------------------------------------------------------------------
    def _decider(self, mode: str) -> Router:
        """The Router to decide with: the service's own, or a copy whose pool charges unloaded models
        their load time.  Built once per set of unloaded models (load state changes rarely)."""
        base = self.router
        base.maybe_reload()  # penalised copies do not watch the registry: the service's router does
        pool, _, with_penalty, _, _ = self._pool_index()
        if not with_penalty:
            return base
        fn = getattr(self.backend, "loaded_models", None)
        loaded = fn(mode) if fn is not None else None
        if loaded is None:
            return base
        unloaded = with_penalty - loaded
        if not unloaded:
            return base
        with self._lock:
            hit = self._deciders.get(unloaded)
        if hit is not None and hit[0] is base.artifact and hit[1] is pool:
            return hit[2]
        r = _sibling(base, tuple(with_load_penalty(m) if m.name in unloaded else m for m in pool))
        with self._lock:
            self._deciders[unloaded] = (base.artifact, pool, r)
            while len(self._deciders) > _DECIDER_CACHE:
                self._deciders.popitem(last=False)
        return r

    def _routed_text(self, request: GenerationRequest, text: str) -> RoutedText:
        """What the decision reads (``router_runtime.routed_text``): of a chat, the artifact's choice
        (by default the last user turn) with the conversation's features; a prompt is its own."""
        if request.mode == "chat":
            return self.router.routed_text(request.messages)
        return from_text(text)

    def _route(self, request: GenerationRequest, options: RouteOptions, text: str,
               routed: RoutedText) -> tuple[Decision, list[str]]:
        # No kind from the client: an embeddings request is "embed", any other is inferred from the text.
        kind = options.kind or ("embed" if request.mode == "embed" else None)
        if request.mode == "embed" and kind != "embed":
            raise ServingError(f"an embeddings request routes among embed-capable models, not {kind!r}",
                               status=400, code="invalid_kind", param="zeta.kind")
        kinds = self._pool_index()[4]
        if kind is not None and kind not in kinds:  # client-chosen text must not become an unbounded metrics label
            shown = kind if len(kind) <= 40 else kind[:37] + "..."
            raise ServingError(f"kind {shown!r} is not a capability of this pool (known: {', '.join(sorted(kinds))})",
                               status=400, code="invalid_kind", param="zeta.kind")
        unavailable = self.unavailable()
        decider = self._decider(request.mode)
        names = list(self._pool_index()[1])
        t0 = time.perf_counter()
        if options.model != AUTO:
            if options.model not in names:
                raise ServingError(f"model {options.model!r} is not in the pool (known: auto, {', '.join(names)})",
                                   status=404, code="model_not_found", param="model")
            if needs_tools(request.tools, request.tool_choice) and not self._can_call_tools(options.model):
                raise ServingError(f"model {options.model!r} cannot call tools: its pool entry does not declare the "
                                   f"capability {TOOLS_CAPABILITY!r} ({self._no_tools_message(names, short=True)})",
                                   status=400, code="model_cannot_serve", param="tools")
            if options.model in unavailable:
                raise ServingError(f"model {options.model!r} is out of the pool until its file changes: "
                                   f"{unavailable[options.model]}", status=503, code="model_unavailable",
                                   param="model")
            d = decider.decide(routed, kind=kind, candidates=[options.model], cost_weight=options.cost_weight,
                               max_tokens=request.max_tokens)
            self._later(self.metrics.observe, "zeta_decide_seconds", time.perf_counter() - t0)
            if d.model is None:
                raise ServingError(f"model {options.model!r} cannot serve this request: {d.reason}",
                                   status=400, code="model_cannot_serve", param="model")
            unfit = self._unfit(d.model, request, text)
            if unfit:
                raise ServingError(f"model {options.model!r}: {unfit}", status=400,
                                   code="context_length_exceeded", param="messages")
            d = replace(d, reason=f"model named in the request: routing bypassed ({d.reason})")
            return d, [d.model]

        cands = list(options.candidates) if options.candidates is not None else names
        cooling = self.cooling_down()
        extra_excluded: dict[str, str] = {}
        if needs_tools(request.tools, request.tool_choice):
            able = [c for c in cands if self._can_call_tools(c)]
            if not able:
                raise ServingError(self._no_tools_message(cands), status=400, code="no_capable_model", param="tools")
            for c in cands:
                if c not in able:
                    extra_excluded[c] = f"does not declare the capability {TOOLS_CAPABILITY!r}"
            cands = able
        for c in cands:
            if c in unavailable:
                extra_excluded[c] = f"out of the pool until its file changes: {unavailable[c]}"
        cands = [c for c in cands if c not in unavailable]
        resting = [c for c in cands if c in cooling]
        usable = [c for c in cands if c not in cooling]
        for c in resting:
            extra_excluded[c] = f"cooling down after a failure ({cooling[c]:.0f} s left)"
        limits = {"cost_weight": options.cost_weight, "max_latency_ms": options.max_latency_ms,
                  "max_tokens": request.max_tokens}
        d = decider.decide(routed, kind=kind, candidates=usable, **limits)
        if d.model is None and resting:
            # Every capable model is resting: trying one beats refusing the request.
            d = decider.decide(routed, kind=kind, candidates=cands, **limits)
            d = replace(d, reason=f"every capable model is cooling down, trying anyway; {d.reason}")
            extra_excluded = {c: why for c, why in extra_excluded.items() if c in unavailable}
        for _ in range(len(names)):
            if d.model is None:
                break
            unfit = self._unfit(d.model, request, text)
            if not unfit:
                break
            extra_excluded[d.model] = unfit
            usable = [c for c in usable if c != d.model]
            d = decider.decide(routed, kind=kind, candidates=usable, **limits)
        self._later(self.metrics.observe, "zeta_decide_seconds", time.perf_counter() - t0)
        if extra_excluded:
            d = replace(d, excluded={**d.excluded, **extra_excluded})
        if d.model is not None:
            d = self._stick(d, request, options)
        if d.model is None:
            raise self._no_model(d, kind, extra_excluded)
        order = [d.model] + [s.model for s in rank_scores(d.scores) if s.model != d.model]
        return d, order[: 1 + self.max_hops]

    def _can_call_tools(self, name: str) -> bool:
        m = self.model(name)
        return m is not None and TOOLS_CAPABILITY in m.capabilities

    def _no_tools_message(self, among: list[str], *, short: bool = False) -> str:
        able = [m.name for m in self.pool if TOOLS_CAPABILITY in m.capabilities]
        if short:
            return f"models that can: {', '.join(able)}" if able else "no model of the pool declares it"
        if able:
            return (f"the request has tools, and none of its candidates ({', '.join(among)}) declares the capability "
                    f"{TOOLS_CAPABILITY!r}; models that do: {', '.join(able)}")
        return (f"the request has tools, and no model of the pool declares the capability {TOOLS_CAPABILITY!r}: "
                f'add "{TOOLS_CAPABILITY}" to the capabilities of a model whose chat template renders tools, '
                'or send tool_choice "none"')

    def _no_model(self, d: Decision, kind: str, narrowed: dict[str, str]) -> ServingError:
        """Why nobody can answer, naming the real causes: when the service itself ruled the last
        candidates out (context fit, cooldowns, broken files), the router only saw an empty list."""
        why = {**d.excluded, **narrowed}
        if narrowed:
            detail = "; ".join(f"{m}: {w}" for m, w in list(why.items())[:4])
            more = f" (+{len(why) - 4} more)" if len(why) > 4 else ""
            message = f"no model in the pool can serve this {kind!r} request: {detail}{more}"
        else:
            message = d.reason
        if any("context" in w for w in why.values()):
            return ServingError(message, status=400, code="context_length_exceeded", param="messages")
        if why and all("until its file changes" in w or "cooling down" in w for w in why.values()):
            return ServingError(message, status=503, code="model_unavailable")
        return ServingError(message, status=400, code="no_capable_model")

    # -- session affinity ---------------------------------------------------------------------------
    # A conversation stays on the model that answered its last turn unless that model is no longer a
    # candidate (it failed and cools down, cannot serve, does not fit) or the router's best utility
    # beats it by more than ``affinity_margin``.  A kept choice is logged with propensity 1 and
    # ``sticky`` true: given the conversation the affinity rule is deterministic, so off-policy
    # estimates stay exact for the policy that ran (router + affinity); an estimate of the router
    # alone drops sticky rows.
    def _conversation_keys(self, request: GenerationRequest, options: RouteOptions, answer: str | None = None):
        keys = []
        if options.conversation:
            keys.append("k:" + options.conversation)
        if request.mode == "chat":
            msgs = list(request.messages)
            if answer is None:  # this turn: the turns before the last user message
                last = max((i for i, m in enumerate(msgs) if m.get("role") == "user"), default=0)
                msgs = msgs[:last]
            else:  # after the answer: what the next turn's earlier turns will be
                msgs.append({"role": "assistant", "content": answer})
            if msgs:
                blob = json.dumps([[m.get("role"), m.get("content")] for m in msgs], ensure_ascii=False)
                keys.append("h:" + hashlib.sha256(blob.encode("utf-8", "replace")).hexdigest())
        return keys

    def _stick(self, d: Decision, request: GenerationRequest, options: RouteOptions) -> Decision:
        if self.affinity_margin is None:
            return d
        keys = self._conversation_keys(request, options)
        with self._lock:
            prev = next((self._affinity[k] for k in keys if k in self._affinity), None)
        if prev is None:
            return d
        if prev == d.model:
            return replace(d, reason=f"session affinity: {prev} again, the router's choice too; {d.reason}")
        s = d.score(prev)
        if s is None:
            why = d.excluded.get(prev, "not a candidate")
            return replace(d, reason=f"session affinity: moved off {prev} ({why}); {d.reason}")
        gap = max(x.utility for x in d.scores) - s.utility
        if gap > self.affinity_margin:
            return replace(d, reason=f"session affinity: moved off {prev} (utility {gap:.3f} below the best, "
                                     f"margin {self.affinity_margin:g}); {d.reason}")
        return replace(d, model=prev, propensity=1.0, explored=False, sticky=True,
                       reason=f"session affinity: kept on {prev} (utility {gap:.3f} below the best, within "
                              f"margin {self.affinity_margin:g}); the router chose {d.model}: {d.reason}")

    def _remember(self, request: GenerationRequest, options: RouteOptions, model: str, answer: str) -> None:
        if self.affinity_margin is None:
            return
        keys = self._conversation_keys(request, options, answer)
        with self._lock:
            for k in keys:
                self._affinity[k] = model
                self._affinity.move_to_end(k)
            while len(self._affinity) > self._affinity_capacity:
                self._affinity.popitem(last=False)

    def _unfit(self, name: str, request: GenerationRequest, text: str) -> str | None:
        return context_problem(self.backend, self.model(name), request, text)

    # -- generating -------------------------------------------------------------------------------
    def _serve(self, request: GenerationRequest, options: RouteOptions, *, streaming: bool,
               cancel: threading.Event | None, state: dict) -> Iterator[TextDelta]:
        """One request, traced and remembered for its retries, around ``_answer``."""
        requested = options.model
        state["requested"] = requested
        if requested.startswith(ALIAS_PREFIX) and not requested.startswith(COST_WEIGHT_ALIAS) \
                and requested not in self.aliases:
            known = ", ".join([AUTO, f"{COST_WEIGHT_ALIAS}<number>", *sorted(self.aliases)])
            raise ServingError(f"model {requested[:80]!r} is no alias of this pool (aliases: {known}; declare one in "
                               "the pool file's [aliases] table)", status=404, code="model_not_found", param="model")
        resolved = resolve_alias(requested, self.aliases)
        if resolved is not None:  # an alias: route like auto, the request's own options first
            opts = {k: v for k, v in resolved.items() if getattr(options, _ALIAS_FIELD.get(k, k), None) is None}
            if "timeout_ms" in opts:
                opts["timeout_s"] = opts.pop("timeout_ms") / 1000.0
            options = replace(options, model=AUTO, **opts)
        key, retry_of = self._retry_of(options)
        state["retry_of"] = retry_of
        span = self.tracer.start(request, requested, options) if self.tracer is not None else None
        try:
            completion = yield from self._answer(request, options, streaming=streaming, cancel=cancel, state=state)
        except BaseException as exc:
            if key is not None and "decision" in state:
                self._remember_request(key, retry_of or state["decision"].decision_id)
            if span is not None:
                self.tracer.fail(span, exc, state)
            raise
        if key is not None:
            self._remember_request(key, retry_of or completion.decision.decision_id)
        if span is not None:
            self.tracer.finish(span, completion)
        return completion

    # -- client retries ---------------------------------------------------------------------------
    def _retry_of(self, options: RouteOptions) -> tuple[tuple | None, str | None]:
        """(the key this request is remembered by, the decision_id of the request it retries or None)."""
        if options.request_id is not None:
            key = ("id", options.request_id)
        elif options.fingerprint is not None:
            key = ("body", options.fingerprint)
        else:
            return None, None
        if key[0] == "body" and options.client_retry < 1:
            return key, None  # the same body twice is two requests unless the client says it retries
        now = self._clock()
        with self._lock:
            hit = self._requests.get(key)
        if hit is None or now - hit[1] > _RETRY_WINDOW_S:
            return key, None
        self._later(self.metrics.inc, "zeta_client_retries_total")
        return key, hit[0]

    def _remember_request(self, key: tuple, first_id: str) -> None:
        with self._lock:
            self._requests[key] = (first_id, self._clock())
            self._requests.move_to_end(key)
            while len(self._requests) > _RETRY_MEMORY:
                self._requests.popitem(last=False)

    def _answer(self, request: GenerationRequest, options: RouteOptions, *, streaming: bool,
                cancel: threading.Event | None, state: dict) -> Iterator[TextDelta]:
        t_start = time.perf_counter()
        text = unicode_text(request_text(request), "input" if request.mode == "embed" else (
            "messages" if request.mode == "chat" else "prompt"))
        decision, order = self._route(request, options, text, self._routed_text(request, text))
        self._later(self._count_decision, decision, "auto" if options.model == AUTO else "named")
        state["decision"] = decision
        ids = (options.request_id, state.get("retry_of"))
        # The client may shorten the service's limit, never lengthen it; when its own limit is the one
        # that binds, a timeout is the client's choice and says nothing about the model.
        client_limit = options.timeout_s is not None and (self.timeout_s <= 0 or options.timeout_s < self.timeout_s)
        timeout = options.timeout_s if client_limit else self.timeout_s
        attempts: list[Attempt] = []
        timeouts = broken = 0
        previous: str | None = None
        for hop, name in enumerate(order):
            model = self.model(name)
            did = decision.decision_id if hop == 0 else f"{decision.decision_id}-fb{hop}"
            state.update(model=name, decision_id=did, attempts=tuple(attempts))
            deadline = time.monotonic() + timeout if timeout > 0 else None
            got = yield from self._attempt(model, replace(request, deadline=deadline), deadline, timeout, cancel,
                                           streaming, client_limit)
            if got.error is not None:
                cancelled = isinstance(got.error, _CancelledError)
                self._record(decision, did, name, previous, got, request, signals=(), text=text, ids=ids)
                attempts.append(Attempt(name, did, str(got.error), round(got.latency_ms, 3)))
                if cancelled:
                    raise ServingError("the client cancelled the request", status=499, code="cancelled",
                                       attempts=tuple(attempts))
                self._failed(name, got.error)
                timeouts += isinstance(got.error, BackendTimeoutError)  # the client's limit included
                broken += isinstance(got.error, ModelUnavailableError)
                if got.streamed:  # tokens already went out: no other model can take over now
                    raise ServingError(f"{name} failed mid-stream: {got.error}", status=502, code="backend_error",
                                       attempts=tuple(attempts))
                if hop + 1 < len(order):
                    self.metrics.inc("zeta_fallbacks_total", {"from_model": name, "to_model": order[hop + 1]})
                previous = name
                continue
            signals, got.json_error = detect(request, got.text, got.final.finish_reason)
            rec, outcome = self._record(decision, did, name, previous, got, request, signals=signals, text=text,
                                        ids=ids)
            attempts.append(Attempt(name, did, None, round(got.latency_ms, 3)))
            total_ms = (time.perf_counter() - t_start) * 1000.0
            self._later(self._observe_success, name, got, signals, total_ms, decision)
            if request.mode != "embed":
                self._remember(request, options, name, got.text)
            f = got.final
            done = Completion(
                decision=decision, decision_id=did, model=name, requested_model=state["requested"], text=got.text,
                embeddings=f.embeddings, finish_reason=f.finish_reason, prompt_tokens=f.prompt_tokens,
                completion_tokens=f.completion_tokens, latency_ms=total_ms, ttft_ms=got.ttft_ms,
                attempts=tuple(attempts), signals=signals, outcome=outcome, record=rec,
                tool_calls=tool_calls(request.tool_choice, request.tool_name, got.text, did),
                retry_of=state.get("retry_of"))
            self.last_answer = done
            return done
        self.metrics.observe("zeta_request_duration_seconds", time.perf_counter() - t_start, {"model": "none"})
        last = attempts[-1].error if attempts else "no model was tried"
        timed_out = bool(attempts) and timeouts == len(attempts)
        status, code = (504, "timeout") if timed_out else (503, "model_unavailable") if (
            attempts and broken == len(attempts)) else (502, "backend_error")
        raise ServingError(f"no model could answer after {len(attempts)} attempt(s); last error: {last}",
                           status=status, code=code, attempts=tuple(attempts))

    def _attempt(self, model: ModelInfo, request: GenerationRequest, deadline: float | None, timeout: float,
                 cancel: threading.Event | None, streaming: bool, client_limit: bool = False) -> Iterator[TextDelta]:
        got = _Attempted(model.name)
        t0 = time.perf_counter()
        pieces: list[str] = []
        feed = Feed(lambda: self.backend.generate(model, request), name=f"zeta-gen-{model.name}")
        try:
            # The backend runs on the feed's thread; this one only waits, so the deadline and a
            # cancellation hold even while the backend blocks (a stalled model, a hung load).
            for ev in feed.events(deadline, cancel):
                if isinstance(ev, TextDelta):
                    if got.ttft_ms is None:
                        got.ttft_ms = (time.perf_counter() - t0) * 1000.0
                    pieces.append(ev.text)
                    if streaming:
                        got.streamed = True
                        yield ev
                elif isinstance(ev, Finished):
                    got.final = ev
                if deadline is not None and time.monotonic() > deadline and got.final is None:
                    raise Feed.Expired()
            if got.final is None:
                raise BackendError(model.name, "the backend ended without a final event")
            if request.mode == "embed" and not got.final.embeddings:
                raise BackendError(model.name, "the backend returned no embeddings")
        except Feed.Cancelled:
            got.error = _CancelledError(model.name, f"cancelled by the client after {len(pieces)} pieces")
        except Feed.Expired:
            if client_limit:
                got.error = _ClientTimeoutError(model.name, "no complete answer within the request's timeout_ms "
                                                            f"of {timeout * 1000:g}")
            else:
                got.error = BackendTimeoutError(model.name, f"no complete answer within the timeout of {timeout:g} s")
        except GeneratorExit:
            raise
        except BackendError as exc:
            got.error = exc
        except ZetaError as exc:  # e.g. a backend's own contract check: still this model's failure
            got.error = BackendError(model.name, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # never crash the host: an unexpected backend bug is a failed attempt
            log.exception("backend failure on %s", model.name)
            got.error = BackendError(model.name, f"{type(exc).__name__}: {exc}")
        finally:
            feed.close()
            got.latency_ms = (time.perf_counter() - t0) * 1000.0
        got.text = "".join(pieces)
        return got

    # -- bookkeeping ------------------------------------------------------------------------------
    def _failed(self, name: str, error: BackendError) -> None:
        client = isinstance(error, _ClientCaused)
        if not client:  # the client's own limit or departure says nothing about the model's health
            with self._lock:
                self._failures[name] = self._failures.get(name, 0) + 1
                self._last_error[name] = str(error)
                if getattr(error, "cooldown", True) and self.cooldown_s > 0:
                    self._cooldown[name] = self._clock() + self.cooldown_s
        reason = "client" if client else "timeout" if isinstance(error, BackendTimeoutError) else (
            "context" if isinstance(error, ContextOverflowError) else
            "unavailable" if isinstance(error, ModelUnavailableError) else "error")
        self.metrics.inc("zeta_attempt_failures_total", {"model": name, "reason": reason})

    def _check_reload(self) -> None:
        self.router.maybe_reload()

    def _count_decision(self, decision: Decision, route: str) -> None:
        self.metrics.inc("zeta_decisions_total", {"model": decision.model, "kind": decision.kind, "route": route})
        self.timeline.add(decision.model)

    def _observe_success(self, name: str, got: _Attempted, signals: tuple[str, ...], total_ms: float,
                         decision: Decision) -> None:
        m = self.metrics
        chosen = decision.score(name)
        largest = largest_capable(decision.scores, lambda n: getattr(self.model(n), "size_b", None))
        if chosen is not None and chosen.cost is not None and largest is not None:
            # Both sides as the router predicted them, so the saving compares like with like.
            m.inc("zeta_cost_expected_total", {"model": name}, chosen.cost)
            m.inc("zeta_cost_largest_total", {"model": largest.model}, largest.cost)
        m.observe("zeta_request_duration_seconds", total_ms / 1000.0, {"model": name})
        if got.ttft_ms is not None:
            m.observe("zeta_ttft_seconds", got.ttft_ms / 1000.0, {"model": name})
        f = got.final
        if f.prompt_tokens:
            m.inc("zeta_tokens_total", {"model": name, "type": "prompt"}, f.prompt_tokens)
        if f.completion_tokens:
            m.inc("zeta_tokens_total", {"model": name, "type": "completion"}, f.completion_tokens)
        for s in signals:
            m.inc("zeta_quality_signals_total", {"model": name, "signal": s})

    def _record(self, decision: Decision, did: str, name: str, previous: str | None, got: _Attempted,
                request: GenerationRequest, *, signals: tuple[str, ...], text: str,
                ids: tuple[str | None, str | None] = (None, None)) -> tuple[OutcomeRecord | None, Outcome]:
        model = self.model(name)
        f = got.final
        quality = source = None
        if got.error is not None:
            success, error = False, str(got.error)
        else:
            success, error, quality, source = outcome_fields(signals, got.json_error, request.max_tokens)
        cost = attempt_cost(model, got.latency_ms, len(text), f is not None and f.load_ms is not None,
                            in_ms=name in self._pool_index()[3])
        # The answer's text goes into the record (capped here, so what is kept for feedback is bounded
        # too); Router.record drops it when text logging is off.  Embeddings have no text to keep.
        response, cut = cap_response(got.text) if got.error is None and request.mode != "embed" else (None, False)
        outcome = Outcome(
            response=response, response_truncated=cut,
            success=success, latency_ms=round(got.latency_ms, 3),
            ttft_ms=None if got.ttft_ms is None else round(got.ttft_ms, 3),
            prompt_tokens=f.prompt_tokens if f else None, completion_tokens=f.completion_tokens if f else None,
            error=error, quality=quality, quality_source=source, model=name, fallback_from=previous,
            cost=round(cost, 6) if cost is not None and math.isfinite(cost) else None,
            request_id=ids[0], retry_of=ids[1])
        d = decision if did == decision.decision_id else replace(decision, decision_id=did)
        if got.error is None:
            with self._lock:
                self._recent[did] = _Remembered(d, outcome)
                self._recent_chars += len(d.query or "") + len(response or "")
                # Bounded in count and in the text it keeps alive (long chats are megabytes).
                while self._recent and (len(self._recent) > self._capacity
                                        or self._recent_chars > _FEEDBACK_TEXT_BUDGET):
                    _, old = self._recent.popitem(last=False)
                    self._recent_chars -= len(old.decision.query or "") + len(old.outcome.response or "")
        if self._writer is not None:
            self._writer.submit(d, outcome)
            return None, outcome
        return write_record(self.router, self.metrics, d, outcome), outcome


# alias option -> the RouteOptions field a request sets it with
_ALIAS_FIELD = {"timeout_ms": "timeout_s"}


def context_problem(backend: Backend, model: ModelInfo, request: GenerationRequest, text: str) -> str | None:
    """Why the prompt cannot fit ``model``'s context (exact token count when ``backend`` can count),
    or None.  Counting is skipped while the prompt's UTF-8 size is below the context: a token covers
    at least a byte.  ``text`` is ``request_text(request)``."""
    window_fn = getattr(backend, "context_window", None)
    window = window_fn(model) if window_fn is not None else model.context_length
    if window is None:
        return None
    texts = list(request.inputs) if request.mode == "embed" else [text]
    overhead = _CHAT_OVERHEAD_TOKENS * len(request.messages) if request.mode == "chat" else 0
    # 4 bytes a character at most: most prompts are clearly short enough without encoding them.
    if all(4 * len(t) + overhead + 2 < window or len(t.encode("utf-8", errors="replace")) + overhead + 2 < window
           for t in texts):
        return None
    if overhead >= window:
        return (f"{len(request.messages)} messages carry {overhead} tokens of per-message overhead "
                f"({_CHAT_OVERHEAD_TOKENS} each), which alone exceed the context of {window}")
    count = getattr(backend, "count_tokens", None)
    if count is None:
        return None
    for t in texts:
        try:
            n = count(model, t)
        except Exception:  # counting is an optimisation: the model itself will refuse if it must
            return None
        if n is not None and n + overhead >= window:
            extra = f" with {overhead} tokens of per-message overhead" if overhead else ""
            return f"prompt of {n} tokens{extra} does not fit the context of {window}"
    return None


class _ClientCaused:
    """A failure the client caused: no cooldown, and its record's ``error`` starts with
    ``CLIENT_ERROR_PREFIX`` (not the model's name) so training leaves it out (see ``records``)."""

    cooldown = False

    def __init__(self, model: str, message: str):
        super().__init__(model, message)
        self.args = (f"{CLIENT_ERROR_PREFIX} {message}",)


class _CancelledError(_ClientCaused, BackendError):
    pass  # a client that went away says nothing about the model


class _ClientTimeoutError(_ClientCaused, BackendTimeoutError):
    pass  # the request's own (shorter) limit ran out: the client's choice


def _declare(m: Metrics) -> None:
    m.declare("zeta_decisions_total", "counter", "Routing decisions by chosen model, request kind and route (auto|named)")
    m.declare("zeta_request_duration_seconds", "histogram",
              "Wall time of answered requests, fallbacks included, by the model that answered ('none' = no answer)")
    m.declare("zeta_ttft_seconds", "histogram", "Time to first token of the answering attempt, by model")
    m.declare("zeta_decide_seconds", "histogram", "Time spent choosing a model (routing overhead)",
              buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1))
    m.declare("zeta_fallbacks_total", "counter", "Fallbacks from a failed model to the next one")
    m.declare("zeta_attempt_failures_total", "counter",
              "Failed attempts by model and reason (error|timeout|context|unavailable|client)")
    m.declare("zeta_quality_signals_total", "counter", "Implicit quality signals (truncated|empty|invalid_json)")
    m.declare("zeta_tokens_total", "counter", "Prompt and completion tokens by model")
    m.declare("zeta_cost_expected_total", "counter",
              "Expected cost (the pool's cost model, as the router scored it) of answers, by the model that answered")
    m.declare("zeta_cost_largest_total", "counter",
              "Expected cost of the same requests on their largest capable candidate, by that model (the baseline)")
    m.declare("zeta_feedback_total", "counter", "Explicit quality feedback received, by model")
    m.declare("zeta_client_retries_total", "counter", "Requests recognised as a client's retry of an earlier one")
    m.declare("zeta_record_errors_total", "counter", "Outcome records that could not be written")
    m.declare("zeta_artifact_info", "gauge", "The artifact version in use (value 1); 'none' on rules")
    m.declare("zeta_router_rule_based", "gauge", "1 when the router routes by rules (no usable artifact)")
    m.declare("zeta_model_loaded", "gauge", "1 when a model has an instance loaded for the mode")
    m.declare("zeta_model_cooldown_seconds", "gauge", "Seconds a model still rests after a failure")
    m.declare("zeta_model_unavailable", "gauge", "1 while a model is out of the pool until its file changes")
    m.declare("zeta_artifact_reload_refused", "gauge",
              "1 while the latest hot reload was refused (the previous artifact keeps serving)")
    m.declare("zeta_artifact_reloads_refused_total", "counter", "Hot reloads refused since the server started")
