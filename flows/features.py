"""The Polars interpreter of a ``FeatureSpec`` and the fitting of its statistics.

The ops and their exact meaning are documented in ``router_runtime/features.py``; this module must
give bit-identical float64 values (``tests/runtime/test_features.py`` is the judge).  How each op is built,
and why that way (Rust ``regex`` and Python ``re`` differ: the list is in ``router_runtime/features.py``):

- truncation: ``str.slice(0, max_chars)`` counts code points, like Python slicing;
- ASCII lower-casing: ``str.replace_many`` of A-Z -> a-z (``str.to_lowercase`` is Unicode-aware and
  would map İ, Σ, ... differently from the runtime);
- code point classes: regexes made only of ``[\\x{lo}-\\x{hi}...]`` classes (with ``+`` for runs),
  never ``\\w \\s \\d``, anchors, case-insensitive flags or anything that can match empty;
  surrogates are cut out of the ranges (Rust rejects them; valid text never contains them);
- literals: ``str.count_matches(literal=True)`` (non-overlapping, leftmost first) and
  ``str.contains_any`` (plain Aho-Corasick, case-sensitive);
- token buckets: string ops only (see ``_pl_token_buckets``) so that common-subexpression
  elimination shares the work between the n_buckets outputs;
- static embedding: the tokens (``str.extract_all`` of the token regex on the lower-cased text),
  each mapped to its row's int8 value of dim d plus 2**32 (``replace_strict``, 0 outside the vocab),
  summed as Int64 per query (exact: the sum and the token count n in one number), then
  ``(Float64(sum) * scale[d]) / Float64(n)``: the runtime's two IEEE operations in its order, so the
  same bits;
- ratio: ``when/then`` (NaN if either side is NaN, 0.0 when den == 0); log1p: ``Expr.log1p``;
- nulls propagate through every expression and become NaN at the very end.

Performance: Polars only eliminates common subexpressions (the lower-cased text, the token
markers) in the lazy engine, so ``add_features`` and ``feature_matrix`` always go through it; an
eager ``df.with_columns(feature_exprs(spec))`` gives the same values, several times slower.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable, Sequence

import polars as pl

from router_runtime.errors import ContractError
from router_runtime.features import MAX_CODE_POINT, MAX_STATIC_VOCAB, FeatureSpec
from router_runtime.text import as_text

__all__ = ["POLARS_OPS", "feature_exprs", "add_features", "feature_matrix", "fit_feature_spec"]

_UPPER = [chr(c) for c in range(65, 91)]
_LOWER = [chr(c) for c in range(97, 123)]
_TOKEN_RE = "[a-z0-9_]+"


class _Ctx:
    """What op builders share: the truncated text, its lower-cased form, earlier features' exprs."""

    def __init__(self, text: pl.Expr, max_chars: int = 65536):
        self.text = text
        self.max_chars = max_chars
        self.lower = text.str.replace_many(_UPPER, _LOWER)
        self.zero = text.str.len_bytes().cast(pl.Float64) * 0.0  # 0.0, or null for a null query
        self.exprs: dict[str, pl.Expr] = {}  # single-output feature name -> its (nullable) Float64 expr


def _rust_class(ranges: Sequence[Sequence[int]]) -> str | None:
    """A Rust regex class of the ranges, surrogates removed; None if nothing is left."""
    parts = []
    for lo, hi in ranges:
        for a, b in ((lo, min(hi, 0xD7FF)), (max(lo, 0xE000), hi)):
            if a <= b:
                parts.append(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}")
    return "[" + "".join(parts) + "]" if parts else None


_NON_TOKEN_RUN = _rust_class([[0, 0x2F], [0x3A, 0x5E], [0x60, 0x60], [0x7B, MAX_CODE_POINT]]) + "+"
_TOKEN_OR_SPACE_RUN = _rust_class([[0x20, 0x20], [0x30, 0x39], [0x5F, 0x5F], [0x61, 0x7A]]) + "+"


def _f64(e: pl.Expr) -> pl.Expr:
    return e.cast(pl.Float64)


