"""The routed-text contract: what text a decision reads from a request, and what it knows of the rest.

A chat request is a conversation; the model reads all of it, but the question to route is the last
user turn.  Routing on the whole transcript made one question's decision depend on a system prompt
or on an old code turn ("What is the capital of France?" scored 0.463 alone, 0.000 after a 1.4 K
system prompt), and past ``max_chars`` of history every new question looked the same.  Training data
(benchmark queries) is one user turn each, so routing on the last user turn also makes training and
serving see the same kind of text.

**Version 1** (``ROUTED_TEXT_VERSION``), carried inside the artifact's feature spec as
``"routed_text": {"version": 1, "source": ...}``:

``source = "last_user_turn"`` (the default of new specs)
    ``text`` is the content of the last message whose role is ``user``; a conversation with no user
    message routes on the whole conversation.
``source = "conversation"``
    ``text`` is every message's content joined with ``"\\n"``, system prompt first: what the runtime
    read before this contract.  A feature spec written before the contract (no ``routed_text`` key)
    means this source, so an old artifact decides exactly as it did.

Conversation features, the same for both sources (lengths in code points, after ``text.as_text``):

=============  ======================================================================================
turns          number of messages with role ``user``
system_chars   total length of the system (and developer) messages' contents
history_code   1 when a message before the routed user turn (any role) holds code: one of
               ``CODE_CUES`` occurs in its ASCII-lower-cased content (``has_code``)
context_chars  length of the whole conversation text (the "conversation" source's text): what the
               model reads, used for the context-fit check, expected cost and latency, and logged in
               the OutcomeRecord field ``context_chars``
=============  ======================================================================================

A completion prompt or an embedding input is its own routed text (turns 1, no system prompt).
The pipeline computes the same features with Polars (``flows/routed_text.py``); the parity tests in
``tests/runtime/test_routed_text.py`` hold both to identical values.

**Kind inference** (``infer_kind``) reads the routed text when the client names no kind: a code cue
means ``code``, a reasoning cue ``reason``, anything else ``chat``.  The
cues are literals matched on ASCII-lower-cased text, for the same engine-parity reasons as the
feature ops (``router_runtime/features.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .errors import ContractError, SchemaVersionError
from .text import as_text, ascii_lower

__all__ = ["ROUTED_TEXT_VERSION", "SOURCES", "DEFAULT_SOURCE", "LEGACY_SOURCE", "CODE_CUES", "REASON_CUES",
           "RoutedText", "routed_text", "from_text", "has_code", "infer_kind", "source_to_json",
           "source_from_json"]

ROUTED_TEXT_VERSION = 1
SOURCES = ("last_user_turn", "conversation")
DEFAULT_SOURCE = "last_user_turn"
LEGACY_SOURCE = "conversation"  # what a spec without a routed_text entry means

# Literal cues, lower-case ASCII.  One list each: the rule fallback, kind inference and
# history_code all read these.
CODE_CUES = ("```", "def ", "class ", "import ", "function", "#include", "public static", "console.log",
             "write a program", "write code", "python", "javascript", "sql")
REASON_CUES = ("step by step", "step-by-step", "prove that", "proof", "derive", "puzzle", "riddle",
               "think carefully", "reason about", "solve for", "equation")


@dataclass(frozen=True)
class RoutedText:
    """What a decision reads (``text``) and what it knows of the conversation around it."""

    text: str
    turns: int = 1
    system_chars: int = 0
    history_code: bool = False
    context_chars: int | None = None   # None: the routed text is everything the model reads

    @property
    def total_chars(self) -> int:
        return len(self.text) if self.context_chars is None else self.context_chars

    def features(self) -> dict[str, float]:
        """The conversation features as floats, in the order of the table above."""
        return {"turns": float(self.turns), "system_chars": float(self.system_chars),
                "history_code": 1.0 if self.history_code else 0.0, "context_chars": float(self.total_chars)}


def has_code(text: str) -> bool:
    """True when one of ``CODE_CUES`` occurs in the ASCII-lower-cased text."""
    low = ascii_lower(text)
    return any(c in low for c in CODE_CUES)


def _first_cue(low: str, cues: Sequence[str]) -> str | None:
    return next((c for c in cues if c in low), None)


def infer_kind(text: str | None) -> tuple[str, str]:
    """(kind, why) from the routed text: code cues first, then reasoning cues, else chat.  Earlier
    turns do not count: a plain question after a code turn is a plain question."""
    low = ascii_lower(text or "")
    cue = _first_cue(low, CODE_CUES)
    if cue is not None:
        return "code", f"code cue {cue.strip()!r}"
    cue = _first_cue(low, REASON_CUES)
    if cue is not None:
        return "reason", f"reasoning cue {cue!r}"
    return "chat", "no code or reasoning cue"


def from_text(text: str | None) -> RoutedText:
    """A prompt or an embedding input: its own routed text."""
    t = as_text(text) or ""
    return RoutedText(t, 1, 0, False, len(t))


def routed_text(messages: Sequence[Mapping[str, Any]], source: str = DEFAULT_SOURCE) -> RoutedText:
    """The routed text of a chat conversation (messages with ``role`` and string ``content``)."""
    if source not in SOURCES:
        raise ContractError("routed_text.source", f"must be one of {list(SOURCES)}, got {source!r}")
    contents = [as_text(str(m.get("content") or "")) or "" for m in messages]
    roles = [m.get("role") for m in messages]
    whole = "\n".join(contents)
    last = max((i for i, r in enumerate(roles) if r == "user"), default=None)
    system = sum(len(c) for c, r in zip(contents, roles) if r in ("system", "developer"))
    turns = sum(1 for r in roles if r == "user")
    earlier = contents[:last] if last is not None else []
    history = any(has_code(c) for c in earlier)
    text = whole if source == "conversation" or last is None else contents[last]
    return RoutedText(text, turns, system, history, len(whole))


def source_to_json(source: str) -> dict[str, Any]:
    return {"version": ROUTED_TEXT_VERSION, "source": source}


def source_from_json(d: Any) -> str:
    """The source named by a feature spec's ``routed_text`` entry (None: a spec from before it)."""
    if d is None:
        return LEGACY_SOURCE
    if not isinstance(d, dict):
        raise ContractError("routed_text", f"must be an object, got {type(d).__name__}")
    for k in d:
        if k not in ("version", "source"):
            raise ContractError(f"routed_text.{k}", "unexpected key")
    v = d.get("version")
    if type(v) is not int or v != ROUTED_TEXT_VERSION:
        raise SchemaVersionError("routed_text.version",
                                 f"routed-text version {v!r} is not supported (expected {ROUTED_TEXT_VERSION})")
    s = d.get("source")
    if s not in SOURCES:
        raise ContractError("routed_text.source", f"must be one of {list(SOURCES)}, got {s!r}")
    return s
