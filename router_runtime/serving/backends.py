"""What the serving layer asks of a model runtime: one method, ``generate``, and a function-backed fake.

A backend turns one ``GenerationRequest`` for one pool model into a stream of events: zero or more
``TextDelta`` (generated text, in order) and exactly one final ``Finished`` (why it stopped, token
counts, the embedding vectors of an embed request).  The serving layer (``serving.RoutingService``)
routes, applies deadlines, falls back and records; a backend only runs models.

The contract, in full:

- ``generate(model, request)`` returns an iterator.  Work may start lazily on the first ``next``.
- Failures are raised from the iterator as ``BackendError`` (or a subclass): ``BackendTimeoutError``
  when no instance of the model frees up before ``request.deadline``, ``ContextOverflowError`` when the
  prompt does not fit.  Any other exception is treated as a ``BackendError`` by the caller.
- The caller may stop early (``close()`` on the iterator, e.g. a client that went away): a backend
  releases what it holds in a ``finally``, so one abandoned stream never blocks a model.
- Iterators may be consumed on any thread, but each one on one thread at a time.

Optional methods a backend may add (``BackendBase`` gives harmless defaults): ``loaded_models(mode)``
for the load penalty, ``count_tokens(model, text)`` and ``context_window(model)`` for exact context
fit, ``memory_problem(model)`` (why a model can never load under the backend's memory budget),
``status()`` for ``/health``, ``unavailable_models()`` for models that cannot serve until their
file changes (a ``ModelUnavailableError`` put them there), ``close()``.

``FunctionBackend`` wraps a plain function ``fn(model, request)`` (return a string, an iterable of
strings and events, or a list of vectors for an embed request; raise to fail): the fake that unit tests
of the serving logic use.  Integration tests use the real ``llama_backend.LlamaBackend``.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, runtime_checkable

from ..errors import BackendError
from ..pool import ModelInfo

__all__ = ["Backend", "BackendBase", "FunctionBackend", "GenerationRequest", "TextDelta", "Finished",
           "Event", "MODES", "request_text"]

MODES = ("chat", "completion", "embed")


@dataclass(frozen=True)
class GenerationRequest:
    """One request to a model, already validated.  ``mode`` is chat (``messages``), completion
    (``prompt``) or embed (``inputs``); sampling fields left None take the backend's defaults.

    Tool calls (``router_runtime.serving.tools``): with ``tool_choice`` "function" or "required" the
    output is constrained by ``json_schema`` (the function's parameters, or a choice of {name,
    arguments}) and the serving layer turns the text into the answer's tool call; with "auto" the
    tools are only shown to the model, through its chat template."""

    mode: str
    messages: tuple[Mapping[str, Any], ...] = ()
    prompt: str | None = None
    inputs: tuple[str, ...] = ()
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    json_mode: bool = False                  # the output must be JSON (json_object, json_schema, a tool call)
    grammar: str | None = None               # a GBNF grammar the output must match (llama.cpp's format)
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()   # (token id, bias) pairs, llama.cpp's vocabulary
    json_schema: str | None = None           # JSON text of the schema the output must follow (grammar-constrained)
    tools: tuple[Mapping[str, Any], ...] = ()  # OpenAI tool definitions, rendered by the chat template
    tool_choice: str = "auto"                # auto | none | required | function (then ``tool_name``)
    tool_name: str | None = None             # the function a forced tool choice names
    deadline: float | None = field(default=None, compare=False)  # time.monotonic() limit, if any

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.grammar is not None and (self.json_mode or self.mode == "embed"):
            raise ValueError("grammar constrains generated text: not with json_mode or an embed request")


@dataclass(frozen=True)
class TextDelta:
    """A piece of generated text (usually one token's worth)."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The last event of every successful generation."""

    finish_reason: str = "stop"              # "stop" | "length" (hit max_tokens or the context end)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    embeddings: tuple[tuple[float, ...], ...] | None = None
    load_ms: float | None = None             # time this call spent loading the model, when it did


Event = TextDelta | Finished


@runtime_checkable
class Backend(Protocol):
    def generate(self, model: ModelInfo, request: GenerationRequest) -> Iterator[Event]: ...


class BackendBase:
    """Defaults for the optional methods: every model counts as loaded (no load penalty), token counts
    are unknown (the router's 4-chars-a-token estimate decides context fit), nothing to report."""

    def generate(self, model: ModelInfo, request: GenerationRequest) -> Iterator[Event]:
        raise NotImplementedError

    def loaded_models(self, mode: str) -> frozenset[str] | None:
        """Names of the models ready to serve ``mode`` without loading; None = all (no load penalty)."""
        return None

    def count_tokens(self, model: ModelInfo, text: str) -> int | None:
        return None

    def context_window(self, model: ModelInfo) -> int | None:
        return model.context_length

    def memory_problem(self, model: ModelInfo) -> str | None:
        """Why ``model`` can never be loaded within this backend's memory budget, or None."""
        return None

    def status(self) -> dict[str, Any]:
        return {}

    def unavailable_models(self) -> dict[str, str]:
        """Models out of the pool until their file changes (name -> why); see ModelUnavailableError."""
        return {}

    def close(self) -> None:
        pass


class FunctionBackend(BackendBase):
    """A backend from a function: the fake for unit tests of the serving logic.

    ``fn(model, request)`` returns a string (the whole answer), an iterable of strings and/or events
    (streamed; a ``Finished`` in it overrides the computed one), or, for an embed request, a list of
    vectors.  Raising fails the call.  Token counts are whitespace-separated words.  ``loaded`` (a set
    of model names, mutable, or None) makes the fake report load state; ``calls`` records every
    (model name, request) pair, and the number of iterators still open is in ``open_streams``.
    """

    def __init__(self, fn: Callable[[ModelInfo, GenerationRequest], Any], *, loaded: set[str] | None = None,
                 token_counter: Callable[[str], int] | None = None):
        self.fn = fn
        self.loaded = loaded
        self.token_counter = token_counter
        self.calls: list[tuple[str, GenerationRequest]] = []
        self.open_streams = 0
        self._lock = threading.Lock()

    def loaded_models(self, mode: str) -> frozenset[str] | None:
        return None if self.loaded is None else frozenset(self.loaded)

    def count_tokens(self, model: ModelInfo, text: str) -> int | None:
        return None if self.token_counter is None else self.token_counter(text)

    def generate(self, model: ModelInfo, request: GenerationRequest) -> Iterator[Event]:
        with self._lock:
            self.calls.append((model.name, request))
        return self._run(model, request)

    def _run(self, model: ModelInfo, request: GenerationRequest) -> Iterator[Event]:
        with self._lock:
            self.open_streams += 1
        try:
            out = self.fn(model, request)
            load_ms = None
            if self.loaded is not None and model.name not in self.loaded:
                self.loaded.add(model.name)
                load_ms = model.load_ms or 0.0
            prompt_tokens = _words(_prompt_text(request))
            if request.mode == "embed":
                vectors = tuple(tuple(float(x) for x in v) for v in out)
                if len(vectors) != len(request.inputs) or not all(all(map(math.isfinite, v)) for v in vectors):
                    raise BackendError(model.name, "the fake returned malformed embeddings")
                yield Finished("stop", prompt_tokens, 0, vectors, load_ms)
                return
            pieces: Iterable[Any] = [out] if isinstance(out, str) else out
            text, final = [], None
            for p in pieces:
                if isinstance(p, Finished):
                    final = p
                elif isinstance(p, TextDelta):
                    text.append(p.text)
                    yield p
                elif isinstance(p, str):
                    if p:
                        text.append(p)
                        yield TextDelta(p)
                else:
                    raise TypeError(f"fake backend produced {type(p).__name__}")
            yield final or Finished("stop", prompt_tokens, _words("".join(text)), None, load_ms)
        finally:
            with self._lock:
                self.open_streams -= 1


def _words(text: str) -> int:
    return len(text.split())


def _prompt_text(request: GenerationRequest) -> str:
    if request.mode == "chat":
        return "\n".join(str(m.get("content", "")) for m in request.messages)
    if request.mode == "completion":
        return request.prompt or ""
    return "\n".join(request.inputs)


def request_text(request: GenerationRequest) -> str:
    """Everything the model will read, as one text (a chat's messages joined by newlines).  The
    decision reads the routed text instead (``router_runtime.routed_text``)."""
    return _prompt_text(request)