def _pl_char_count(p: dict, ctx: _Ctx, at: str) -> list[pl.Expr]:
    return [_f64(ctx.text.str.len_chars())]


def _pl_byte_count(p: dict, ctx: _Ctx, at: str) -> list[pl.Expr]:
    return [_f64(ctx.text.str.len_bytes())]


def _pl_count_class(p: dict, ctx: _Ctx, at: str) -> list[pl.Expr]:
    cls = _rust_class(p["ranges"])
    return [ctx.zero if cls is None else _f64(ctx.text.str.count_matches(cls))]


def _pl_count_runs(p: dict, ctx: _Ctx, at: str) -> list[pl.Expr]:
    cls = _rust_class(p["ranges"])
    return [ctx.zero if cls is None else _f64(ctx.text.str.count_matches(cls + "+"))]


def _pl_count_literal(p: dict, ctx: _Ctx, at: str) -> list[pl.Expr]:
    src = ctx.lower if p["ascii_lower"] else ctx.text
    return [_f64(src.str.count_matches(p["literal"], literal=True))]


def _pl_contains_any(p: dict, ctx: _Ctx, at: str) -> list[pl.Expr]:
    src = ctx.lower if p["ascii_lower"] else ctx.text
    return [_f64(src.str.contains_any(list(p["literals"])))]


def _pl_token_buckets(p: dict, ctx: _Ctx, at: str) -> list[pl.Expr]:
    vocab = p["vocab"]
    if vocab is None:
        raise ContractError(f"{at}.params.vocab", "token_buckets feature is not fitted (vocab is null): fit the spec first")
    if not vocab:
        return [ctx.zero] * p["n_buckets"]
    # No list.eval: it blocks common-subexpression elimination, and n_buckets copies of a 4096-entry
    # lookup cost ~1 s per 6k rows.  Instead, in plain string ops that CSE computes once: separator
    # runs become two spaces, so every token reads " tok " with no two such patterns overlapping;
    # one Aho-Corasick pass turns each vocab token into its bucket's marker; deleting the token
    # characters and spaces leaves only markers, which the n_buckets outputs count.  Markers are
    # "<" + the bucket number in private-use "digits" + ">": no token characters, nothing in the
    # spaced text can look like one, and "<x>" never occurs inside another marker.
    spaced = pl.concat_str([pl.lit(" "), ctx.lower.str.replace_all(_NON_TOKEN_RUN, "  "), pl.lit(" ")])
    marked = spaced.str.replace_many([f" {t} " for t in vocab], [_marker(b) for b in vocab.values()])
    markers = marked.str.replace_all(_TOKEN_OR_SPACE_RUN, "")
    return [_f64(markers.str.count_matches(_marker(i), literal=True)) for i in range(p["n_buckets"])]


def _marker(bucket: int) -> str:
    digits = ""
    while True:
        bucket, d = divmod(bucket, 0x1900)  # U+E000..U+F8FF
        digits = chr(0xE000 + d) + digits
        if not bucket:
            return f"<{digits}>"


