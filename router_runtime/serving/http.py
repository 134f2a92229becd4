"""The OpenAI-compatible HTTP server (``zeta serve``): Starlette + uvicorn + sse-starlette, the ASGI
stack of llama-cpp-python's own ``server`` extra (the ``serve`` extra here), imported only when a
server is built (``MissingDependencyError`` names the extra otherwise).

=========================  =================================================================
endpoint                   what it does
=========================  =================================================================
POST /v1/chat/completions  chat; ``"stream": true`` answers by server-sent events
POST /v1/completions       text completion (streamed or not)
POST /v1/embeddings        embeddings, routed among embed-capable models only
GET  /v1/models            the pool, plus ``auto``
POST /v1/feedback          ``{"decision_id", "quality"}``: explicit quality for an answer
GET  /metrics              Prometheus text format
GET  /health               status, artifact, per-model state (cooldowns, loaded instances)
GET  /ui                   the dashboard page (``dashboard``); it asks for the token
GET  /ui/data.json         the numbers the dashboard draws (metrics, state, registry)
=========================  =================================================================

``model: "auto"`` routes; so does an alias (``auto:cw=0.3``, the pool file's ``[aliases]``, listed
by ``/v1/models``); a pool model's name bypasses routing.  Every answer carries an
``x-zeta-decision`` header (JSON: decision_id, model, per-model scores, cost weight, explored,
artifact version, reason, attempts, retry_of) and, in non-streamed bodies, the same object as
``zeta``.  The per-request routing options travel in the ``zeta`` body field, in ``x-zeta-*``
headers (see ``openai_api``) or in the alias.  ``/v1/feedback`` takes any decision_id: one this
process no longer remembers is written as a stand-in label line that ingest joins to its record.
Tools, tool calls (streamed too) and llama.cpp's sampling knobs pass through (``serving.tools``).

Hardening: binds 127.0.0.1 unless told otherwise; an optional bearer token guards everything but
``/health`` (compared in constant time; ``/ui`` without it answers 401 with the page itself, which
holds no data and asks for the token: a browser cannot send a bearer header when it opens a URL);
bodies above ``max_body_bytes`` get 413 before they are read whole, a body not received within ``body_timeout_s`` gets 408; bad JSON or bad fields get 400
with an OpenAI error object naming the field (text with a lone surrogate and integers beyond
Python's 4,300-digit conversion limit included); unknown paths 404 and wrong methods 405 in the same
shape; an unexpected exception is a 500 in that shape, logged, and the server keeps serving.  The
connection limits (header read timeout, connection cap, keep-alive) are ``connections``'.

Threads: generation runs in worker threads (anyio's pool; each model instance is checked out by one
request at a time, so concurrent requests to one model queue instead of sharing a llama.cpp
context); ``/health`` and ``/metrics`` run on two threads of their own, so a probe never waits
behind queued generation.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from pathlib import Path
from dataclasses import replace
from typing import Any, Callable

from .._checks import is_finite, is_integer
from ..errors import ContractError, MissingDependencyError, ServingError, ZetaError
from .connections import default_limit_concurrency, protocol_class
from .dashboard import dashboard_data, page_html
from .metrics import CONTENT_TYPE
from .openai_api import (chat_chunk, chat_response, completion_chunk, completion_response, embeddings_response,
                         error_body, parse_chat, parse_completion, parse_embeddings, parse_feedback, usage)
from .otel import tracing_from_config
from .service import AUTO, RoutingService

__all__ = ["create_app", "serve", "server_config", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_BODY_TIMEOUT_S",
           "DEFAULT_HEADER_TIMEOUT_S", "DEFAULT_KEEP_ALIVE_S", "DECISION_HEADER"]

log = logging.getLogger("zeta.server")

DEFAULT_MAX_BODY_BYTES = 4 << 20
DEFAULT_BODY_TIMEOUT_S = 30.0    # the whole body, from the end of the headers
DEFAULT_HEADER_TIMEOUT_S = 10.0  # the request line and headers, from the connection's opening
DEFAULT_KEEP_ALIVE_S = 5         # an idle keep-alive connection is closed after this (uvicorn's own)
DECISION_HEADER = "x-zeta-decision"
_MAX_HEADER_CHARS = 8000   # clients refuse response headers above 16 KB or so (h11's default)
_TRACE_HEADERS = ("traceparent", "tracestate")  # W3C trace context: a caller's span becomes the parent
_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/v1/feedback", "/metrics",
          "/health", "/ui", "/ui/data.json")
_UI_PAGES = ("/ui", "/ui/")
# The page's script and style are inline; it talks only to its own server.
_UI_HEADERS = {"content-security-policy": "default-src 'none'; script-src 'unsafe-inline'; "
                                          "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; "
                                          "form-action 'none'; frame-ancestors 'none'",
               "cache-control": "no-store", "x-content-type-options": "nosniff"}


def _need_serve_extra():
    try:
        import sse_starlette  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"the server needs the serve extra ({exc.name} is missing): "
                                     "pip install 'zeta-router[serve]'") from None


def header_value(header: dict[str, Any]) -> str:
    """The decision as one ASCII header line, shortened (excluded list, then reason) when too long."""
    h = dict(header)
    text = json.dumps(h, ensure_ascii=True, separators=(",", ":"))
    if len(text) > _MAX_HEADER_CHARS:
        h["excluded"] = {"omitted": f"{len(h.get('excluded', {}))} models (header too long)"}
        text = json.dumps(h, ensure_ascii=True, separators=(",", ":"))
    if len(text) > _MAX_HEADER_CHARS:
        h["reason"] = h["reason"][:200] + "..."
        h["scores"] = {m: {"utility": s["utility"]} for m, s in h["scores"].items()}
        text = json.dumps(h, ensure_ascii=True, separators=(",", ":"))
    return text


def create_app(service: RoutingService, *, token: str | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S) -> Any:
    """The ASGI application serving ``service``."""
    _need_serve_extra()
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    if token is not None and not token:
        raise ContractError("token", "must be a non-empty string (or None for no authentication)")
    if not is_integer(max_body_bytes) or max_body_bytes < 1:
        raise ContractError("max_body_bytes", f"must be a positive integer, got {max_body_bytes!r}")
    if not is_finite(body_timeout_s) or body_timeout_s <= 0:
        raise ContractError("body_timeout_s", f"must be a positive number, got {body_timeout_s!r}")
    metrics = service.metrics
    # Probes get threads of their own: anyio's pool can be full of requests waiting for a model.
    probes = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="zeta-probe")

    async def on_probe_thread(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(probes, fn, *args)
    metrics.declare("zeta_http_requests_total", "counter", "HTTP requests by path and status")

    def error(status: int, message: str, *, param: str | None = None, code: str | None = None,
              headers: dict | None = None) -> Any:
        return JSONResponse(error_body(status, message, param=param, code=code), status_code=status, headers=headers)

    def from_exception(exc: BaseException) -> Any:
        if isinstance(exc, ContractError):
            return error(400, str(exc), param=exc.field, code="invalid_value")
        if isinstance(exc, ServingError):
            return error(exc.status, str(exc), param=exc.param, code=exc.code)
        if isinstance(exc, ZetaError):
            return error(500, f"{type(exc).__name__}: {exc}", code="internal_error")
        log.error("unexpected error", exc_info=exc)
        return error(500, f"internal error ({type(exc).__name__})", code="internal_error")

    class _TooLarge(Exception):
        pass

    class _TooSlow(Exception):
        pass

    async def read_json(request: Request) -> Any:
        return (await read_body(request))[0]

    async def read_body(request: Request) -> tuple[Any, str]:
        """The JSON body and the sha256 of its bytes (how a retry without a request id is recognised)."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body_bytes:
            raise _TooLarge()
        chunks, size = [], 0
        try:
            async with asyncio.timeout(body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_body_bytes:
                        raise _TooLarge()
                    chunks.append(chunk)
        except TimeoutError:
            raise _TooSlow() from None
        raw = b"".join(chunks)
        if not raw.strip():
            raise ContractError("body", "empty body: send a JSON object")
        try:
            text = raw.decode("utf-8")  # json.loads(bytes) would also take UTF-16/32: the API is UTF-8
        except UnicodeDecodeError as exc:
            raise ContractError("body", f"not UTF-8 (byte {exc.start})") from None
        try:
            return json.loads(text), hashlib.sha256(raw).hexdigest()
        except json.JSONDecodeError as exc:
            raise ContractError("body", f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
        except RecursionError:
            raise ContractError("body", "JSON nested too deeply") from None
        except ValueError as exc:  # e.g. an integer of more than 4,300 digits (Python's conversion limit)
            raise ContractError("body", f"invalid JSON: {exc}") from None

    def endpoint(fn: Callable) -> Callable:
        async def handler(request: Request) -> Any:
            try:
                return await fn(request)
            except _TooLarge:
                return error(413, f"request body larger than {max_body_bytes} bytes", code="body_too_large")
            except _TooSlow:
                return error(408, f"request body not received within {body_timeout_s:g} s", code="body_timeout",
                             headers={"connection": "close"})
            except Exception as exc:  # one bad request never takes the server down
                return from_exception(exc)
        handler.__name__ = fn.__name__
        return handler

    def decision_headers(header: dict[str, Any]) -> dict[str, str]:
        return {DECISION_HEADER: header_value(header)}

    async def parsed(request: Request, parse: Callable) -> tuple:
        """``parse(body, headers)`` with the request's fingerprint and trace context in its options."""
        body, digest = await read_body(request)
        out = parse(body, request.headers)
        trace = tuple((h, request.headers[h]) for h in _TRACE_HEADERS if h in request.headers)
        options = replace(out[1], fingerprint=f"{request.url.path}:{digest}", trace_headers=trace)
        return (out[0], options, *out[2:])

    async def streamed(stream, include_usage: bool, make_chunk: Callable, first_role: bool,
                       req: Any = None) -> Any:
        """Run ``stream`` on a worker thread; answer by SSE once its first event is known (so the
        decision header names the model that really answers, after any fallback)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def put(item):
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone (shutdown): nobody is listening
                pass

        def pump():
            try:
                for ev in stream:
                    put(("delta", ev.text))
                put(("end", stream.result))
            except BaseException as exc:  # handed to the event loop, which answers with it
                put(("error", exc))

        threading.Thread(target=pump, name="zeta-stream", daemon=True).start()
        try:
            first = await queue.get()
        except BaseException:
            stream.cancel()
            raise
        if first[0] == "error":
            return from_exception(first[1])
        cid_prefix = "chatcmpl" if first_role else "cmpl"
        cid, created, model = f"{cid_prefix}-{stream.decision_id}", int(time.time()), stream.model
        # A forced call streams its arguments as they come; "required" names the tool inside its JSON,
        # so that call goes out whole at the end.
        choice = getattr(req, "tool_choice", "none")
        call_id = f"call_{stream.decision_id}"

        def piece(text: str) -> dict[str, Any]:
            if choice == "function":
                return {"tool_calls": [{"index": 0, "function": {"arguments": text}}]}
            return _piece(first_role, text)

        async def events():
            item = first
            try:
                if first_role:
                    yield {"data": json.dumps(make_chunk(cid, model, created, role=True, content=""))}
                if choice == "function":
                    yield {"data": json.dumps(make_chunk(cid, model, created, tool_calls=[{
                        "index": 0, "id": call_id, "type": "function",
                        "function": {"name": req.tool_name, "arguments": ""}}]))}
                while True:
                    kind, value = item
                    if kind == "delta":
                        if choice != "required":
                            yield {"data": json.dumps(make_chunk(cid, model, created, **piece(value)))}
                    elif kind == "end":
                        finish = value.finish_reason
                        if value.tool_calls:
                            finish = "tool_calls"
                            if choice == "required":
                                yield {"data": json.dumps(make_chunk(cid, model, created, tool_calls=[
                                    {"index": i, **c} for i, c in enumerate(value.tool_calls)]))}
                        elif choice == "required" and value.text:  # not a call (cut short): the text as it is
                            yield {"data": json.dumps(make_chunk(cid, model, created, content=value.text))}
                        yield {"data": json.dumps(make_chunk(cid, model, created, finish_reason=finish))}
                        if include_usage:
                            yield {"data": json.dumps(make_chunk(cid, model, created, usage_=usage(value)))}
                        yield {"data": "[DONE]"}
                        return
                    else:
                        exc = value
                        status = exc.status if isinstance(exc, ServingError) else 500
                        yield {"data": json.dumps(error_body(status, str(exc), code=getattr(exc, "code", None)))}
                        return
                    item = await queue.get()
            finally:
                stream.cancel()  # a client that went away stops generation at the next token

        return EventSourceResponse(events(), headers=decision_headers(stream.header()), ping=15)

    @endpoint
    async def chat_completions(request: Request) -> Any:
        req, options, stream, include_usage = await parsed(request, parse_chat)
        conv = request.headers.get("x-zeta-conversation")
        if conv and options.conversation is None:
            options = replace(options, conversation=conv[:256])
        if stream:
            return await streamed(service.stream(req, options), include_usage, chat_chunk, True, req)
        c = await run_in_threadpool(service.complete, req, options)
        return JSONResponse(chat_response(c), headers=decision_headers(c.header()))

    @endpoint
    async def completions(request: Request) -> Any:
        req, options, stream, include_usage = await parsed(request, parse_completion)
        if stream:
            return await streamed(service.stream(req, options), include_usage, completion_chunk, False)
        c = await run_in_threadpool(service.complete, req, options)
        return JSONResponse(completion_response(c), headers=decision_headers(c.header()))

    @endpoint
    async def embeddings(request: Request) -> Any:
        req, options, fmt = await parsed(request, parse_embeddings)
        c = await run_in_threadpool(service.complete, req, options)
        return JSONResponse(embeddings_response(c, fmt), headers=decision_headers(c.header()))

    @endpoint
    async def models(request: Request) -> Any:
        data = [{"id": AUTO, "object": "model", "created": 0, "owned_by": "zeta-router",
                 "capabilities": sorted({c for m in service.pool for c in m.capabilities})}]
        for name, opts in sorted(service.aliases.items()):  # what a UI's model picker can offer
            data.append({"id": name, "object": "model", "created": 0, "owned_by": "zeta-router", "alias_of": AUTO,
                         "routing": opts})
        for m in service.pool:
            data.append({"id": m.name, "object": "model", "created": 0, "owned_by": "local",
                         "capabilities": list(m.capabilities), "context_length": m.context_length})
        return JSONResponse({"object": "list", "data": data})

    @endpoint
    async def feedback(request: Request) -> Any:
        decision_id, quality, model = parse_feedback(await read_json(request))
        remembered = service.remembers(decision_id)
        o = await run_in_threadpool(service.feedback, decision_id, quality, model)
        return JSONResponse({"decision_id": decision_id, "model": o.model, "quality": o.quality,
                             "quality_source": o.quality_source, "recorded": True, "remembered": remembered})

    @endpoint
    async def metrics_endpoint(request: Request) -> Any:
        # Per-request metrics are updated by the service's writer thread, within ~10 ms: catch up first.
        def scrape() -> str:
            service.flush(2.0)
            service.refresh_gauges()
            return metrics.render()
        return Response(await on_probe_thread(scrape), media_type=CONTENT_TYPE)

    @endpoint
    async def health(request: Request) -> Any:
        return JSONResponse(await on_probe_thread(service.health))

    @endpoint
    async def ui_page(request: Request) -> Any:
        return Response(page_html(), media_type="text/html; charset=utf-8", headers=_UI_HEADERS)

    @endpoint
    async def ui_data(request: Request) -> Any:
        return JSONResponse(await on_probe_thread(dashboard_data, service), headers={"cache-control": "no-store"})

    async def http_error(request: Request, exc: HTTPException) -> Any:
        msg = {404: f"no such endpoint: {request.url.path}", 405: f"method {request.method} not allowed here"}
        return error(exc.status_code, msg.get(exc.status_code, str(exc.detail)), code="not_found"
                     if exc.status_code == 404 else "method_not_allowed")

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/feedback", feedback, methods=["POST"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ui", ui_page, methods=["GET"]),
        Route("/ui/", ui_page, methods=["GET"]),
        Route("/ui/data.json", ui_data, methods=["GET"]),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        # Shutting down: the queued OutcomeRecords go to disk before the process ends.
        await run_in_threadpool(service.flush, 30.0)
        if service.tracer is not None:  # the spans still in the batch go out too
            await run_in_threadpool(service.tracer.shutdown)
        probes.shutdown(wait=False)

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)
    return _Guard(app, token=token, metrics=metrics)


def _piece(chat: bool, text: str) -> dict[str, Any]:
    return {"content": text} if chat else {"text": text}


class _Guard:
    """Pure ASGI middleware: bearer-token check (constant time) and request counting.  Pure ASGI, not
    Starlette's BaseHTTPMiddleware, so streamed responses pass through untouched."""

    def __init__(self, app: Any, *, token: str | None, metrics: Any):
        self.app = app
        self._token = None if token is None else f"Bearer {token}".encode()
        self._metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        label = "/ui" if path in _UI_PAGES else path if path in _PATHS else "other"
        status_seen = {"status": 500}

        async def counting_send(message):
            if message["type"] == "http.response.start":
                status_seen["status"] = message["status"]
            await send(message)

        try:
            if self._token is not None and path != "/health":
                got = dict(scope.get("headers") or []).get(b"authorization", b"")
                if not hmac.compare_digest(got, self._token):
                    if path in _UI_PAGES:  # the login prompt: the page asks for the token, holds no data
                        body, kind = page_html(), b"text/html; charset=utf-8"
                        extra = [(k.encode(), v.encode()) for k, v in _UI_HEADERS.items()]
                    else:
                        body = json.dumps(error_body(401, "missing or wrong bearer token (Authorization: Bearer ...)",
                                                     code="invalid_api_key")).encode()
                        kind, extra = b"application/json", []
                    await counting_send({"type": "http.response.start", "status": 401, "headers": [
                        (b"content-type", kind), (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", b"Bearer"), *extra]})
                    await send({"type": "http.response.body", "body": body})
                    return
            await self.app(scope, receive, counting_send)
        finally:
            self._metrics.inc("zeta_http_requests_total", {"path": label, "status": str(status_seen["status"])})


def build_service(pool_path: str | os.PathLike, *, artifact: str | os.PathLike | None = "artifacts",
                  log_dir: str | os.PathLike | None = "logs", memory_budget_mb: float | None = None,
                  max_hops: int = 2, cooldown_s: float = 30.0, timeout_s: float = 300.0,
                  n_threads: int | None = None, reload_interval_ms: float | None = 1000.0,
                  otel: bool = False, otel_endpoint: str | None = None) -> RoutingService:
    """A RoutingService over the llama.cpp backend for a pool file (what ``zeta serve`` runs), with
    the pool file's model aliases.

    With an artifact path, newly promoted versions are picked up by themselves (a stat of the
    registry's CURRENT at most every ``reload_interval_ms``; None turns that off).  ``otel`` (or
    ``otel_endpoint``, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` in the environment) traces every request
    over OTLP (``serving.otel``)."""
    from .llama import LlamaBackend
    from ..logger import OutcomeLogger
    from ..pool import load_aliases, load_pool
    from ..router import Router

    pool = load_pool(pool_path)
    aliases = load_aliases(pool_path)
    tracer = tracing_from_config(otel, otel_endpoint)
    backend = LlamaBackend(pool, base_dir=Path(pool_path).resolve().parent, memory_budget_mb=memory_budget_mb,
                           n_threads=n_threads)
    logger = OutcomeLogger(log_dir) if log_dir is not None else None
    router = Router.load(artifact, pool=pool, logger=logger,
                         reload_interval_ms=reload_interval_ms if artifact is not None else None)
    return RoutingService(router, backend, max_hops=max_hops, cooldown_s=cooldown_s, timeout_s=timeout_s,
                          aliases=aliases, tracer=tracer)


def server_config(app: Any, *, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info",
                  header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S, keep_alive_s: int = DEFAULT_KEEP_ALIVE_S,
                  limit_concurrency: int | None = None) -> Any:
    """The ``uvicorn.Config`` ``serve`` runs ``app`` with: the connection limits of ``connections``
    (``limit_concurrency`` None: what the descriptor limit allows, at most 256)."""
    _need_serve_extra()
    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError("the server needs uvicorn: pip install 'zeta-router[serve]'") from None
    if not is_finite(header_timeout_s) or header_timeout_s <= 0:
        raise ContractError("header_timeout_s", f"must be a positive number, got {header_timeout_s!r}")
    if not is_integer(keep_alive_s) or keep_alive_s < 1:
        raise ContractError("keep_alive_s", f"must be an integer >= 1, got {keep_alive_s!r}")
    if limit_concurrency is None:
        limit_concurrency = default_limit_concurrency()
    if not is_integer(limit_concurrency) or limit_concurrency < 1:
        raise ContractError("limit_concurrency", f"must be an integer >= 1, got {limit_concurrency!r}")
    http = protocol_class(header_timeout_s=header_timeout_s, limit_concurrency=limit_concurrency)
    # uvicorn answers 503 once connections *or* tasks reach its limit; the protocol already refuses
    # connections beyond ours, so its limit is one more: every admitted connection may send a request.
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, http=http,
                          timeout_keep_alive=keep_alive_s, limit_concurrency=limit_concurrency + 1)


def _log_to_stderr(level: str) -> None:
    """The service's own log lines ("zeta.*": hot reloads, refused versions, unexpected errors) on
    stderr beside uvicorn's, unless the host already set logging up."""
    zeta = logging.getLogger("zeta")
    if zeta.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    zeta.addHandler(handler)
    zeta.setLevel(level.upper() if level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO")


def serve(service: RoutingService, *, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, log_level: str = "info",
          body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S, header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
          keep_alive_s: int = DEFAULT_KEEP_ALIVE_S, limit_concurrency: int | None = None) -> None:
    """Serve until interrupted (uvicorn, with the limits of ``server_config``)."""
    if token is None and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s without a bearer token: anyone who can reach it can use your models", host)
    _log_to_stderr(log_level)
    app = create_app(service, token=token, max_body_bytes=max_body_bytes, body_timeout_s=body_timeout_s)
    config = server_config(app, host=host, port=port, log_level=log_level, header_timeout_s=header_timeout_s,
                           keep_alive_s=keep_alive_s, limit_concurrency=limit_concurrency)
    import uvicorn  # present: server_config checked

    uvicorn.Server(config).run()
