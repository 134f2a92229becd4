"""What one client connection may hold: the header read timeout and the connection cap (uvicorn's h11
protocol, extended).

uvicorn (0.54 here) has a keep-alive timeout for idle connections between requests and
``limit_concurrency`` (a 503 for a request that arrives while that many connections or tasks are
open), but nothing bounds how long a client may take to send a request's headers: a connection that
sends half a request line is held for ever, and enough of them use up the process's file descriptors.
So, on top of uvicorn's own settings:

- **header timeout**: a connection whose request line and headers are not complete within
  ``header_timeout_s`` of its opening (or of the previous response) is closed;
- **connection cap**: a connection beyond ``limit_concurrency`` gets uvicorn's 503 at once and is
  closed before it is read, so it holds a descriptor for microseconds, not until a timeout.

The body read timeout is the application's (``http.create_app``'s ``body_timeout_s``): only it knows
when it has read enough.  Imported only when a server is built.
"""

from __future__ import annotations

from typing import Any

__all__ = ["protocol_class", "default_limit_concurrency"]

_DEFAULT_LIMIT = 256     # concurrent connections when the descriptor limit allows it
_FD_RESERVE = 64         # descriptors kept for model files, logs, the registry and Python itself
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
         b"content-length: 36\r\nconnection: close\r\n\r\ntoo many connections: try again later")


def default_limit_concurrency() -> int:
    """The connection cap that fits this process's descriptor limit (``ulimit -n``) with room to spare."""
    try:
        import resource
    except ImportError:  # not a Unix: no descriptor limit to read
        return _DEFAULT_LIMIT
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _DEFAULT_LIMIT
    return max(8, min(_DEFAULT_LIMIT, soft - _FD_RESERVE))


def protocol_class(*, header_timeout_s: float, limit_concurrency: int) -> type:
    """uvicorn's h11 protocol with a header read timeout and a hard connection cap."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class ZetaH11Protocol(H11Protocol):
        _header_timer: Any = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limit_concurrency:
                transport.write(_BUSY)
                transport.close()
                return
            self._arm_header_timer()

        def connection_lost(self, exc) -> None:
            self._disarm_header_timer()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_timer()  # the next request's headers get the same time

        def _arm_header_timer(self) -> None:
            self._disarm_header_timer()
            self._header_timer = self.loop.call_later(header_timeout_s, self._header_timeout)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            # their_state leaves IDLE once the request line and every header are parsed.
            waiting = self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)
            if waiting and not self.transport.is_closing():
                self.transport.close()

    return ZetaH11Protocol