def _pl_static_embedding(p: dict, ctx: _Ctx, at: str) -> list[pl.Expr]:
    vocab, dims = p["vocab"], p["dims"]
    if vocab is None:
        raise ContractError(f"{at}.params.vocab", "static_embedding feature is not fitted (vocab is null): fit the spec first")
    if not vocab:
        return [ctx.zero] * dims
    # The spec validated the table (length, base64, sha256) when it was built.
    table = memoryview(base64.b64decode(p["table"])).cast("b")  # signed int8, row-major
    tokens = ctx.lower.str.extract_all(_TOKEN_RE)
    # Polars never shares a list.eval between or within expressions (no common-subexpression
    # elimination), so each output does one pass: a token maps to row[d] + 2**32 (0 outside the
    # vocab) and the Int64 list sum is s + n * 2**32: exact while |s| < 2**31 and n < 2**31, i.e.
    # under 2**24 tokens per text (at most (max_chars + 1) // 2 of them: tokens are maximal runs).
    # ``_static_value`` splits it with whole-column integer ops.  Beyond that bound, n is summed apart.
    packed = (ctx.max_chars + 1) // 2 < 1 << 24
    if not packed:
        n = tokens.list.eval(pl.element().is_in(vocab)).list.sum().cast(pl.Float64)
    out = []
    for d in range(dims):
        col, scale = table[d::dims].tolist(), float(p["scale"][d])
        if packed:
            total = tokens.list.eval(pl.element().replace_strict(
                vocab, [v + (1 << 32) for v in col], default=0, return_dtype=pl.Int64)).list.sum()
            out.append(total.map_batches(lambda t, scale=scale: _static_value(t, scale), return_dtype=pl.Float64))
        else:
            sums = tokens.list.eval(pl.element().replace_strict(vocab, col, default=0, return_dtype=pl.Int64)).list.sum()
            value = (sums.cast(pl.Float64) * pl.lit(scale, dtype=pl.Float64)) / n
            out.append(pl.when(n == 0.0).then(0.0).otherwise(value))  # null query: n is null -> null -> NaN
    return out


def _static_value(total: pl.Series, scale: float) -> pl.Series:
    """(Float64(s) * scale) / Float64(n) from the packed sums s + n * 2**32; 0.0 where n == 0 (then
    the packed sum is 0: n > 0 makes it at least 2**31); null stays null."""
    n = (total + (1 << 31)) // (1 << 32)
    s = total - n * (1 << 32)
    value = (s.cast(pl.Float64) * scale) / n.cast(pl.Float64)
    keep = (total != 0).fill_null(True)  # a null total (missing query) keeps its null value
    return value.zip_with(keep, pl.Series([0.0] * len(total), dtype=pl.Float64))


def _pl_ratio(p: dict, ctx: _Ctx, at: str) -> list[pl.Expr]:
    num, den = ctx.exprs[p["num"]], ctx.exprs[p["den"]]
    return [
        pl.when(num.is_nan() | den.is_nan())
        .then(float("nan"))
        .when(den == 0.0)
        .then(0.0)
        .otherwise(num / den)
    ]


def _pl_log1p(p: dict, ctx: _Ctx, at: str) -> list[pl.Expr]:
    return [ctx.exprs[p["of"]].log1p()]


# The Polars interpreter's registry; tests check its keys == OPS == the Python registry's keys.
POLARS_OPS: dict[str, Callable[[dict, _Ctx, str], list[pl.Expr]]] = {
    "char_count": _pl_char_count,
    "byte_count": _pl_byte_count,
    "count_class": _pl_count_class,
    "count_runs": _pl_count_runs,
    "count_literal": _pl_count_literal,
    "contains_any": _pl_contains_any,
    "token_buckets": _pl_token_buckets,
    "static_embedding": _pl_static_embedding,
    "ratio": _pl_ratio,
    "log1p": _pl_log1p,
}


def feature_exprs(spec: FeatureSpec, query_col: str = "query") -> list[pl.Expr]:
    """One Float64 expression per output of ``spec``, aliased to its output name, in order."""
    ctx = _Ctx(pl.col(query_col).str.slice(0, spec.max_chars), spec.max_chars)
    out: list[pl.Expr] = []
    for i, f in enumerate(spec.features):
        exprs = POLARS_OPS[f.op](f.params, ctx, f"features[{i}]")
        if f.op not in ("token_buckets", "static_embedding"):  # multi-output ops: never an operand
            ctx.exprs[f.name] = exprs[0]
        out += exprs
    return [e.fill_null(float("nan")).alias(n) for e, n in zip(out, spec.output_names, strict=True)]


def add_features(df: pl.DataFrame | pl.LazyFrame, spec: FeatureSpec, query_col: str = "query"):
    """``df`` with one Float64 column per feature output added (eager or lazy, whichever it got).

    Eager frames run through the lazy engine: only it eliminates the common subexpressions (the
    lower-cased text, the token markers) that the per-output expressions share.
    """
    if isinstance(df, pl.LazyFrame):
        return df.with_columns(feature_exprs(spec, query_col))
    return df.lazy().with_columns(feature_exprs(spec, query_col)).collect()


