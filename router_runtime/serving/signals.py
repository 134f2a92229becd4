"""Implicit quality signals: what the answer itself says about its quality, before anyone grades it.

``detect`` names the signals of one answer (truncated, empty, invalid_json); ``outcome_fields`` turns
them into the OutcomeRecord v1 fields (success, error, quality, quality_source) as the table in
``router_runtime.serving.service`` documents.  A truncated answer is usable: its error names the
signal and its quality stays unknown; an empty or invalid one is a failed check with quality 0.
``attempt_cost`` is the cost field of one attempt (the service's records and shadow replay's).
"""

from __future__ import annotations

import json

from ..pool import ModelInfo
from .backends import GenerationRequest

__all__ = ["SIGNAL_TEXT", "detect", "outcome_fields", "attempt_cost"]

SIGNAL_TEXT = {"empty": "empty answer", "invalid_json": "invalid JSON",
               "truncated": "truncated at max_tokens"}


def detect(request: GenerationRequest, text: str, finish_reason: str) -> tuple[tuple[str, ...], str | None]:
    """The signals of an answer and, for invalid JSON, where the parser stopped."""
    if request.mode == "embed":
        return (), None
    out = []
    json_error = None
    if finish_reason == "length":
        out.append("truncated")
    if not text.strip():
        out.append("empty")
    elif request.json_mode:
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            out.append("invalid_json")
            json_error = f"{exc.msg} at char {exc.pos}"
    return tuple(out), json_error


def outcome_fields(signals: tuple[str, ...], json_error: str | None,
                   max_tokens: int | None) -> tuple[bool, str | None, float | None, str | None]:
    """(success, error, quality, quality_source) of an answer with these signals."""
    bad = [s for s in signals if s != "truncated"]
    notes = [f"invalid JSON: {json_error}" if s == "invalid_json" else SIGNAL_TEXT[s] for s in signals]
    if "truncated" in signals and max_tokens is None:  # no limit asked: the context ran out
        notes[signals.index("truncated")] = "truncated at the end of the context"
    if bad:
        return False, "; ".join(notes), 0.0, "check"
    return True, "; ".join(notes) or None, None, None


def attempt_cost(model: ModelInfo, latency_ms: float, chars: int, loaded: bool, *,
                 in_ms: bool | None = None) -> float:
    """The logged cost of one call: its measured wall time when the model's cost is the local cost
    model's milliseconds (a load is then in the time), else the pool's expected cost for ``chars``
    query characters, plus ``load_cost`` when this call ``loaded`` the model.  ``in_ms``: the
    caller's cached ``model.cost_in_ms``."""
    if model.cost_in_ms if in_ms is None else in_ms:
        return latency_ms
    cost = model.expected_cost(chars)
    if loaded and model.load_cost:
        cost += model.load_cost
    return cost
