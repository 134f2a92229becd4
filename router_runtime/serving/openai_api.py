"""The OpenAI wire format: request bodies validated into ``GenerationRequest`` + ``RouteOptions``, and
answers turned into response, chunk and error objects.  Pure standard library, so it is tested
without any HTTP stack; ``server.py`` only moves bytes.

Validation follows the OpenAI API: an unknown field is refused ("Unrecognized request argument"),
and so is a known one this server cannot honour (tools, logprobs, n > 1, ...) rather than being
silently ignored; every refusal is a ``ContractError`` naming the field, which the server answers
with HTTP 400 and an OpenAI error object whose ``param`` is that field.

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
"""

from __future__ import annotations

import base64
import struct
import time
from typing import Any, Mapping

from .._checks import is_finite, is_integer, unicode_text
from .backends import GenerationRequest
from ..errors import ContractError
from ..policy import check_cost_weight
from .completion import AUTO, Completion, RouteOptions

__all__ = ["parse_chat", "parse_completion", "parse_embeddings", "parse_feedback", "chat_response",
           "chat_chunk", "completion_response", "completion_chunk", "embeddings_response", "error_body",
           "usage", "ZETA_FIELD"]

ZETA_FIELD = "zeta"
_IGNORED = {"user", "metadata", "store", "service_tier"}        # accepted, no effect on a local model
_NOT_SUPPORTED = {"tools", "tool_choice", "functions", "function_call", "logprobs", "top_logprobs", "logit_bias",
                  "audio", "modalities", "prediction", "reasoning_effort", "parallel_tool_calls",
                  "web_search_options", "echo", "best_of", "suffix", "dimensions"}
_SAMPLING = {"max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed", "presence_penalty",
             "frequency_penalty", "n", "stream", "stream_options"}
_ROLES = {"system", "developer", "user", "assistant"}


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


def parse_route_options(body: Mapping[str, Any]) -> RouteOptions:
    model = _model(body)
    z = body.get(ZETA_FIELD)
    if z is None:
        return RouteOptions(model=model)
    if not isinstance(z, dict):
        raise ContractError(ZETA_FIELD, "must be an object (cost_weight, max_latency_ms, kind, timeout_ms, candidates)")
    unknown = sorted(set(z) - {"cost_weight", "max_latency_ms", "kind", "timeout_ms", "candidates", "conversation"})
    if unknown:
        raise ContractError(f"{ZETA_FIELD}.{unknown[0]}", "unknown routing option (cost_weight, max_latency_ms, "
                                                           "kind, timeout_ms, candidates, conversation)")
    conv = z.get("conversation")
    if conv is not None and (not isinstance(conv, str) or not 1 <= len(conv) <= 256):
        raise ContractError(f"{ZETA_FIELD}.conversation", "must be a string of 1 to 256 characters")
    cw = z.get("cost_weight")
    if cw is not None:
        check_cost_weight(cw, f"{ZETA_FIELD}.cost_weight")
    lat, tmo = z.get("max_latency_ms"), z.get("timeout_ms")
    for key, v in (("max_latency_ms", lat), ("timeout_ms", tmo)):
        if v is not None and (not is_finite(v)
                              or v <= 0):
            raise ContractError(f"{ZETA_FIELD}.{key}", f"must be a positive number, got {v!r}")
    kind = z.get("kind")
    if kind is not None and (not isinstance(kind, str) or not kind):
        raise ContractError(f"{ZETA_FIELD}.kind", f"must be a non-empty string, got {kind!r}")
    cands = z.get("candidates")
    if cands is not None:
        if not isinstance(cands, list) or not cands or not all(isinstance(c, str) and c for c in cands):
            raise ContractError(f"{ZETA_FIELD}.candidates", "must be a non-empty list of model names")
        cands = tuple(cands)
    return RouteOptions(model=model, kind=kind, cost_weight=None if cw is None else float(cw),
                        max_latency_ms=None if lat is None else float(lat),
                        timeout_s=None if tmo is None else float(tmo) / 1000.0, candidates=cands, conversation=conv)


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


