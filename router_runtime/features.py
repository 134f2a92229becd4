"""Query features as data: an ordered list of ``Feature(name, op, params)`` over a closed set of ops.

The same spec is interpreted twice: here, in pure Python, once per request (``FeatureSpec.extract``),
and in ``flows/features.py`` as Polars expressions over whole training tables.  Both must produce
bit-identical float64 vectors; ``tests/runtime/test_features.py`` checks that on generated and real queries.
A spec travels inside the model artifact as JSON (``to_json`` / ``from_json``), fitted statistics
included, so the runtime never refits anything.

Input.  A query may be str, bytes or None.  It goes through ``text.as_text`` (invalid UTF-8 and lone
surrogates become U+FFFD) and is cut to its first ``max_chars`` code points: every op sees
``t = as_text(query)[:max_chars]``.  A missing query (None / null) gives NaN for every output.
Lengths are in Unicode code points unless stated.  "Lower-case" always means ASCII-only lower-casing
(``text.ascii_lower``): Unicode case mapping differs between engines (İ, ı, ß).

Ops (every output is a float):

``char_count`` {}
    Number of code points of t.
``byte_count`` {}
    Number of UTF-8 bytes of t.
``count_class`` {"ranges": [[lo, hi], ...]}
    Number of code points c of t with lo <= ord(c) <= hi for at least one range (ints, inclusive,
    0 <= lo <= hi <= 0x10FFFF).
``count_runs`` {"ranges": [[lo, hi], ...]}
    Number of maximal runs of such code points (words = runs of [A-Za-z0-9_]).
``count_literal`` {"literal": str, "ascii_lower": bool}
    Non-overlapping occurrences of the non-empty literal, leftmost first (``str.count``), in t, or in
    ascii_lower(t) when "ascii_lower" is true (the literal must then contain no A-Z).
``contains_any`` {"literals": [str, ...], "ascii_lower": bool}
    1.0 if any of the non-empty literals occurs in t (or ascii_lower(t)), else 0.0.
``token_buckets`` {"n_buckets": int >= 1, "vocab": {token: bucket} | null}
    Tokens are the maximal runs of [a-z0-9_] in ascii_lower(t).  Output ``{name}__{i}`` counts the
    tokens whose vocab bucket is i; tokens outside the vocab count nowhere.  The vocab is a fitted
    statistic (``flows.features.fit_feature_spec``): null until fitted, and extracting with an
    unfitted spec raises ContractError.  Tokens must match [a-z0-9_]+, buckets be in [0, n_buckets).
``static_embedding`` {"dims": int, "vocab": [token, ...] | null, "table": str | null,
                      "scale": [float, ...] | null, "sha256": str | null}
    A per-token vector table, mean-pooled over the query: the tokens of token_buckets; for every
    token found in the vocab (repeats included) its int8 row is added to integer sums s[0..dims-1],
    n = the number of such tokens.  Output ``{name}__{d}`` is ``(float(s[d]) * scale[d]) / n`` in
    exactly that order of IEEE double operations, 0.0 when n == 0.  The sums are exact integers,
    which is what makes every engine give the same bits.  ``dims`` in [1, 64]; ``vocab`` distinct
    tokens matching [a-z0-9_]+, at most ``MAX_STATIC_VOCAB``, row i of the table belonging to
    vocab[i]; ``table`` the standard padded base64 of the len(vocab) x dims signed int8 bytes,
    row-major; ``scale`` the dims finite per-dimension dequantization scales; ``sha256`` the hex
    sha256 of the decoded table, verified at construction.  Fitted offline (the pipeline's
    sentence-embedding model, ``flows/static_embedding.py``): vocab, table, scale and sha256 are all
    null until fitted, and extracting with an unfitted spec raises ContractError.
``ratio`` {"num": name, "den": name}
    num / den of two earlier single-output features; 0.0 when den == 0; NaN if either is NaN.
``log1p`` {"of": name}
    math.log1p of an earlier single-output feature (bit-identical to Polars ``Expr.log1p`` on the
    parity tests: both call the platform libm).

Every op but token_buckets and static_embedding has one output named after the feature;
token_buckets with n buckets has n outputs ``{name}__0`` ... ``{name}__{n-1}``, static_embedding
with d dims has d outputs ``{name}__0`` ... ``{name}__{d-1}``.  All output names must be distinct.

Why the ops are so narrow: Python ``re`` and Rust ``regex`` disagree on ``\\w``, ``\\s``, ``$``,
empty matches and case folding, so the ops are defined by explicit code point classes and literals
only, which both engines (and plain ``str``/``bytes`` methods) implement identically.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Callable

from ._checks import boolean, is_integer
from .errors import ContractError, SchemaVersionError, UnknownOpError
from .routed_text import DEFAULT_SOURCE, SOURCES, source_from_json, source_to_json
from .text import as_text, ascii_lower

__all__ = [
    "FEATURE_SPEC_VERSION",
    "MAX_CODE_POINT",
    "MAX_STATIC_DIMS",
    "MAX_STATIC_VOCAB",
    "OPS",
    "PARAM_KEYS",
    "PYTHON_OPS",
    "Feature",
    "FeatureSpec",
    "default_feature_spec",
]

FEATURE_SPEC_VERSION = 1
MAX_CODE_POINT = 0x10FFFF
# static_embedding bounds: the table travels inside router.json, at most 65,536 x 64 int8 = 4 MiB
# (5.3 MiB of base64), well inside the artifact's file size limit.
MAX_STATIC_DIMS = 64
MAX_STATIC_VOCAB = 65536

# Required parameter names per op; exactly these keys, no more.
PARAM_KEYS: dict[str, tuple[str, ...]] = {
    "char_count": (),
    "byte_count": (),
    "count_class": ("ranges",),
    "count_runs": ("ranges",),
    "count_literal": ("literal", "ascii_lower"),
    "contains_any": ("literals", "ascii_lower"),
    "token_buckets": ("n_buckets", "vocab"),
    "static_embedding": ("dims", "vocab", "table", "scale", "sha256"),
    "ratio": ("num", "den"),
    "log1p": ("of",),
}
OPS: frozenset[str] = frozenset(PARAM_KEYS)

_NAME = re.compile(r"[a-z0-9_]+")
_TOKEN = re.compile(r"[a-z0-9_]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# The param holding the number of outputs of each multi-output op; every other op has one output.
_N_OUT_PARAM = {"token_buckets": "n_buckets", "static_embedding": "dims"}
_NAN = float("nan")

# Much of the work happens on the UTF-8 bytes of t: a byte < 0x80 is always one ASCII code point and
# bytes >= 0x80 occur only inside multi-byte characters, so ASCII classes, runs of them, tokens and
# ASCII lower-casing come out the same on bytes as on code points, at C speed (bytes.translate).
_LOWER_BYTES = bytes(c + 32 if 65 <= c <= 90 else c for c in range(256))
_TOKEN_BYTES = bytes(
    c + 32 if 65 <= c <= 90 else c if (97 <= c <= 122 or 48 <= c <= 57 or c == 95) else 32 for c in range(256)
)
_NON_ASCII_RUNS = re.compile("[^\x00-\x7f]+")
_NOT_LEAD = bytes(range(0xC0))  # ASCII and continuation bytes
_COMMON = frozenset("abcdefghijklmnopqrstuvwxyz .,")


@dataclass(frozen=True)
class Feature:
    """One named feature: an op from ``OPS`` and its JSON-able params (fitted statistics included)."""

    name: str
    op: str
    params: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# validation


def _is_int(v: Any) -> bool:
    return is_integer(v)


def _check_ranges(v: Any, where: str) -> list[tuple[int, int]]:
    if not isinstance(v, (list, tuple)) or not v:
        raise ContractError(where, f"must be a non-empty list of [lo, hi] pairs, got {v!r}")
    out = []
    for j, r in enumerate(v):
        if not isinstance(r, (list, tuple)) or len(r) != 2 or not all(_is_int(x) for x in r):
            raise ContractError(f"{where}[{j}]", f"must be a pair of ints [lo, hi], got {r!r}")
        lo, hi = r
        if not 0 <= lo <= hi <= MAX_CODE_POINT:
            raise ContractError(f"{where}[{j}]", f"need 0 <= lo <= hi <= 0x10FFFF, got {r!r}")
        out.append((lo, hi))
    return out


def _check_literal(v: Any, lower: bool, where: str) -> str:
    if not isinstance(v, str) or not v:
        raise ContractError(where, f"must be a non-empty string, got {v!r}")
    if as_text(v) != v:
        raise ContractError(where, "must be valid Unicode (no lone surrogates): it could never match")
    if lower and ascii_lower(v) != v:
        raise ContractError(where, f"contains A-Z but ascii_lower is true, so it could never match: {v!r}")
    return v


def _check_static(p: dict, name: str, pf: str) -> bytes | None:
    """The decoded table of a static_embedding feature (None when unfitted); ContractError naming
    the feature and the field otherwise."""
    what = f"static_embedding feature {name!r}"
    dims = p["dims"]
    if not _is_int(dims) or not 1 <= dims <= MAX_STATIC_DIMS:
        raise ContractError(f"{pf}.dims", f"{what}: must be an int in [1, {MAX_STATIC_DIMS}], got {dims!r}")
    vocab = p["vocab"]
    if vocab is None:
        for k in ("table", "scale", "sha256"):
            if p[k] is not None:
                raise ContractError(f"{pf}.{k}", f"{what}: must be null while vocab is null (unfitted)")
        return None
    if not isinstance(vocab, (list, tuple)):
        raise ContractError(f"{pf}.vocab", f"{what}: must be a list of tokens or null, got {type(vocab).__name__}")
    if len(vocab) > MAX_STATIC_VOCAB:
        raise ContractError(f"{pf}.vocab", f"{what}: {len(vocab)} tokens, at most {MAX_STATIC_VOCAB} allowed")
    seen: set[str] = set()
    for j, tok in enumerate(vocab):
        if not isinstance(tok, str) or not _TOKEN.fullmatch(tok):
            raise ContractError(f"{pf}.vocab[{j}]", f"{what}: token {tok!r} does not match [a-z0-9_]+")
        if tok in seen:
            raise ContractError(f"{pf}.vocab[{j}]", f"{what}: duplicate token {tok!r}")
        seen.add(tok)
    scale = p["scale"]
    if not isinstance(scale, (list, tuple)) or len(scale) != dims:
        raise ContractError(f"{pf}.scale", f"{what}: must be a list of {dims} floats (one per dim), got {scale!r:.80}")
    for j, x in enumerate(scale):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise ContractError(f"{pf}.scale[{j}]", f"{what}: must be a finite float, got {x!r}")
    table = p["table"]
    if not isinstance(table, str):
        raise ContractError(f"{pf}.table", f"{what}: must be a base64 string, got {type(table).__name__}")
    try:
        raw = base64.b64decode(table, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ContractError(f"{pf}.table", f"{what}: not standard padded base64 ({e})") from None
    if base64.b64encode(raw).decode("ascii") != table:  # one spelling per table: hashes stay meaningful
        raise ContractError(f"{pf}.table", f"{what}: not canonical standard padded base64")
    if len(raw) != len(vocab) * dims:
        raise ContractError(f"{pf}.table", f"{what}: {len(raw)} bytes, expected len(vocab) x dims = "
                                           f"{len(vocab)} x {dims} = {len(vocab) * dims}")
    digest = p["sha256"]
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise ContractError(f"{pf}.sha256", f"{what}: must be 64 lower-case hex digits, got {digest!r}")
    if hashlib.sha256(raw).hexdigest() != digest:
        raise ContractError(f"{pf}.sha256", f"{what}: the table's sha256 differs from the one recorded "
                                            "(corrupted or edited table)")
    return raw


def _validate(features: tuple[Feature, ...]) -> dict[int, bytes]:
    """Raise ContractError (or a subclass) naming the first field that breaks the contract.  Returns
    the decoded table of every fitted static_embedding feature, by feature position."""
    tables: dict[int, bytes] = {}
    kinds: dict[str, int | None] = {}  # feature name -> number of outputs (None: multi-output op)
    outputs: set[str] = set()
    for i, f in enumerate(features):
        at = f"features[{i}]"
        if not isinstance(f, Feature):
            raise ContractError(at, f"must be a Feature, got {type(f).__name__}")
        if not isinstance(f.name, str) or not _NAME.fullmatch(f.name):
            raise ContractError(f"{at}.name", f"must match [a-z0-9_]+, got {f.name!r}")
        if f.name in kinds:
            raise ContractError(f"{at}.name", f"duplicate feature name {f.name!r}")
        if not isinstance(f.op, str) or f.op not in OPS:
            raise UnknownOpError(f"{at}.op", f"feature {f.name!r} uses unknown op {f.op!r}; known: {sorted(OPS)}")
        p = f.params
        if not isinstance(p, dict):
            raise ContractError(f"{at}.params", f"must be an object, got {type(p).__name__}")
        want = PARAM_KEYS[f.op]
        for k in want:
            if k not in p:
                raise ContractError(f"{at}.params.{k}", f"missing (op {f.op} needs {list(want)})")
        for k in p:
            if k not in want:
                raise ContractError(f"{at}.params.{k}", f"unexpected param for op {f.op}")
        pf = f"{at}.params"
        n_out = 1
        if f.op in ("count_class", "count_runs"):
            _check_ranges(p["ranges"], f"{pf}.ranges")
        elif f.op == "count_literal":
            lower = boolean(p["ascii_lower"], f"{pf}.ascii_lower")
            _check_literal(p["literal"], lower, f"{pf}.literal")
        elif f.op == "contains_any":
            lower = boolean(p["ascii_lower"], f"{pf}.ascii_lower")
            lits = p["literals"]
            if not isinstance(lits, (list, tuple)) or not lits:
                raise ContractError(f"{pf}.literals", f"must be a non-empty list of strings, got {lits!r}")
            for j, lit in enumerate(lits):
                _check_literal(lit, lower, f"{pf}.literals[{j}]")
        elif f.op == "token_buckets":
            n = p["n_buckets"]
            if not _is_int(n) or n < 1:
                raise ContractError(f"{pf}.n_buckets", f"must be an int >= 1, got {n!r}")
            vocab = p["vocab"]
            if vocab is not None:
                if not isinstance(vocab, dict):
                    raise ContractError(f"{pf}.vocab", f"must be an object or null, got {type(vocab).__name__}")
                for tok, bucket in vocab.items():
                    if not isinstance(tok, str) or not _TOKEN.fullmatch(tok):
                        raise ContractError(f"{pf}.vocab", f"token {tok!r} does not match [a-z0-9_]+")
                    if not _is_int(bucket) or not 0 <= bucket < n:
                        raise ContractError(f"{pf}.vocab.{tok}", f"bucket must be an int in [0, {n}), got {bucket!r}")
            n_out = n
        elif f.op == "static_embedding":
            raw = _check_static(p, f.name, pf)
            if raw is not None:
                tables[i] = raw
            n_out = p["dims"]
        elif f.op in ("ratio", "log1p"):
            for k in want:
                ref = p[k]
                if not isinstance(ref, str):
                    raise ContractError(f"{pf}.{k}", f"must be a feature name, got {ref!r}")
                if ref not in kinds:
                    raise ContractError(f"{pf}.{k}", f"refers to {ref!r}, which is not an earlier feature")
                if kinds[ref] is None:
                    raise ContractError(f"{pf}.{k}", f"refers to {ref!r}, which has several outputs")
        # None: a multi-output op (even with one output, it is named {name}__0, not {name})
        kinds[f.name] = None if f.op in _N_OUT_PARAM else n_out
        for o in _output_names(f, n_out):
            if o in outputs:
                raise ContractError(f"{at}.name", f"output name {o!r} is produced twice")
            outputs.add(o)
    return tables


def _n_out(f: Feature) -> int:
    k = _N_OUT_PARAM.get(f.op)
    return 1 if k is None else f.params[k]


def _output_names(f: Feature, n_out: int) -> list[str]:
    return [f.name] if f.op not in _N_OUT_PARAM else [f"{f.name}__{i}" for i in range(n_out)]


def _canonical(params: dict, where: str) -> dict:
    """A private JSON-shaped deep copy: later mutation of the caller's dict cannot desync the plan."""
    try:
        return json.loads(json.dumps(params, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ContractError(where, f"must be JSON-able: {e}") from None


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


def _py_class(ranges: list[tuple[int, int]]) -> str:
    return "[" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges) + "]"


# ---------------------------------------------------------------------------------------------------
# the compiled plan: one closure per feature, each appending its outputs to ``vals``.
# Step signature: (t, lt, b, cc, toks, vals): t the text, lt its ASCII lower-case form, b the UTF-8
# bytes of t, cc the counts of every count_class feature (by slot), toks the tokens (bytes).

Step = Callable[..., None]


class _Plan:
    def __init__(self, features: tuple[Feature, ...], tables: dict[int, bytes], max_chars: int):
        self.steps: list[Step] = []
        self.need_lower = False
        self.need_tokens = False
        self.unfitted: str | None = None  # field of the first unfitted feature (vocab null)
        self.unfitted_op = ""  # and its op
        self.tables = tables  # decoded static_embedding tables, by feature position
        self.max_chars = max_chars
        self.classes: list[list[tuple[int, int]]] = []  # merged ranges of each count_class slot
        index: dict[str, int] = {}  # single-output feature name -> position in vals
        pos = 0
        for i, f in enumerate(features):
            self.steps.append(PYTHON_OPS[f.op](self, i, f.params, index))
            if f.op in _N_OUT_PARAM:
                pos += _n_out(f)
            else:
                index[f.name] = pos
                pos += 1
        self.n_out = pos
        self._compile_classes()

    def mark_unfitted(self, i: int, op: str) -> None:
        if self.unfitted is None:
            self.unfitted, self.unfitted_op = f"features[{i}].params.vocab", op

    def _compile_classes(self) -> None:
        # All count_class features share one pass over the bytes: ASCII code points are grouped into
        # "atoms" (same set of classes); one translate maps each member byte to its atom and deletes
        # the rest (every byte of a multi-byte character too), then one bytes.count per atom.
        sig: dict[tuple[int, ...], list[int]] = {}
        for c in range(128):
            key = tuple(k for k, rs in enumerate(self.classes) if _in_ranges(c, rs))
            if key:
                sig.setdefault(key, []).append(c)
        table = bytearray([255] * 256)
        self._atom_slots: list[tuple[int, ...]] = []
        for atom, (slots, members) in enumerate(sig.items()):
            for c in members:
                table[c] = atom
            self._atom_slots.append(slots)
        self._atom_table = bytes(table)
        self._atom_drop = bytes(c for c in range(256) if table[c] == 255)
        # Non-ASCII parts: per slot, the UTF-8 lead bytes its code points can start with (a cheap
        # "can it occur at all" test), whether it covers all of non-ASCII, a regex for runs of it.
        self._na_slots = []
        for k, rs in enumerate(self.classes):
            na = [(max(lo, 128), hi) for lo, hi in rs if hi >= 128]
            if na:
                leads = {x for lo, hi in na for x in range(_lead_byte(lo), _lead_byte(hi) + 1)}
                drop = bytes(x for x in range(256) if x not in leads)
                everything = na == [(128, MAX_CODE_POINT)]
                self._na_slots.append((k, drop, everything, re.compile(_py_class(na) + "+").findall))

    def class_counts(self, t: str, b: bytes) -> list[int]:
        """The count of every count_class slot over t (b = t as UTF-8)."""
        cc = [0] * len(self.classes)
        if self._atom_slots:
            x = b.translate(self._atom_table, self._atom_drop)
            for atom, slots in enumerate(self._atom_slots):
                n = x.count(atom)
                if n:
                    for k in slots:
                        cc[k] += n
        if self._na_slots and len(b) != len(t):
            leads = b.translate(None, _NOT_LEAD)  # one byte per non-ASCII code point
            na = None
            for k, drop, everything, findall in self._na_slots:
                if everything:
                    cc[k] += len(leads)
                elif leads.translate(None, drop):
                    if na is None:  # only the non-ASCII code points: usually a handful
                        na = "".join(_NON_ASCII_RUNS.findall(t))
                    cc[k] += sum(map(len, findall(na)))  # run lengths: no object per character
        return cc


def _lead_byte(cp: int) -> int:
    """First UTF-8 byte of a non-ASCII code point (non-decreasing in cp)."""
    return 0xC0 | cp >> 6 if cp < 0x800 else 0xE0 | cp >> 12 if cp < 0x10000 else 0xF0 | cp >> 18


def _in_ranges(cp: int, merged: list[tuple[int, int]]) -> bool:
    i = bisect_right(merged, (cp, MAX_CODE_POINT + 1)) - 1
    return i >= 0 and merged[i][0] <= cp <= merged[i][1]


def _py_char_count(plan: _Plan, i: int, p: dict, index: dict) -> Step:
    def step(t, lt, b, cc, toks, vals):
        vals.append(float(len(t)))

    return step


def _py_byte_count(plan: _Plan, i: int, p: dict, index: dict) -> Step:
    def step(t, lt, b, cc, toks, vals):
        vals.append(float(len(b)))

    return step


def _py_count_class(plan: _Plan, i: int, p: dict, index: dict) -> Step:
    slot = len(plan.classes)
    plan.classes.append(_merge([tuple(r) for r in p["ranges"]]))

    def step(t, lt, b, cc, toks, vals):
        vals.append(float(cc[slot]))

    return step


def _py_count_runs(plan: _Plan, i: int, p: dict, index: dict) -> Step:
    merged = _merge([tuple(r) for r in p["ranges"]])
    # ASCII members -> b"a", every other byte (all bytes of multi-byte characters too) -> b" ".
    table = bytes(97 if c < 128 and _in_ranges(c, merged) else 32 for c in range(256))
    # Non-ASCII members only matter for non-ASCII text; then an explicit-class regex (which Python
    # and Rust agree on) does it.  Multi-byte characters map to spaces in ``table``: separators.
    rx = re.compile(_py_class(merged) + "+") if merged[-1][1] >= 128 else None

    def step(t, lt, b, cc, toks, vals):
        if rx is not None and len(b) != len(t):
            vals.append(float(len(rx.findall(t))))
        else:
            x = b.translate(table)
            vals.append(float(x.count(b" a") + x.startswith(b"a")))

    return step


def _py_count_literal(plan: _Plan, i: int, p: dict, index: dict) -> Step:
    lit = p["literal"]
    if p["ascii_lower"]:
        plan.need_lower = True

        def step(t, lt, b, cc, toks, vals):
            vals.append(float(lt.count(lit)))
    else:

        def step(t, lt, b, cc, toks, vals):
            vals.append(float(t.count(lit)))

    return step


def _py_contains_any(plan: _Plan, i: int, p: dict, index: dict) -> Step:
    lits = list(dict.fromkeys(p["literals"]))
    # A literal that contains another one of the list adds nothing to "any": drop it.
    lits = [a for a in lits if not any(o != a and o in a for o in lits)]
    # Prefilter: a literal with a rare character (not a-z, space, '.', ',') is absent whenever
    # that character is; ``ch in s`` runs at memchr speed, a full substring search does not.
    checks = [(next((c for c in a if c not in _COMMON), None), a) for a in lits]
    lower = p["ascii_lower"]
    plan.need_lower = plan.need_lower or lower

    def step(t, lt, b, cc, toks, vals):
        hay = lt if lower else t
        for rare, lit in checks:
            if (rare is None or rare in hay) and lit in hay:
                vals.append(1.0)
                return
        vals.append(0.0)

    return step


def _py_token_buckets(plan: _Plan, i: int, p: dict, index: dict) -> Step:
    n = p["n_buckets"]
    vocab = p["vocab"]
    plan.need_tokens = True
    if vocab is None:
        plan.mark_unfitted(i, "token_buckets")
        return lambda *args: None  # never runs: extract refuses an unfitted spec
    get = {tok.encode("ascii"): k for tok, k in vocab.items()}.get

    def step(t, lt, b, cc, toks, vals):
        out = [0.0] * n
        for k, c in Counter(map(get, toks)).items():
            if k is not None:
                out[k] = float(c)
        vals.extend(out)

    return step


def _py_static_embedding(plan: _Plan, i: int, p: dict, index: dict) -> Step:
    dims = p["dims"]
    plan.need_tokens = True
    if p["vocab"] is None:
        plan.mark_unfitted(i, "static_embedding")
        return lambda *args: None  # never runs: extract refuses an unfitted spec
    # Summing dims small ints per token in Python costs ~100 µs at 1 KB; instead each row is packed
    # into one Python int, lane d holding row[d] + 128 (0..255) in ``width`` bits, plus 1 in a lane
    # above them all that counts the tokens.  One ``sum`` of those ints adds every lane at once, and
    # exactly: a lane never carries into the next, since the text (cut to max_chars) holds at most
    # (max_chars + 1) // 2 tokens (a token is a maximal run, so two are at least one character apart).
    width = (255 * ((plan.max_chars + 1) // 2)).bit_length()
    mask = (1 << width) - 1
    count_shift = dims * width
    raw = plan.tables[i]
    get = {}
    for r, tok in enumerate(p["vocab"]):
        packed = 1 << count_shift
        for d, byte in enumerate(raw[r * dims:(r + 1) * dims]):
            packed |= ((byte ^ 0x80) << (d * width))  # byte ^ 0x80 == (signed int8 value) + 128
        get[tok.encode("ascii")] = packed
    get = get.get
    lanes = [(d * width, float(sc)) for d, sc in enumerate(p["scale"])]
    zeros = [0.0] * dims
    zero = repeat(0)

    def step(t, lt, b, cc, toks, vals):
        total = sum(map(get, toks, zero))  # tokens outside the vocab add 0
        n = total >> count_shift
        if not n:
            vals.extend(zeros)
            return
        bias, fn = 128 * n, float(n)
        vals.extend([(float(((total >> shift) & mask) - bias) * sc) / fn for shift, sc in lanes])

    return step


def _py_ratio(plan: _Plan, i: int, p: dict, index: dict) -> Step:
    a, d = index[p["num"]], index[p["den"]]

    def step(t, lt, b, cc, toks, vals):
        num, den = vals[a], vals[d]
        if num != num or den != den:
            vals.append(_NAN)
        elif den == 0:
            vals.append(0.0)
        else:
            vals.append(num / den)

    return step


def _py_log1p(plan: _Plan, i: int, p: dict, index: dict) -> Step:
    a = index[p["of"]]
    log1p = math.log1p

    def step(t, lt, b, cc, toks, vals):
        vals.append(log1p(vals[a]))

    return step


# The Python interpreter's registry; tests check its keys == OPS == the Polars registry's keys.
PYTHON_OPS: dict[str, Callable[[_Plan, int, dict, dict], Step]] = {
    "char_count": _py_char_count,
    "byte_count": _py_byte_count,
    "count_class": _py_count_class,
    "count_runs": _py_count_runs,
    "count_literal": _py_count_literal,
    "contains_any": _py_contains_any,
    "token_buckets": _py_token_buckets,
    "static_embedding": _py_static_embedding,
    "ratio": _py_ratio,
    "log1p": _py_log1p,
}


# ---------------------------------------------------------------------------------------------------
# the spec


@dataclass(frozen=True)
class FeatureSpec:
    """An ordered, validated feature list.  Construction validates and precompiles; extraction is pure."""

    features: tuple[Feature, ...]
    max_chars: int = 65536
    version: int = FEATURE_SPEC_VERSION
    # Which text of a request the features read (``router_runtime.routed_text``); a spec written
    # before that contract has no entry and reads the whole conversation, as it did.
    routed_text: str = DEFAULT_SOURCE

    def __post_init__(self) -> None:
        if not _is_int(self.version) or self.version != FEATURE_SPEC_VERSION:
            raise SchemaVersionError(
                "version", f"feature spec version {self.version!r} is not supported (expected {FEATURE_SPEC_VERSION})"
            )
        if not _is_int(self.max_chars) or self.max_chars < 1:
            raise ContractError("max_chars", f"must be an int >= 1, got {self.max_chars!r}")
        if self.routed_text not in SOURCES:
            raise ContractError("routed_text.source", f"must be one of {list(SOURCES)}, got {self.routed_text!r}")
        if not isinstance(self.features, (list, tuple)):
            raise ContractError("features", f"must be a list of features, got {type(self.features).__name__}")
        feats = tuple(self.features)
        tables = _validate(feats)
        feats = tuple(Feature(f.name, f.op, _canonical(f.params, f"features[{i}].params")) for i, f in enumerate(feats))
        object.__setattr__(self, "features", feats)
        plan = _Plan(feats, tables, self.max_chars)
        object.__setattr__(self, "_plan", plan)
        names: list[str] = []
        for f in feats:
            names += _output_names(f, _n_out(f))
        object.__setattr__(self, "_output_names", tuple(names))

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._output_names  # type: ignore[attr-defined]

    @property
    def needs_fit(self) -> bool:
        """True while some token_buckets or static_embedding feature has no vocab."""
        return self._plan.unfitted is not None  # type: ignore[attr-defined]

    def to_json(self) -> dict:
        return {
            "version": self.version,
            "max_chars": self.max_chars,
            "routed_text": source_to_json(self.routed_text),
            "features": [{"name": f.name, "op": f.op, "params": _canonical(f.params, "params")} for f in self.features],
        }

    @classmethod
    def from_json(cls, d: Any) -> "FeatureSpec":
        if not isinstance(d, dict):
            raise ContractError("feature_spec", f"must be an object, got {type(d).__name__}")
        for k in d:
            if k not in ("version", "max_chars", "features", "routed_text"):
                raise ContractError(str(k), "unexpected key in feature spec")
        if "version" not in d:
            raise SchemaVersionError("version", "missing")
        version = d["version"]
        if not _is_int(version) or version != FEATURE_SPEC_VERSION:
            raise SchemaVersionError(
                "version", f"feature spec version {version!r} is not supported (expected {FEATURE_SPEC_VERSION})"
            )
        if "features" not in d:
            raise ContractError("features", "missing")
        raw = d["features"]
        if not isinstance(raw, list):
            raise ContractError("features", f"must be a list, got {type(raw).__name__}")
        feats = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise ContractError(f"features[{i}]", f"must be an object, got {type(item).__name__}")
            for k in ("name", "op", "params"):
                if k not in item:
                    raise ContractError(f"features[{i}].{k}", "missing")
            for k in item:
                if k not in ("name", "op", "params"):
                    raise ContractError(f"features[{i}].{k}", "unexpected key")
            feats.append(Feature(item["name"], item["op"], item["params"]))
        if "max_chars" not in d:
            raise ContractError("max_chars", "missing")
        return cls(tuple(feats), max_chars=d["max_chars"], version=version,
                   routed_text=source_from_json(d.get("routed_text")))

    def extract(self, query: str | bytes | None) -> list[float]:
        """The feature vector of one query, in ``output_names`` order (pure Python, no allocation-heavy work)."""
        plan: _Plan = self._plan  # type: ignore[attr-defined]
        if plan.unfitted is not None:
            raise ContractError(plan.unfitted, f"{plan.unfitted_op} feature is not fitted (vocab is null): fit the spec first")
        t = as_text(query)
        if t is None:
            return [_NAN] * plan.n_out
        if len(t) > self.max_chars:
            t = t[: self.max_chars]
        b = t.encode("utf-8")
        # Lower-casing the UTF-8 bytes then decoding is exact (a byte in A-Z is always the letter)
        # and much faster than str.translate on non-ASCII text.
        lt = b.translate(_LOWER_BYTES).decode("utf-8") if plan.need_lower else t
        cc = plan.class_counts(t, b) if plan.classes else None
        toks = b.translate(_TOKEN_BYTES).split() if plan.need_tokens else ()
        vals: list[float] = []
        for step in plan.steps:
            step(t, lt, b, cc, toks, vals)
        return vals


# ---------------------------------------------------------------------------------------------------
# the default (unfitted) feature set


def _chars(s: str) -> list[list[int]]:
    return [[ord(c), ord(c)] for c in s]


def _f(name: str, op: str, **params: Any) -> Feature:
    return Feature(name, op, params)


_WORD = [[48, 57], [65, 90], [95, 95], [97, 122]]
_SCRIPTS = {
    "latin_ext": [[0x00C0, 0x024F]],
    "greek": [[0x0370, 0x03FF]],
    "cyrillic": [[0x0400, 0x04FF]],
    "arabic": [[0x0600, 0x06FF]],
    "devanagari": [[0x0900, 0x097F]],
    "cjk": [[0x3040, 0x30FF], [0x3400, 0x4DBF], [0x4E00, 0x9FFF], [0xAC00, 0xD7AF]],
    "emoji": [[0x1F300, 0x1FAFF]],
}
_CUES = {
    "mc": ["a)", "(a)", "a.", "options:", "choices:", "answer choices"],
    "code": ["def ", "function", "class ", "import ", "return ", "#include", "public static", "console.log",
             "python", "write a program", "implement"],
    "math": ["solve", "calculate", "how many", "how much", "equation", "sum of", "probability", "percent", "total"],
    "logic": ["clue", "puzzle", "if and only if", "lives directly", "step by step"],
    "qa": ["who ", "when ", "where ", "which ", "what year", "capital of"],
    "write": ["write", "essay", "story", "poem", "summarize", "translate"],
    "embed": ["embed", "embedding", "vector", "similarity"],
}


def default_feature_spec(n_buckets: int = 64, max_chars: int = 65536, routed_text: str = DEFAULT_SOURCE) -> FeatureSpec:
    """The default feature set, UNFITTED: fit its ``tok`` vocab with ``flows.features.fit_feature_spec``.
    ``routed_text``: which text of a chat request it reads ("last_user_turn" or "conversation")."""
    fs = [
        # lengths
        _f("chars", "char_count"),
        _f("bytes", "byte_count"),
        _f("words", "count_runs", ranges=_WORD),
        _f("lines", "count_literal", literal="\n", ascii_lower=False),
        _f("paragraphs", "count_literal", literal="\n\n", ascii_lower=False),
        _f("digits", "count_class", ranges=[[48, 57]]),
        _f("upper", "count_class", ranges=[[65, 90]]),
        _f("spaces", "count_class", ranges=[[9, 10], [13, 13], [32, 32]]),
        _f("non_ascii", "count_class", ranges=[[0x80, MAX_CODE_POINT]]),
        _f("punct", "count_class", ranges=_chars(".,;:!")),
        # code shape
        _f("code_syms", "count_class", ranges=_chars("{}[]();=<>")),
        _f("underscores", "count_literal", literal="_", ascii_lower=False),
        _f("fences", "count_literal", literal="```", ascii_lower=False),
        _f("indents", "count_literal", literal="\n    ", ascii_lower=False),
        # math shape
        _f("math_ops", "count_class", ranges=_chars("+-*/^=%")),
        _f("latex_frac", "count_literal", literal="\\frac", ascii_lower=False),
        _f("dollars", "count_literal", literal="$", ascii_lower=False),
        _f("qmarks", "count_literal", literal="?", ascii_lower=False),
    ]
    fs += [_f(f"cue_{k}", "contains_any", literals=v, ascii_lower=True) for k, v in _CUES.items()]
    fs += [_f(f"script_{k}", "count_class", ranges=v) for k, v in _SCRIPTS.items()]
    fs.append(_f("control", "count_class", ranges=[[0x00, 0x08], [0x0B, 0x1F], [0x7F, 0x7F]]))
    for num in ("digits", "upper", "spaces", "non_ascii", "punct", "code_syms", "math_ops"):
        fs.append(_f(f"{num}_ratio", "ratio", num=num, den="chars"))
    fs += [_f(f"script_{k}_ratio", "ratio", num=f"script_{k}", den="chars") for k in _SCRIPTS]
    fs += [
        _f("chars_per_word", "ratio", num="chars", den="words"),
        _f("bytes_per_char", "ratio", num="bytes", den="chars"),
        _f("log_chars", "log1p", of="chars"),
        _f("log_words", "log1p", of="words"),
        _f("log_lines", "log1p", of="lines"),
        _f("tok", "token_buckets", n_buckets=n_buckets, vocab=None),
    ]
    return FeatureSpec(tuple(fs), max_chars=max_chars, routed_text=routed_text)
