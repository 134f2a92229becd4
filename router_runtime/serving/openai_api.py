"""The OpenAI wire format: request bodies validated into ``GenerationRequest`` + ``RouteOptions``, and
answers turned into response, chunk and error objects.  Pure standard library, so it is tested
without any HTTP stack; ``server.py`` only moves bytes.

Validation follows the OpenAI API: an unknown field is refused ("Unrecognized request argument"),
and so is a known one this server cannot honour (logprobs, n > 1, audio, ...) rather than being
silently ignored; every refusal is a ``ContractError`` naming the field, which the server answers
with HTTP 400 and an OpenAI error object whose ``param`` is that field.

Passed through to llama.cpp (what llama-cpp-python's own server takes): ``tools`` / ``tool_choice``
(``serving.tools``; tool results come back as ``tool`` messages), ``top_k``, ``min_p``,
``repeat_penalty``, ``seed``, ``logit_bias`` (token ids of the model's vocabulary), and
``response_format`` ``json_object`` or ``{"type": "json_schema", "json_schema": {"schema": {...}}}``
(the output is generated under a grammar built from the schema).

**The extra body field** ``zeta`` (an object; the openai client sends it with
``extra_body={"zeta": {...}}``) carries the routing options of one request:

================  ==============================================================================
key               meaning
================  ==============================================================================
cost_weight       λ >= 0 for this request (default: the artifact's policy)
max_latency_ms    expected-latency limit (> 0): slower models are not chosen
kind              the request kind to route on (chat | code | reason | ...; embed for embeddings)
timeout_ms        limit of each attempt (> 0) before the next model takes over
candidates        list of model names to choose among (default: the whole pool)
conversation      session-affinity key (also the ``x-zeta-conversation`` header); without one, a
                  chat is recognised by a hash of its earlier turns
================  ==============================================================================

The same options (but ``candidates`` and ``conversation``) also come from request headers and model
aliases (``router_runtime.aliases``: ``x-zeta-cost-weight``, ``model: "auto:cw=0.3"``, ...); the body
field wins over a header, a header over the alias.  ``x-zeta-request-id`` (or ``Idempotency-Key``)
names the client's request, so that its retries are recorded as retries of one request
(``request_headers``).
"""

from __future__ import annotations

import base64
import struct
import time
from typing import Any, Mapping

import json

from .._checks import is_finite, is_integer, unicode_text
from ..aliases import ROUTING_HEADERS, check_routing_options
from .backends import GenerationRequest
from ..errors import ContractError
from .completion import AUTO, Completion, RouteOptions
from .tools import output_schema, parse_tools

__all__ = ["parse_chat", "parse_completion", "parse_embeddings", "parse_feedback", "chat_response",
           "chat_chunk", "completion_response", "completion_chunk", "embeddings_response", "error_body",
           "usage", "ZETA_FIELD", "request_headers", "REQUEST_ID_HEADERS", "RETRY_COUNT_HEADER"]

ZETA_FIELD = "zeta"
_IGNORED = {"user", "metadata", "store", "service_tier"}        # accepted, no effect on a local model
_NOT_SUPPORTED = {"functions", "function_call", "logprobs", "top_logprobs",
                  "audio", "modalities", "prediction", "reasoning_effort",
                  "web_search_options", "echo", "best_of", "suffix", "dimensions"}
_SAMPLING = {"max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed", "presence_penalty",
             "frequency_penalty", "n", "stream", "stream_options", "top_k", "min_p", "repeat_penalty", "logit_bias"}
_TOOL_FIELDS = {"tools", "tool_choice", "parallel_tool_calls"}  # one call at most, which parallel_tool_calls allows
_ROLES = {"system", "developer", "user", "assistant", "tool"}
REQUEST_ID_HEADERS = ("x-zeta-request-id", "idempotency-key")
RETRY_COUNT_HEADER = "x-stainless-retry-count"  # the official openai client's: 0, then 1, 2... on its retries
_MAX_LOGIT_BIAS = 1024