def _query_series(queries: Sequence[str | bytes | None] | pl.Series) -> pl.Series:
    if isinstance(queries, pl.Series):
        return queries.rename("query")
    # as_text maps bytes and lone surrogates exactly as the runtime does (Polars cannot hold them).
    return pl.Series("query", [as_text(q) for q in queries], dtype=pl.String)


def feature_matrix(queries: Sequence[str | bytes | None] | pl.Series, spec: FeatureSpec) -> pl.DataFrame:
    """A frame with one Float64 column per output name and one row per query."""
    return pl.DataFrame({"query": _query_series(queries)}).lazy().select(feature_exprs(spec, "query")).collect()


def fit_feature_spec(
    spec: FeatureSpec,
    queries: pl.Series | Sequence[str | None],
    *,
    vocab_size: int = 4096,
    min_count: int = 2,
) -> FeatureSpec:
    """A new spec whose every token_buckets vocab and static_embedding table is fitted on ``queries``
    (the training queries; a table with ``flows.static_embedding``).

    The vocab is the ``vocab_size`` most frequent tokens with at least ``min_count`` occurrences
    (ties broken by token, ascending), tokens counted exactly as extraction sees them (truncated,
    ASCII lower-cased); a token's bucket is ``zlib.crc32(token) % n_buckets``, so the result depends
    on nothing but the queries.  Features that need no fit are copied unchanged.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 0:
        raise ContractError("vocab_size", f"must be an int >= 0, got {vocab_size!r}")
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ContractError("min_count", f"must be an int >= 1, got {min_count!r}")
    d = spec.to_json()
    if not any(f["op"] in ("token_buckets", "static_embedding") for f in d["features"]):
        return spec
    if any(f["op"] == "token_buckets" for f in d["features"]):
        tokens = token_counts(queries, max_chars=spec.max_chars, min_count=min_count).head(vocab_size)["token"].to_list()
    for f in d["features"]:
        if f["op"] == "token_buckets":
            n = f["params"]["n_buckets"]
            f["params"]["vocab"] = {t: zlib.crc32(t.encode("ascii")) % n for t in tokens}
        elif f["op"] == "static_embedding" and f["params"]["vocab"] is None:
            from .static_embedding import fit_static_table  # the embedding model: imported only when asked for

            f["params"] = fit_static_table(queries, dims=f["params"]["dims"], max_vocab=MAX_STATIC_VOCAB,
                                           max_chars=spec.max_chars)
    return FeatureSpec.from_json(d)


def token_lists(queries: pl.Series | Sequence[str | None], *, max_chars: int) -> list[list[str]]:
    """Each query's tokens as extraction sees them (truncated to ``max_chars``, ASCII lower-cased,
    runs of [a-z0-9_]), in order; [] for a missing query."""
    ctx = _Ctx(pl.col("query").str.slice(0, max_chars))
    out = pl.DataFrame({"query": _query_series(queries)}).select(ctx.lower.str.extract_all(_TOKEN_RE).alias("t"))
    return [t if t is not None else [] for t in out["t"].to_list()]


def token_counts(queries: pl.Series | Sequence[str | None], *, max_chars: int, min_count: int = 1) -> pl.DataFrame:
    """(token, count) over ``queries``, tokens as extraction sees them, at least ``min_count`` times,
    most frequent first (ties by token, ascending): the order a fitted vocabulary takes."""
    ctx = _Ctx(pl.col("query").str.slice(0, max_chars))
    return (pl.DataFrame({"query": _query_series(queries)})
            .select(ctx.lower.str.extract_all(_TOKEN_RE).alias("token"))
            .explode("token")
            .drop_nulls("token")
            .group_by("token")
            .len("count")
            .filter(pl.col("count") >= min_count)
            .sort(["count", "token"], descending=[True, False]))
