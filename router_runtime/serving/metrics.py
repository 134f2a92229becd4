"""Counters, gauges and histograms rendered in the Prometheus text exposition format (version 0.0.4).

Standard library only: a serving process should not need ``prometheus_client`` to be scraped.  Every
metric is declared once (name, type, help, and bucket bounds for histograms), so ``/metrics`` lists
it, with its HELP and TYPE lines, before its first sample.  Thread-safe.
"""

from __future__ import annotations

import math
import threading
from typing import Mapping

__all__ = ["Metrics", "DEFAULT_BUCKETS", "CONTENT_TYPE", "histogram_quantile"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Mapping[str, str] | None) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in (labels or {}).items()))


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt_labels(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    items = labels + extra
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _fmt_value(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._meta: dict[str, tuple[str, str, tuple[float, ...]]] = {}   # name -> (type, help, buckets)
        self._values: dict[str, dict[Labels, float]] = {}
        self._hist: dict[str, dict[Labels, list[float]]] = {}             # per bucket counts + sum + count

    def declare(self, name: str, kind: str, help: str, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        if kind not in ("counter", "gauge", "histogram"):
            raise ValueError(f"unknown metric type {kind!r}")
        with self._lock:
            self._meta[name] = (kind, help, tuple(sorted(buckets)))
            self._values.setdefault(name, {})
            self._hist.setdefault(name, {})

    def inc(self, name: str, labels: Mapping[str, str] | None = None, value: float = 1.0) -> None:
        key = _labels(labels)
        with self._lock:
            d = self._values[name]
            d[key] = d.get(key, 0.0) + value

    def set(self, name: str, labels: Mapping[str, str] | None = None, value: float = 0.0) -> None:
        with self._lock:
            self._values[name][_labels(labels)] = float(value)

    def replace_gauge(self, name: str, samples: Mapping[Labels, float]) -> None:
        """Replace every sample of a gauge at once (a gauge whose label set changes, like loaded models)."""
        with self._lock:
            self._values[name] = dict(samples)

    def observe(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        key = _labels(labels)
        with self._lock:
            buckets = self._meta[name][2]
            h = self._hist[name].get(key)
            if h is None:
                h = self._hist[name][key] = [0.0] * (len(buckets) + 2)
            for i, b in enumerate(buckets):
                if value <= b:
                    h[i] += 1
            h[-2] += value
            h[-1] += 1

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        with self._lock:
            if self._meta[name][0] == "histogram":
                h = self._hist[name].get(_labels(labels))
                return h[-1] if h else 0.0
            return self._values[name].get(_labels(labels), 0.0)

    def samples(self, name: str) -> dict[Labels, float]:
        """Every sample of a counter or gauge: sorted (label, value) pairs -> value."""
        with self._lock:
            return dict(self._values[name])

    def histogram(self, name: str) -> tuple[tuple[float, ...], dict[Labels, tuple[float, ...]]]:
        """(bucket upper bounds, labels -> cumulative counts per bound then +Inf) of a histogram."""
        with self._lock:
            return self._meta[name][2], {k: tuple(h[:-2]) + (h[-1],) for k, h in self._hist[name].items()}

    def render(self) -> str:
        out: list[str] = []
        with self._lock:
            for name, (kind, help, buckets) in self._meta.items():
                out.append(f"# HELP {name} {help}")
                out.append(f"# TYPE {name} {kind}")
                if kind == "histogram":
                    for labels, h in sorted(self._hist[name].items()):
                        for i, b in enumerate(buckets):
                            out.append(f"{name}_bucket{_fmt_labels(labels, (('le', _fmt_value(b)),))} {_fmt_value(h[i])}")
                        out.append(f"{name}_bucket{_fmt_labels(labels, (('le', '+Inf'),))} {_fmt_value(h[-1])}")
                        out.append(f"{name}_sum{_fmt_labels(labels)} {_fmt_value(h[-2])}")
                        out.append(f"{name}_count{_fmt_labels(labels)} {_fmt_value(h[-1])}")
                else:
                    for labels, v in sorted(self._values[name].items()):
                        out.append(f"{name}{_fmt_labels(labels)} {_fmt_value(v)}")
        return "\n".join(out) + "\n"


def histogram_quantile(q: float, bounds: tuple[float, ...], cumulative: tuple[float, ...]) -> float | None:
    """The ``q`` quantile of a histogram as Prometheus' ``histogram_quantile`` estimates it: linear
    within the bucket holding rank ``q * count`` (the first bucket starts at 0); the highest finite
    bound when that rank falls in +Inf.  ``cumulative`` has one count per bound, then the total.
    None for an empty histogram."""
    total = cumulative[-1] if cumulative else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, cumulative):
        if count >= rank:
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return bounds[-1] if bounds else None
