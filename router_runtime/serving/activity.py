"""What the dashboard shows that cumulative ``/metrics`` counters cannot: decisions per model per
minute (a bounded ring), and the rule for the cost baseline "always the largest capable model".

The ring holds the last ``DEFAULT_MINUTES`` minutes (two hours) of one dict per minute, keyed by the
model chosen: at most minutes × pool size numbers, whatever the traffic.  A Prometheus server
scraping ``/metrics`` keeps a longer history; the ring is for the operator who has only the service.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable, Sequence

from ..errors import ContractError
from ..router import CandidateScore

__all__ = ["DecisionTimeline", "largest_capable", "DEFAULT_MINUTES"]

DEFAULT_MINUTES = 120


class DecisionTimeline:
    """Counts per model per wall-clock minute, the last ``minutes`` minutes.  Thread-safe."""

    def __init__(self, minutes: int = DEFAULT_MINUTES, *, clock: Callable[[], float] = time.time):
        if not isinstance(minutes, int) or minutes < 1:
            raise ContractError("minutes", f"must be an integer >= 1, got {minutes!r}")
        self.minutes = minutes
        self._clock = clock
        self._lock = threading.Lock()
        self._ring: deque[tuple[int, dict[str, int]]] = deque(maxlen=minutes)  # (minute, model -> n)

    def add(self, model: str) -> None:
        minute = int(self._clock() // 60)
        with self._lock:
            if not self._ring or self._ring[-1][0] != minute:
                self._ring.append((minute, {}))
            counts = self._ring[-1][1]
            counts[model] = counts.get(model, 0) + 1

    def series(self) -> list[dict[str, Any]]:
        """One entry per minute of the window ending now, oldest first, quiet minutes included:
        ``{"minute": <unix seconds of its start>, "counts": {model: n}}``."""
        now = int(self._clock() // 60)
        with self._lock:
            held = {m: dict(c) for m, c in self._ring}
        return [{"minute": m * 60, "counts": held.get(m, {})} for m in range(now - self.minutes + 1, now + 1)]


def largest_capable(scores: Sequence[CandidateScore], size_of: Callable[[str], float | None]) -> CandidateScore | None:
    """The candidate "always send it to the largest model" would have picked: the largest ``size_b``
    among the scored (capable) candidates with a known cost, the dearer on a tie; by cost alone when
    no size is known.  None when no candidate has a cost."""
    priced = [s for s in scores if s.cost is not None]
    if not priced:
        return None

    def key(s: CandidateScore) -> tuple[float, float]:
        size = size_of(s.model)
        return (float("-inf") if size is None else float(size), s.cost)
    return max(priced, key=key)
