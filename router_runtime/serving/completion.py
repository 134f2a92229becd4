"""What a request asks the serving layer for (``RouteOptions``) and what it gets back (``Completion``,
its ``Attempt`` list, the ``x-zeta-decision`` header).  Plain data: the service, the stream and the
OpenAI wire format all speak it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..aliases import ALIAS_PREFIX
from ..records import OutcomeRecord
from ..router import Decision, Outcome

__all__ = ["AUTO", "RouteOptions", "Attempt", "Completion", "decision_header"]

AUTO = "auto"  # the model name that asks the router to choose


@dataclass(frozen=True)
class RouteOptions:
    """How to route one request.  ``timeout_s`` bounds each attempt; None = the service's default."""

    model: str = AUTO
    kind: str | None = None                 # default: "embed" for embeddings, "chat" otherwise
    cost_weight: float | None = None
    max_latency_ms: float | None = None
    timeout_s: float | None = None
    candidates: tuple[str, ...] | None = None
    conversation: str | None = None         # session-affinity key (header x-zeta-conversation or zeta.conversation)
    request_id: str | None = None           # the client's id of its request (x-zeta-request-id, Idempotency-Key)
    client_retry: int = 0                   # the openai client's retry count (x-stainless-retry-count)
    fingerprint: str | None = None          # sha256 of the request body: recognises a retry without a request id
    trace_headers: tuple[tuple[str, str], ...] = ()  # W3C trace context of the caller (traceparent, tracestate)


@dataclass(frozen=True)
class Attempt:
    model: str
    decision_id: str
    error: str | None
    latency_ms: float


@dataclass
class Completion:
    """An answered request.  ``decision_id`` is the id of the answer's record (what feedback takes)."""

    decision: Decision
    decision_id: str
    model: str
    requested_model: str
    text: str = ""
    embeddings: tuple[tuple[float, ...], ...] | None = None
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    attempts: tuple[Attempt, ...] = ()
    signals: tuple[str, ...] = ()
    outcome: Outcome | None = None
    record: OutcomeRecord | None = None        # only with background_records=False (else written later)
    tool_calls: list[dict[str, Any]] | None = None  # the OpenAI tool calls of a forced call (serving.tools)
    retry_of: str | None = None                # decision_id of the failed request this one retries

    @property
    def fallback_from(self) -> str | None:
        return self.attempts[-2].model if len(self.attempts) > 1 else None

    def header(self) -> dict[str, Any]:
        return decision_header(self.decision, model=self.model, decision_id=self.decision_id,
                               requested=self.requested_model, attempts=self.attempts, retry_of=self.retry_of)


def decision_header(decision: Decision, *, model: str, decision_id: str, requested: str,
                    attempts: Sequence[Attempt], retry_of: str | None = None) -> dict[str, Any]:
    """The ``x-zeta-decision`` header's content: what was chosen, why, and how every candidate scored."""
    failed = [a for a in attempts if a.error is not None]
    return {
        "decision_id": decision_id,
        "model": model,
        "requested_model": requested,
        "routed": requested == AUTO or requested.startswith(ALIAS_PREFIX),
        "kind": decision.kind,
        "scores": {s.model: {"quality": _r(s.quality), "cost": _r(s.cost), "latency_ms": _r(s.latency_ms),
                             "utility": _r(s.utility)} for s in decision.scores},
        "cost_weight": decision.cost_weight,
        "cost_scale": decision.cost_scale,   # utility = quality - cost_weight * cost / cost_scale
        "context_chars": decision.context_chars,
        "explored": decision.explored,
        "sticky": decision.sticky,
        "propensity": decision.propensity,
        "artifact_version": decision.artifact_version,
        "reason": decision.reason,
        "excluded": dict(decision.excluded),
        "fallback_from": failed[-1].model if failed and failed[-1].model != model else None,
        "attempts": [{"model": a.model, "error": a.error} for a in attempts],
        "retry_of": retry_of,
    }


def _r(v: float | None) -> float | None:
    return None if v is None else float(f"{v:.6g}")
