"""OpenTelemetry traces of the serving layer (the ``otel`` extra), off unless configured.

``Tracing`` turns each request ``RoutingService`` answers (or fails) into one span, named as the GenAI
semantic conventions ask (``"{gen_ai.operation.name} {gen_ai.request.model}"``, kind SERVER, the
caller's W3C ``traceparent`` as parent), with:

- the GenAI attributes: ``gen_ai.operation.name`` (chat | text_completion | embeddings),
  ``gen_ai.provider.name`` ("llama.cpp"), ``gen_ai.request.model`` (as the client named it: ``auto``,
  an alias, a model), ``gen_ai.request.max_tokens`` / ``temperature`` / ``top_p`` / ``top_k`` /
  ``seed`` / ``presence_penalty`` / ``frequency_penalty`` / ``stop_sequences`` when set,
  ``gen_ai.output.type``, ``gen_ai.response.model`` (the model that answered), ``gen_ai.response.id``,
  ``gen_ai.response.finish_reasons``, ``gen_ai.usage.input_tokens`` / ``output_tokens``, and
  ``error.type`` on failure;
- the decision's: ``zeta.decision.id``, ``zeta.decision.candidates``, ``zeta.decision.chosen`` (the
  router's choice; the response model differs after a fallback), ``zeta.decision.propensity``,
  ``zeta.decision.explored``, ``zeta.decision.sticky``, ``zeta.decision.kind``,
  ``zeta.decision.cost_weight``, ``zeta.artifact.version`` ("none" when rules decided),
  ``zeta.decision.rule_based``, ``zeta.fallback_from``, ``zeta.attempts``, ``zeta.ttft_ms``,
  ``zeta.retry_of``; one ``zeta.attempt`` event per model tried (model, error, latency).

Spans go to an OTLP/HTTP exporter (``OTEL_EXPORTER_OTLP_ENDPOINT``, default ``http://localhost:4318``,
and the SDK's other ``OTEL_*`` variables) through a batch processor, so exporting is never on a
request's path; tests pass the SDK's ``InMemorySpanExporter``.  The OpenTelemetry packages are imported
only when a ``Tracing`` is built (``MissingDependencyError`` names the extra otherwise), and the global
tracer provider is left alone: an embedding application keeps its own.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from ..errors import MissingDependencyError, ServingError

__all__ = ["Tracing", "tracing_from_config", "OTLP_ENV"]

OTLP_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_OPERATIONS = {"chat": "chat", "completion": "text_completion", "embed": "embeddings"}
_PROVIDER = "llama.cpp"


def _sdk():
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError as exc:
        raise MissingDependencyError(f"tracing needs the otel extra ({exc.name} is missing): "
                                     "pip install 'zeta-router[otel]'") from None
    return Resource, TracerProvider, BatchSpanProcessor, SimpleSpanProcessor, SpanKind, Status, StatusCode, \
        TraceContextTextMapPropagator


class Tracing:
    """Spans for a RoutingService (``RoutingService(..., tracer=Tracing(...))``).

    ``exporter``: a SpanExporter (default: OTLP over HTTP to ``endpoint``, else the ``OTEL_*``
    environment); ``batch`` False exports each span as it ends (tests).  ``shutdown()`` flushes."""

    def __init__(self, *, exporter: Any = None, endpoint: str | None = None, batch: bool | None = None,
                 service_name: str | None = None):
        (Resource, TracerProvider, BatchSpanProcessor, SimpleSpanProcessor, self._kind, self._Status,
         self._StatusCode, Propagator) = _sdk()
        if exporter is None:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError as exc:
                raise MissingDependencyError(f"OTLP export needs the otel extra ({exc.name} is missing): "
                                             "pip install 'zeta-router[otel]'") from None
            exporter = OTLPSpanExporter(endpoint=_traces_url(endpoint)) if endpoint else OTLPSpanExporter()
            batch = True if batch is None else batch
        attrs = {"service.name": service_name or os.environ.get("OTEL_SERVICE_NAME") or "zeta-router"}
        self.provider = TracerProvider(resource=Resource.create(attrs))
        self.provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
        self._tracer = self.provider.get_tracer("zeta-router")
        self._propagator = Propagator()

    # -- what RoutingService calls ----------------------------------------------------------------
    def start(self, request: Any, requested_model: str, options: Any) -> Any:
        op = _OPERATIONS.get(request.mode, request.mode)
        attrs: dict[str, Any] = {"gen_ai.operation.name": op, "gen_ai.provider.name": _PROVIDER,
                                 "gen_ai.request.model": requested_model}
        for key, attr in (("max_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p"),
                          ("top_k", "top_k"), ("seed", "seed"), ("presence_penalty", "presence_penalty"),
                          ("frequency_penalty", "frequency_penalty")):
            v = getattr(request, key, None)
            if v is not None:
                attrs[f"gen_ai.request.{attr}"] = v
        if getattr(request, "stop", ()):
            attrs["gen_ai.request.stop_sequences"] = list(request.stop)
        if request.mode != "embed":
            attrs["gen_ai.output.type"] = "json" if getattr(request, "json_mode", False) else "text"
        if getattr(options, "request_id", None):
            attrs["zeta.request_id"] = options.request_id
        parent = self._propagator.extract(dict(options.trace_headers)) if getattr(options, "trace_headers", ()) \
            else None
        return self._tracer.start_span(f"{op} {requested_model}", context=parent, kind=self._kind.SERVER,
                                       attributes=attrs)

    def finish(self, span: Any, completion: Any) -> None:
        try:
            _decision_attributes(span, completion.decision, completion.attempts, completion.retry_of)
            span.set_attribute("gen_ai.response.model", completion.model)
            span.set_attribute("gen_ai.response.id", completion.decision_id)
            finish = "tool_calls" if completion.tool_calls else completion.finish_reason
            span.set_attribute("gen_ai.response.finish_reasons", [finish])
            if completion.prompt_tokens is not None:
                span.set_attribute("gen_ai.usage.input_tokens", completion.prompt_tokens)
            if completion.completion_tokens is not None:
                span.set_attribute("gen_ai.usage.output_tokens", completion.completion_tokens)
            if completion.ttft_ms is not None:
                span.set_attribute("zeta.ttft_ms", round(completion.ttft_ms, 3))
            if completion.signals:
                span.set_attribute("zeta.quality_signals", list(completion.signals))
        finally:
            span.end()

    def fail(self, span: Any, exc: BaseException, state: Mapping[str, Any]) -> None:
        try:
            if isinstance(exc, GeneratorExit):
                kind, message = "cancelled", "the client went away"
            elif isinstance(exc, ServingError):
                kind, message = exc.code, str(exc)
            else:
                kind, message = type(exc).__name__, str(exc)
            span.set_attribute("error.type", kind)
            decision = state.get("decision")
            if decision is not None:
                _decision_attributes(span, decision, getattr(exc, "attempts", None) or state.get("attempts", ()),
                                     state.get("retry_of"))
            if isinstance(exc, ServingError):
                span.set_attribute("http.response.status_code", exc.status)
            span.set_status(self._Status(self._StatusCode.ERROR, message[:500]))
        finally:
            span.end()

    def shutdown(self) -> None:
        """Export what is pending and stop (the server calls it when it shuts down)."""
        self.provider.shutdown()


def _decision_attributes(span: Any, d: Any, attempts: Any, retry_of: str | None) -> None:
    span.set_attribute("zeta.decision.id", d.decision_id)
    span.set_attribute("zeta.decision.candidates", [s.model for s in d.scores] or [d.model])
    span.set_attribute("zeta.decision.chosen", d.model)
    span.set_attribute("zeta.decision.propensity", d.propensity)
    span.set_attribute("zeta.decision.explored", d.explored)
    span.set_attribute("zeta.decision.sticky", d.sticky)
    span.set_attribute("zeta.decision.kind", d.kind)
    span.set_attribute("zeta.decision.cost_weight", d.cost_weight)
    span.set_attribute("zeta.artifact.version", d.artifact_version or "none")
    span.set_attribute("zeta.decision.rule_based", d.fallback)
    attempts = tuple(attempts or ())
    span.set_attribute("zeta.attempts", len(attempts))
    failed = [a for a in attempts if a.error is not None]
    answered = attempts[-1].model if attempts and attempts[-1].error is None else None
    if failed and failed[-1].model != answered:
        span.set_attribute("zeta.fallback_from", failed[-1].model)
    if retry_of:
        span.set_attribute("zeta.retry_of", retry_of)
    for a in attempts:
        ev = {"zeta.model": a.model, "zeta.latency_ms": a.latency_ms, "zeta.decision.id": a.decision_id}
        if a.error is not None:
            ev["error.type"] = a.error[:200]
        span.add_event("zeta.attempt", ev)


def _traces_url(endpoint: str) -> str:
    """OTLP/HTTP's per-signal URL: a bare endpoint (as OTEL_EXPORTER_OTLP_ENDPOINT holds it) plus /v1/traces."""
    e = endpoint.rstrip("/")
    return e if e.endswith("/v1/traces") else e + "/v1/traces"


def tracing_from_config(enabled: bool = False, endpoint: str | None = None,
                        environ: Mapping[str, str] | None = None) -> Tracing | None:
    """A Tracing when asked for (``--otel``, an endpoint) or when the OTLP endpoint variables are set;
    None otherwise (no OpenTelemetry import at all)."""
    env = os.environ if environ is None else environ
    if not (enabled or endpoint or any(env.get(k) for k in OTLP_ENV)):
        return None
    return Tracing(endpoint=endpoint)