def _obj(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ContractError("body", f"must be a JSON object, got {type(body).__name__}")
    _valid_text(body, "")
    return body


def _valid_text(v: Any, path: str) -> None:
    """Every string of the body (keys too) is valid Unicode: a lone surrogate is the client's error (400),
    not a tokenizer failure that would cool a model down."""
    if isinstance(v, str):
        unicode_text(v, path or "body")
    elif isinstance(v, dict):
        for k, x in v.items():
            unicode_text(k, f"{path}.<key>" if path else "body.<key>")
            _valid_text(x, f"{path}.{k}" if path else k)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            _valid_text(x, f"{path}[{i}]")


def _check_fields(body: Mapping[str, Any], allowed: set[str]) -> None:
    for k, v in body.items():
        if k in allowed or k in _IGNORED:
            continue
        if k in _NOT_SUPPORTED:
            # Clients often send these with their "off" value: refuse only what asks for a feature.
            if v is None or v is False or v == [] or (k == "best_of" and v == 1):
                continue
            raise ContractError(k, "is not supported by this server (local llama.cpp models through Zeta Router)")
        raise ContractError(k, "unrecognized request argument")


def _model(body: Mapping[str, Any]) -> str:
    m = body.get("model")
    if not isinstance(m, str) or not m:
        raise ContractError("model", f'is required: a pool model name or "{AUTO}"')
    return m


def _number(body: Mapping[str, Any], key: str, lo: float, hi: float) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if not is_finite(v) or not lo <= v <= hi:
        raise ContractError(key, f"must be a number in [{lo:g}, {hi:g}], got {v!r}")
    return float(v)


_INT32_MAX = 2 ** 31 - 1   # llama.cpp's token counts are C ints
_UINT64_MAX = 2 ** 64 - 1  # a 64-bit seed at most (llama.cpp keeps its low 32 bits)


def _int(body: Mapping[str, Any], key: str, lo: int, hi: int = _INT32_MAX) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if not is_integer(v) or not lo <= v <= hi:
        shown = repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."
        raise ContractError(key, f"must be an integer in [{lo}, {hi}], got {shown}")
    return v


def _stop(body: Mapping[str, Any]) -> tuple[str, ...]:
    v = body.get("stop")
    if v is None:
        return ()
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or len(v) > 4 or not all(isinstance(s, str) and s for s in v):
        raise ContractError("stop", "must be a non-empty string or a list of up to 4 non-empty strings")
    return tuple(v)


def _stream(body: Mapping[str, Any]) -> tuple[bool, bool]:
    s = body.get("stream", False)
    if s is None:
        s = False
    if not isinstance(s, bool):
        raise ContractError("stream", f"must be true or false, got {s!r}")
    opts = body.get("stream_options")
    include_usage = False
    if opts is not None:
        if not isinstance(opts, dict) or set(opts) - {"include_usage"}:
            raise ContractError("stream_options", 'must be an object with only "include_usage"')
        include_usage = opts.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise ContractError("stream_options.include_usage", "must be true or false")
    return s, include_usage


def _n(body: Mapping[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise ContractError("n", f"only n = 1 is supported, got {n!r}")


def request_headers(headers: Mapping[str, str] | None) -> dict[str, Any]:
    """What a request's headers say about routing (``x-zeta-cost-weight`` ...), checked like the
    ``zeta`` field, plus the client's request id and retry count: RouteOptions keyword arguments."""
    if not headers:
        return {}
    raw: dict[str, Any] = {}
    for header, key in ROUTING_HEADERS.items():
        v = headers.get(header)
        if v is None:
            continue
        if key != "kind":
            try:
                v = float(v)
            except ValueError:
                raise ContractError(header, f"must be a number, got {v[:40]!r}") from None
        raw[key] = v
    try:
        out = check_routing_options(raw, "headers")
    except ContractError as exc:  # name the header the client sent, not the option behind it
        header = next(h for h, k in ROUTING_HEADERS.items() if exc.field == f"headers.{k}")
        raise ContractError(header, exc.problem) from None
    if "timeout_ms" in out:
        out["timeout_s"] = out.pop("timeout_ms") / 1000.0
    for header in REQUEST_ID_HEADERS:
        rid = headers.get(header)
        if rid is not None:
            if not 1 <= len(rid) <= 128:
                raise ContractError(header, "must be 1 to 128 characters")
            out["request_id"] = rid
            break
    retry = headers.get(RETRY_COUNT_HEADER)
    if retry is not None and retry.isdigit() and len(retry) <= 6:
        out["client_retry"] = int(retry)
    return out


def parse_route_options(body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> RouteOptions:
    model = _model(body)
    values = request_headers(headers)
    z = body.get(ZETA_FIELD)
    if z is not None:
        if not isinstance(z, dict):
            raise ContractError(ZETA_FIELD, "must be an object (cost_weight, max_latency_ms, kind, timeout_ms, "
                                            "candidates, conversation)")
        zv = check_routing_options(z, ZETA_FIELD, extra_keys=("conversation",))
        conv = zv.get("conversation")
        if conv is not None and (not isinstance(conv, str) or not 1 <= len(conv) <= 256):
            raise ContractError(f"{ZETA_FIELD}.conversation", "must be a string of 1 to 256 characters")
        if "timeout_ms" in zv:
            zv["timeout_s"] = zv.pop("timeout_ms") / 1000.0
        values.update(zv)  # the body wins over a header
    return RouteOptions(model=model, **values)


def _content(m: Mapping[str, Any], i: int) -> str:
    c = m.get("content")
    if c is None:
        if m.get("role") == "assistant":
            return ""
        raise ContractError(f"messages[{i}].content", "is required")
    if isinstance(c, str):
        return c
    if isinstance(c, list):
        out = []
        for j, part in enumerate(c):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ContractError(f"messages[{i}].content[{j}]", "only text parts are supported")
            out.append(part["text"])
        return "".join(out)
    raise ContractError(f"messages[{i}].content", "must be a string or a list of text parts")


def _message(m: Any, i: int) -> dict[str, Any]:
    if not isinstance(m, dict):
        raise ContractError(f"messages[{i}]", "must be an object with role and content")
    role = m.get("role")
    if role not in _ROLES:
        raise ContractError(f"messages[{i}].role", f"must be one of {sorted(_ROLES)}, got {role!r}")
    allowed = {"role", "content", "name"} | ({"tool_calls", "refusal"} if role == "assistant" else set()) | (
        {"tool_call_id"} if role == "tool" else set())
    extra = set(m) - allowed
    if extra:
        raise ContractError(f"messages[{i}].{sorted(extra)[0]}", f"is not supported in a {role!r} message")
    out: dict[str, Any] = {"role": "system" if role == "developer" else role, "content": _content(m, i)}
    if role == "tool":
        tid = m.get("tool_call_id")
        if not isinstance(tid, str) or not tid:
            raise ContractError(f"messages[{i}].tool_call_id", "is required in a tool message: the id of the call")
        out["tool_call_id"] = tid
    calls = m.get("tool_calls")
    if calls:  # an earlier answer of this server (or another): kept for the chat template to render
        if not isinstance(calls, list):
            raise ContractError(f"messages[{i}].tool_calls", "must be a list of tool calls")
        for j, c in enumerate(calls):
            fn = c.get("function") if isinstance(c, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) \
                    or not isinstance(fn.get("arguments"), str):
                raise ContractError(f"messages[{i}].tool_calls[{j}]",
                                    'must be {"id", "type": "function", "function": {"name", "arguments": "<JSON>"}}')
        out["tool_calls"] = [{"id": c.get("id"), "type": "function", "function": dict(c["function"])} for c in calls]
    return out


def _response_format(body: Mapping[str, Any]) -> tuple[bool, dict | None]:
    """(the output must be JSON, the schema it must follow or None)."""
    rf = body.get("response_format")
    if rf is None:
        return False, None
    kind = rf.get("type") if isinstance(rf, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise ContractError("response_format", 'type must be "text", "json_object" or "json_schema"')
    if kind == "text":
        return False, None
    if kind == "json_object":
        schema = rf.get("schema")  # llama-cpp-python's own extension: json_object with a schema
        if schema is not None and not isinstance(schema, dict):
            raise ContractError("response_format.schema", "must be a JSON schema object")
        return True, schema
    js = rf.get("json_schema")
    if not isinstance(js, dict) or not isinstance(js.get("schema", {}), dict):
        raise ContractError("response_format.json_schema",
                            'must be {"name": ..., "schema": {a JSON schema}} (OpenAI structured outputs)')
    unknown = sorted(set(js) - {"name", "description", "schema", "strict"})
    if unknown:
        raise ContractError(f"response_format.json_schema.{unknown[0]}", "unrecognized field")
    return True, js.get("schema") or {"type": "object"}


def _logit_bias(body: Mapping[str, Any]) -> tuple[tuple[int, float], ...]:
    lb = body.get("logit_bias")
    if lb is None:
        return ()
    if not isinstance(lb, dict) or len(lb) > _MAX_LOGIT_BIAS:
        raise ContractError("logit_bias", f"must be an object of token id -> bias, at most {_MAX_LOGIT_BIAS} entries")
    out = []
    for k, v in lb.items():
        if not (k.isdigit() and len(k) <= 9):
            raise ContractError(f"logit_bias.{k[:20]}", "keys are token ids (non-negative integers)")
        if not is_finite(v) or not -100 <= v <= 100:
            raise ContractError(f"logit_bias.{k}", f"must be a number in [-100, 100], got {v!r}")
        out.append((int(k), float(v)))
    return tuple(out)


def _sampling(body: Mapping[str, Any]) -> dict[str, Any]:
    """The sampling fields common to chat and completions, checked."""
    return dict(
        temperature=_number(body, "temperature", 0.0, 2.0), top_p=_number(body, "top_p", 0.0, 1.0),
        stop=_stop(body), seed=_int(body, "seed", -(2 ** 63), _UINT64_MAX),
        presence_penalty=_number(body, "presence_penalty", -2.0, 2.0),
        frequency_penalty=_number(body, "frequency_penalty", -2.0, 2.0),
        top_k=_int(body, "top_k", 0), min_p=_number(body, "min_p", 0.0, 1.0),
        repeat_penalty=_number(body, "repeat_penalty", 0.0, 10.0), logit_bias=_logit_bias(body))


def parse_chat(body: Any, headers: Mapping[str, str] | None = None) -> tuple[GenerationRequest, RouteOptions,
                                                                              bool, bool]:
    """A chat completions body (and the request's headers) -> (request, routing options, stream,
    include usage in the stream)."""
    body = _obj(body)
    _check_fields(body, {"model", "messages", "response_format", ZETA_FIELD} | _SAMPLING | _TOOL_FIELDS)
    options = parse_route_options(body, headers)
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ContractError("messages", "must be a non-empty list of messages")
    messages = [_message(m, i) for i, m in enumerate(msgs)]
    ptc = body.get("parallel_tool_calls")
    if ptc is not None and not isinstance(ptc, bool):
        raise ContractError("parallel_tool_calls", f"must be true or false, got {ptc!r}")
    tools, choice, forced = parse_tools(body.get("tools"), body.get("tool_choice"))
    json_mode, schema = _response_format(body)
    call_schema = output_schema(tools, choice, forced)
    if call_schema is not None:
        if json_mode:
            raise ContractError("response_format", "a forced tool call is JSON already: send one of the two")
        json_mode, schema = True, call_schema
    _n(body)
    stream, include_usage = _stream(body)
    max_tokens = _int(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", 1)
    req = GenerationRequest(
        mode="chat", messages=tuple(messages), max_tokens=max_tokens, json_mode=json_mode,
        json_schema=None if schema is None else json.dumps(schema, ensure_ascii=False, sort_keys=True),
        tools=tools, tool_choice=choice, tool_name=forced, **_sampling(body))
    return req, options, stream, include_usage


def parse_completion(body: Any, headers: Mapping[str, str] | None = None) -> tuple[GenerationRequest, RouteOptions,
                                                                                    bool, bool]:
    """A (legacy) completions body; ``max_tokens`` defaults to 16 as in the OpenAI API."""
    body = _obj(body)
    _check_fields(body, {"model", "prompt", ZETA_FIELD} | _SAMPLING - {"max_completion_tokens"})
    options = parse_route_options(body, headers)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ContractError("prompt", "must be a string (or a list of one string)")
    _n(body)
    stream, include_usage = _stream(body)
    max_tokens = _int(body, "max_tokens", 1)
    req = GenerationRequest(
        mode="completion", prompt=prompt, max_tokens=16 if max_tokens is None else max_tokens, **_sampling(body))
    return req, options, stream, include_usage


def parse_embeddings(body: Any, headers: Mapping[str, str] | None = None) -> tuple[GenerationRequest,
                                                                                    RouteOptions, str]:
    """An embeddings body -> (request, routing options, encoding format "float" | "base64")."""
    body = _obj(body)
    _check_fields(body, {"model", "input", "encoding_format", ZETA_FIELD})
    options = parse_route_options(body, headers)
    if options.kind not in (None, "embed"):
        raise ContractError(f"{ZETA_FIELD}.kind", "an embeddings request routes among embed-capable models only")
    inp = body.get("input")
    if isinstance(inp, str):
        inp = [inp]
    if not isinstance(inp, list) or not inp or not all(isinstance(s, str) for s in inp):
        raise ContractError("input", "must be a string or a non-empty list of strings (token arrays are not supported)")
    if any(not s for s in inp):
        raise ContractError("input", "must not contain empty strings")
    if len(inp) > 2048:
        raise ContractError("input", f"at most 2048 inputs per request, got {len(inp)}")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise ContractError("encoding_format", f'must be "float" or "base64", got {fmt!r}')
    return GenerationRequest(mode="embed", inputs=tuple(inp)), options, fmt


def parse_feedback(body: Any) -> tuple[str, float, str | None]:
    """A feedback body -> (decision_id, quality, model or None).  ``model`` (optional) is the model
    that answered, from the answer's x-zeta-decision header: it names the label line of a decision
    this process no longer remembers."""
    body = _obj(body)
    unknown = sorted(set(body) - {"decision_id", "quality", "model"})
    if unknown:
        raise ContractError(unknown[0], "unrecognized field (decision_id, quality, model)")
    did, q, model = body.get("decision_id"), body.get("quality"), body.get("model")
    if not isinstance(did, str) or not 1 <= len(did) <= 128:
        raise ContractError("decision_id", "is required: the decision_id of an answer (x-zeta-decision header), "
                                           "1 to 128 characters")
    if not is_finite(q) or not 0.0 <= q <= 1.0:
        raise ContractError("quality", f"must be a number in [0, 1], got {q!r}")
    if model is not None and (not isinstance(model, str) or not 1 <= len(model) <= 128):
        raise ContractError("model", "must be a model name of 1 to 128 characters")
    return did, float(q), model


# -- responses --------------------------------------------------------------------------------------
def usage(c: Completion) -> dict[str, int]:
    p, k = c.prompt_tokens or 0, c.completion_tokens or 0
    return {"prompt_tokens": p, "completion_tokens": k, "total_tokens": p + k}


def chat_response(c: Completion, *, created: int | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": c.text}
    finish = c.finish_reason
    if c.tool_calls:
        message = {"role": "assistant", "content": None, "tool_calls": c.tool_calls}
        finish = "tool_calls"
    return {
        "id": f"chatcmpl-{c.decision_id}", "object": "chat.completion", "created": created or int(time.time()),
        "model": c.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage(c), ZETA_FIELD: c.header(),
    }


def chat_chunk(cid: str, model: str, created: int, *, content: str | None = None, role: bool = False,
               finish_reason: str | None = None, usage_: dict | None = None,
               tool_calls: list | None = None) -> dict[str, Any]:
    if usage_ is not None:
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
                "usage": usage_}
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}


def completion_response(c: Completion, *, created: int | None = None) -> dict[str, Any]:
    return {
        "id": f"cmpl-{c.decision_id}", "object": "text_completion", "created": created or int(time.time()),
        "model": c.model,
        "choices": [{"index": 0, "text": c.text, "finish_reason": c.finish_reason, "logprobs": None}],
        "usage": usage(c), ZETA_FIELD: c.header(),
    }


def completion_chunk(cid: str, model: str, created: int, *, text: str = "", finish_reason: str | None = None,
                     usage_: dict | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": cid, "object": "text_completion", "created": created, "model": model,
                           "choices": [] if usage_ is not None else
                           [{"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}]}
    if usage_ is not None:
        out["usage"] = usage_
    return out


def embeddings_response(c: Completion, encoding_format: str) -> dict[str, Any]:
    data = []
    for i, v in enumerate(c.embeddings or ()):
        if encoding_format == "base64":
            # The OpenAI encoding: little-endian float32, base64; the openai client decodes it itself.
            emb: Any = base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode("ascii")
        else:
            emb = list(v)
        data.append({"object": "embedding", "index": i, "embedding": emb})
    p = c.prompt_tokens or 0
    return {"object": "list", "data": data, "model": c.model,
            "usage": {"prompt_tokens": p, "total_tokens": p}, ZETA_FIELD: c.header()}


_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "invalid_request_error", 413: "invalid_request_error", 415: "invalid_request_error",
                429: "rate_limit_error", 499: "invalid_request_error"}


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The OpenAI error object: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": _ERROR_TYPES.get(status, "server_error"), "param": param,
                      "code": code}}
