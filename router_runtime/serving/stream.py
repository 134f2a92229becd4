"""``CompletionStream``: one streamed answer, iterated token by token, cancellable from any thread."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ..errors import ServingError
from ..router import Decision
from .backends import GenerationRequest, TextDelta
from .completion import Completion, RouteOptions, decision_header

if TYPE_CHECKING:
    from .service import RoutingService

__all__ = ["CompletionStream"]


class CompletionStream:
    """Iterate for ``TextDelta`` events; ``result`` holds the Completion when the stream is exhausted.

    ``model``, ``decision`` and ``header()`` describe the attempt under way: once the first event has
    arrived they are final (fallback happens only before it).  ``cancel()`` may be called from any
    thread (a client that went away): generation stops at the next token, the instance is released and
    the outcome is recorded as cancelled.  ``close()`` does the same from the consuming thread.
    """

    def __init__(self, service: RoutingService, request: GenerationRequest, options: RouteOptions):
        self._cancel = threading.Event()
        self._state: dict[str, Any] = {}
        self._gen = service._serve(request, options, streaming=True, cancel=self._cancel, state=self._state)
        self.result: Completion | None = None

    def __iter__(self) -> "CompletionStream":
        return self

    def __next__(self) -> TextDelta:
        if self.result is not None:
            raise StopIteration
        try:
            return next(self._gen)
        except StopIteration as stop:
            self.result = stop.value
            raise StopIteration from None

    @property
    def decision(self) -> Decision | None:
        return self._state.get("decision")

    @property
    def model(self) -> str | None:
        return self.result.model if self.result is not None else self._state.get("model")

    @property
    def decision_id(self) -> str | None:
        return self.result.decision_id if self.result is not None else self._state.get("decision_id")

    def header(self) -> dict[str, Any]:
        if self.result is not None:
            return self.result.header()
        return decision_header(self._state["decision"], model=self._state["model"],
                               decision_id=self._state["decision_id"], requested=self._state["requested"],
                               attempts=self._state.get("attempts", ()), retry_of=self._state.get("retry_of"))

    def cancel(self) -> None:
        self._cancel.set()

    def close(self) -> None:
        """Stop generating now (from the consuming thread); the attempt is recorded as cancelled."""
        self._cancel.set()
        if self.result is None:
            try:
                next(self._gen)   # lets the attempt see the cancel flag and record it
            except (StopIteration, ServingError):
                pass
            except Exception:
                pass
            self._gen.close()