def parse_chat(body: Any) -> tuple[GenerationRequest, RouteOptions, bool, bool]:
    """A chat completions body -> (request, routing options, stream, include usage in the stream)."""
    body = _obj(body)
    _check_fields(body, {"model", "messages", "response_format", ZETA_FIELD} | _SAMPLING)
    options = parse_route_options(body)
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ContractError("messages", "must be a non-empty list of messages")
    messages = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise ContractError(f"messages[{i}]", "must be an object with role and content")
        role = m.get("role")
        if role not in _ROLES:
            raise ContractError(f"messages[{i}].role", f"must be one of {sorted(_ROLES)}, got {role!r}")
        extra = set(m) - {"role", "content", "name"}
        if extra:
            raise ContractError(f"messages[{i}].{sorted(extra)[0]}", "is not supported (text messages only)")
        messages.append({"role": "system" if role == "developer" else role, "content": _content(m, i)})
    rf = body.get("response_format")
    json_mode = False
    if rf is not None:
        if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object"):
            raise ContractError("response_format", 'type must be "text" or "json_object" (json_schema is not supported)')
        json_mode = rf["type"] == "json_object"
    _n(body)
    stream, include_usage = _stream(body)
    max_tokens = _int(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", 1)
    req = GenerationRequest(
        mode="chat", messages=tuple(messages), max_tokens=max_tokens,
        temperature=_number(body, "temperature", 0.0, 2.0), top_p=_number(body, "top_p", 0.0, 1.0),
        stop=_stop(body), seed=_int(body, "seed", -(2 ** 63), _UINT64_MAX),
        presence_penalty=_number(body, "presence_penalty", -2.0, 2.0),
        frequency_penalty=_number(body, "frequency_penalty", -2.0, 2.0), json_mode=json_mode)
    return req, options, stream, include_usage


def parse_completion(body: Any) -> tuple[GenerationRequest, RouteOptions, bool, bool]:
    """A (legacy) completions body; ``max_tokens`` defaults to 16 as in the OpenAI API."""
    body = _obj(body)
    _check_fields(body, {"model", "prompt", ZETA_FIELD} | _SAMPLING - {"max_completion_tokens"})
    options = parse_route_options(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ContractError("prompt", "must be a string (or a list of one string)")
    _n(body)
    stream, include_usage = _stream(body)
    max_tokens = _int(body, "max_tokens", 1)
    req = GenerationRequest(
        mode="completion", prompt=prompt, max_tokens=16 if max_tokens is None else max_tokens,
        temperature=_number(body, "temperature", 0.0, 2.0), top_p=_number(body, "top_p", 0.0, 1.0),
        stop=_stop(body), seed=_int(body, "seed", -(2 ** 63), _UINT64_MAX),
        presence_penalty=_number(body, "presence_penalty", -2.0, 2.0),
        frequency_penalty=_number(body, "frequency_penalty", -2.0, 2.0))
    return req, options, stream, include_usage


def parse_embeddings(body: Any) -> tuple[GenerationRequest, RouteOptions, str]:
    """An embeddings body -> (request, routing options, encoding format "float" | "base64")."""
    body = _obj(body)
    _check_fields(body, {"model", "input", "encoding_format", ZETA_FIELD})
    options = parse_route_options(body)
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


def parse_feedback(body: Any) -> tuple[str, float]:
    body = _obj(body)
    unknown = sorted(set(body) - {"decision_id", "quality"})
    if unknown:
        raise ContractError(unknown[0], "unrecognized field (decision_id, quality)")
    did, q = body.get("decision_id"), body.get("quality")
    if not isinstance(did, str) or not did:
        raise ContractError("decision_id", "is required: the decision_id of an answer (x-zeta-decision header)")
    if not is_finite(q) or not 0.0 <= q <= 1.0:
        raise ContractError("quality", f"must be a number in [0, 1], got {q!r}")
    return did, float(q)


# -- responses --------------------------------------------------------------------------------------
def usage(c: Completion) -> dict[str, int]:
    p, k = c.prompt_tokens or 0, c.completion_tokens or 0
    return {"prompt_tokens": p, "completion_tokens": k, "total_tokens": p + k}


def chat_response(c: Completion, *, created: int | None = None) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{c.decision_id}", "object": "chat.completion", "created": created or int(time.time()),
        "model": c.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text},
                     "finish_reason": c.finish_reason, "logprobs": None}],
        "usage": usage(c), ZETA_FIELD: c.header(),
    }


def chat_chunk(cid: str, model: str, created: int, *, content: str | None = None, role: bool = False,
               finish_reason: str | None = None, usage_: dict | None = None) -> dict[str, Any]:
    if usage_ is not None:
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
                "usage": usage_}
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
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
