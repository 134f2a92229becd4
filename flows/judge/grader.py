"""Asking the judge model: one verdict with one retry, and the pairwise comparison in both orders.

The judge is any ``router_runtime`` Backend (``LlamaBackend`` in production, ``FunctionBackend`` in
tests) and one model of its pool.  Every request is greedy (temperature 0, a fixed seed) and carries
the rubric's GBNF grammar, so llama.cpp can only produce a verdict of the rubric's form.

A verdict takes at most two attempts: the second follows an unusable reply (shown back to the judge
with a reminder of the format) or a backend error (the same request again); a prompt that does not fit
the judge's context is not retried (the texts are already capped to it: ``rubric.text_caps``).  After that the verdict
is a failure holding the raw text and the error; it never becomes a quality.

Pairwise: the two answers are shown as A and B, then again as B and A.  The comparison has a result
only when both orders agree on the same answer, or both say tie; answers whose orders disagree (a
position-biased or indifferent judge) get ``inconsistent`` and no label.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from router_runtime.errors import ContextOverflowError
from router_runtime.pool import ModelInfo
from router_runtime.serving.backends import Backend, GenerationRequest, TextDelta

from .rubric import (JUDGE_MAX_TOKENS, PAIRWISE, SINGLE, JudgeOutputError, Rubric, pairwise_messages, parse_score,
                     parse_winner, retry_messages, single_messages, text_caps)

__all__ = ["Verdict", "PairVerdict", "Judge", "JUDGE_TIMEOUT_S", "ATTEMPTS"]

JUDGE_TIMEOUT_S = 600.0  # how long a verdict may wait for a free instance of the judge model
ATTEMPTS = 2             # the first try and the one retry


@dataclass
class Verdict:
    ok: bool
    value: Any = None                       # the score (single) or "A"/"B"/"tie" (pairwise)
    raw: str = ""                           # the judge's last reply
    error: str | None = None                # why the last attempt failed
    attempts: int = 0
    crashed: bool = False                   # the last attempt failed in the backend, not in parsing
    raws: list[str] = field(default_factory=list)  # every reply, in order


@dataclass
class PairVerdict:
    outcome: str                            # "x" | "y" | "tie" | "inconsistent" | "failed"
    first: Verdict                          # x shown as A
    second: Verdict | None                  # y shown as A (None when the first failed)

    @property
    def raw(self) -> list[str]:
        return [self.first.raw] + ([self.second.raw] if self.second is not None else [])

    @property
    def error(self) -> str | None:
        failed = self.first if not self.first.ok else self.second
        return failed.error if failed is not None and not failed.ok else None

    @property
    def crashed(self) -> bool:
        return self.first.crashed or (self.second is not None and self.second.crashed)


class Judge:
    """A judge model behind a backend.  ``seed`` is passed with every request (greedy decoding makes
    it matter only for backends that sample anyway)."""

    def __init__(self, backend: Backend, model: ModelInfo, *, seed: int = 0, timeout_s: float = JUDGE_TIMEOUT_S):
        self.backend = backend
        self.model = model
        self.seed = seed
        self.timeout_s = timeout_s
        window = getattr(backend, "context_window", None)
        context = window(model) if window is not None else model.context_length
        self.caps = {r.version: text_caps(r, context) for r in (SINGLE, PAIRWISE)}

    @property
    def name(self) -> str:
        return self.model.name

    def _reply(self, rubric: Rubric, messages: tuple[dict[str, str], ...]) -> str:
        request = GenerationRequest("chat", messages=messages, max_tokens=JUDGE_MAX_TOKENS, temperature=0.0,
                                    seed=self.seed, grammar=rubric.grammar,
                                    deadline=time.monotonic() + self.timeout_s)
        return "".join(e.text for e in self.backend.generate(self.model, request) if isinstance(e, TextDelta))

    def ask(self, rubric: Rubric, messages: tuple[dict[str, str], ...], parse: Callable[[str], Any]) -> Verdict:
        v = Verdict(ok=False)
        for _ in range(ATTEMPTS):
            v.attempts += 1
            try:
                raw = self._reply(rubric, messages)
            except ContextOverflowError as exc:  # the same prompt will not fit the second time either
                v.raw, v.error = "", f"the prompt does not fit the judge's context: {exc}"
                v.raws.append("")
                return v
            except Exception as exc:  # a backend's failure, whatever its type, is this verdict's failure
                v.raw, v.error, v.crashed = "", f"judge backend failed: {type(exc).__name__}: {exc}", True
                v.raws.append("")
                continue
            v.raw, v.crashed = raw, False
            v.raws.append(raw)
            try:
                v.value = parse(raw)
            except JudgeOutputError as exc:
                v.error = f"unusable reply: {exc}"
                messages = retry_messages(messages, raw, rubric)
                continue
            v.ok, v.error = True, None
            return v
        return v

    def grade(self, query: str, answer: str) -> Verdict:
        """A 1..5 score of one answer (``rubric.SINGLE``)."""
        return self.ask(SINGLE, single_messages(query, answer, caps=self.caps[SINGLE.version]), parse_score)

    def compare(self, query: str, x: str, y: str) -> PairVerdict:
        """Which of two answers is better, asked in both orders (``rubric.PAIRWISE``)."""
        caps = self.caps[PAIRWISE.version]
        first = self.ask(PAIRWISE, pairwise_messages(query, x, y, caps=caps), parse_winner)
        if not first.ok:
            return PairVerdict("failed", first, None)
        second = self.ask(PAIRWISE, pairwise_messages(query, y, x, caps=caps), parse_winner)
        if not second.ok:
            return PairVerdict("failed", first, second)
        as_xy = {"A": "x", "B": "y", "tie": "tie"}[first.value]
        as_yx = {"A": "y", "B": "x", "tie": "tie"}[second.value]
        return PairVerdict(as_xy if as_xy == as_yx else "inconsistent", first, second)
