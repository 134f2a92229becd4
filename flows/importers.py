"""Importers: public full-information routing data sets -> benchmark tables.

Each importer reads one data set's own JSON layout (described in ``data/README.md``) and returns a
table that has passed ``flows.tables.validate_benchmark_table``.  Raw values are parsed strictly: a
value that is not what the format promises raises ``ContractError`` naming the raw row (0-based
index in the JSON list) and the field, instead of being coerced or skipped.

Neither data set has latency; only routeprofile has token counts.  How each importer arrives at
``cost`` is stated in ``COST_MODELS``, and reports print it.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable

import polars as pl

from flows.tables import validate_benchmark_table
from router_runtime.errors import ContractError

__all__ = ["COST_MODELS", "COST_UNITS", "cost_unit", "DESCRIPTOR_SOURCES", "import_routeprofile", "import_dcrouter",
           "import_benchmark", "benchmark_descriptors", "family_of"]

_DC_COMPLETION_TOKENS = 64
_DC_CHARS_PER_TOKEN = 4.0

COST_MODELS: dict[str, str] = {
    "routeprofile": (
        "routeprofile: measured tokens. cost (USD) = prompt_tokens x input_price / 1e6 + "
        "completion_tokens x output_price / 1e6, with each answer's prompt_tokens and "
        "completion_tokens as recorded in routing_test_data.json and the per-1M-token prices "
        "of candidate_models.json."
    ),
    "dcrouter": (
        "dcrouter: estimated tokens (the data set has none). prompt_tokens = "
        f"ceil(len(question) / {_DC_CHARS_PER_TOKEN}), the length in Unicode code points; "
        f"completion_tokens = {_DC_COMPLETION_TOKENS} for every query and model; cost (USD) = "
        "prompt_tokens x input_price / 1e6 + completion_tokens x output_price / 1e6 with the "
        "per-1M-token prices of default_llm.json. Answer length is a constant, so costs differ "
        "between models only by price and between queries only by question length. (These are "
        "the defaults of import_dcrouter(chars_per_token=, completion_tokens=); a report that "
        "changes them must say so.)"
    ),
}

# The unit of each cost model in a few words, for an axis label (COST_MODELS says how it is computed).
COST_UNITS: dict[str, str] = {
    "routeprofile": "USD, from measured tokens x price",
    "dcrouter": "USD, from estimated tokens x price",
}


def cost_unit(cost_model: str) -> str:
    """The short unit of a cost model statement (a ``COST_MODELS`` value); any other statement (a
    table's own cost column, logged costs) is its own unit."""
    for fmt, text in COST_MODELS.items():
        if cost_model == text:
            return COST_UNITS[fmt]
    return cost_model


# Where each importer's model descriptors come from (the pool fields a cold-start prior reads).
DESCRIPTOR_SOURCES: dict[str, str] = {
    "routeprofile": ("candidate_models.json: size_b = parameters (billions; else the size text, '7B'), "
                     "benchmark_score = average_score / 100 (its leaderboard average), family = "
                     "family_of(architecture) ('LlamaForCausalLM' -> 'llama')"),
    "dcrouter": ("default_llm.json: size_b = the size text ('7B' -> 7.0); no family (the file states none, and "
                 "a family guessed from the name groups fine-tunes such as ChatQA with the instruct models "
                 "they were tuned from); no benchmark score"),
}
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)[Bb]")
_LEADING_LETTERS = re.compile(r"[a-z]+")


def family_of(architecture: str) -> str | None:
    """A model's family from its stated architecture: the leading ASCII letters, lower-cased, without
    the ``ForCausalLM`` suffix ("LlamaForCausalLM" -> "llama", "Qwen2ForCausalLM" -> "qwen")."""
    m = _LEADING_LETTERS.match(architecture.lower().removesuffix("forcausallm"))
    return m.group(0) if m else None


_SCHEMA = {
    "query_id": pl.String,
    "query": pl.String,
    "model": pl.String,
    "quality": pl.Float64,
    "cost": pl.Float64,
    "task": pl.String,
    "prompt_tokens": pl.Int64,
    "completion_tokens": pl.Int64,
}

# ASCII only: Python's \d would also accept other scripts' digits.
_INT = re.compile(r"[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _count(value: Any, field: str, row: int, source: str) -> int:
    """A non-negative integer, given as a JSON integer or a string of ASCII digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _INT.fullmatch(value):
        return int(value)
    raise ContractError(field, f"expected a non-negative integer, got {_show(value)}", row=row, source=source)


def _number(value: Any, field: str, row: int | None, source: str, hi: float = math.inf) -> float:
    """A finite number in [0, hi], given as a JSON number or a decimal string."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        x = float(value)
    elif isinstance(value, str) and _FLOAT.fullmatch(value):
        x = float(value)
    else:
        raise ContractError(field, f"expected a number, got {_show(value)}", row=row, source=source)
    if not 0.0 <= x <= hi:  # also refuses NaN
        raise ContractError(field, f"must be in [0, {hi}], got {_show(value)}", row=row, source=source)
    return x


def _text(value: Any, field: str, row: int, source: str) -> str:
    if not isinstance(value, str):
        raise ContractError(field, f"expected a string, got {_show(value)}", row=row, source=source)
    return value


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, encoding="utf-8") as fh:
        try:
            return json.load(fh)
        except json.JSONDecodeError as exc:
            raise ContractError("json", f"not valid JSON: {exc}", source=str(path)) from None


def _load_records(path: Path) -> list[dict]:
    data = _load_json(path)
    if not isinstance(data, list):
        raise ContractError("json", f"expected a list of objects, got {type(data).__name__}", source=str(path))
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise ContractError("json", f"expected an object, got {_show(rec)}", row=i, source=str(path))
    return data


class _Prices:
    """Per-model (input, output) USD per 1M tokens, parsed on first use of each model."""

    def __init__(self, path: Path):
        self.path = path
        self.raw = _load_json(path)
        if not isinstance(self.raw, dict):
            raise ContractError("json", "expected an object keyed by model name", source=str(path))
        self.cache: dict[str, tuple[float, float]] = {}

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int, row: int, source: str) -> float:
        if model not in self.cache:
            entry = self.raw.get(model)
            if not isinstance(entry, dict):
                raise ContractError(
                    "model", f"{model!r} has no price in {self.path.name}", row=row, source=source
                )
            self.cache[model] = tuple(  # type: ignore[assignment]
                _number(entry.get(key, _MISSING), f"{model}.{key}", None, str(self.path))
                for key in ("input_price", "output_price")
            )
        input_price, output_price = self.cache[model]
        return prompt_tokens * input_price / 1e6 + completion_tokens * output_price / 1e6


def _new_columns() -> dict[str, list]:
    return {name: [] for name in _SCHEMA}


def import_routeprofile(source: str | os.PathLike) -> pl.DataFrame:
    """RouteProfile's ``routing_test_data.json`` (+ ``candidate_models.json`` beside it).

    ``source`` is the directory holding both files or the path of ``routing_test_data.json``.
    query_id is the row index (``task_id`` is mostly null and repeats); ``formatted_query`` is not
    used.  The answers' ``response`` text becomes the optional ``response`` column when the data has
    it (the full data set does; the committed sample has it removed, and its table has no such column).
    """
    source = Path(source)
    data_path = source / "routing_test_data.json" if source.is_dir() else source
    records = _load_records(data_path)
    prices = _Prices(data_path.with_name("candidate_models.json"))
    src = str(data_path)
    cols = _new_columns()
    responses: list[str | None] = []
    for i, rec in enumerate(records):
        query = _text(rec.get("query", _MISSING), "query", i, src)
        task = _text(rec.get("task_name", _MISSING), "task_name", i, src)
        perf = rec.get("model_performance", _MISSING)
        if not isinstance(perf, dict) or not perf:
            raise ContractError("model_performance", f"expected a non-empty object, got {_show(perf)}",
                                row=i, source=src)
        for model in sorted(perf):
            cell, field = perf[model], f"model_performance.{model}"
            if not isinstance(cell, dict):
                raise ContractError(field, f"expected an object, got {_show(cell)}", row=i, source=src)
            prompt = _count(cell.get("prompt_tokens", _MISSING), f"{field}.prompt_tokens", i, src)
            completion = _count(cell.get("completion_tokens", _MISSING), f"{field}.completion_tokens", i, src)
            quality = _number(cell.get("task_performance", _MISSING), f"{field}.task_performance", i, src, hi=1.0)
            cols["query_id"].append(str(i))
            cols["query"].append(query)
            cols["model"].append(model)
            cols["quality"].append(quality)
            cols["cost"].append(prices.cost(model, prompt, completion, i, src))
            cols["task"].append(task)
            cols["prompt_tokens"].append(prompt)
            cols["completion_tokens"].append(completion)
            response = cell.get("response")
            if response is not None and not isinstance(response, str):
                raise ContractError(f"{field}.response", f"expected a string or null, got {_show(response)}",
                                    row=i, source=src)
            responses.append(response)
    df = pl.DataFrame(cols, schema=_SCHEMA)
    if any(r is not None for r in responses):
        df = df.with_columns(response=pl.Series(responses, dtype=pl.String))
    return validate_benchmark_table(df, source=src)


def import_dcrouter(
    source: str | os.PathLike,
    *,
    completion_tokens: int = _DC_COMPLETION_TOKENS,
    chars_per_token: float = _DC_CHARS_PER_TOKEN,
) -> pl.DataFrame:
    """LLMRouter's DC-Router data: ``{question, scores, cluster_id}`` lists (+ ``default_llm.json``).

    ``source`` is a directory (``train.json`` and ``test.json``, whichever exist, with a ``split``
    column and query_id ``"{split}-{index}"``) or one JSON file (query_id = the index).  Token
    counts and cost are estimates: see ``COST_MODELS["dcrouter"]``.
    """
    if isinstance(completion_tokens, bool) or not isinstance(completion_tokens, int) or completion_tokens < 0:
        raise ContractError("completion_tokens", f"expected a non-negative integer, got {_show(completion_tokens)}")
    if isinstance(chars_per_token, bool) or not isinstance(chars_per_token, (int, float)) \
            or not 0 < chars_per_token < math.inf:
        raise ContractError("chars_per_token", f"expected a positive finite number, got {_show(chars_per_token)}")
    source = Path(source)
    if source.is_dir():
        parts = [(split, source / f"{split}.json") for split in ("train", "test")]
        parts = [(split, path) for split, path in parts if path.is_file()]
        if not parts:
            raise FileNotFoundError(f"neither train.json nor test.json in {source}")
        price_path = source / "default_llm.json"
    else:
        parts = [(None, source)]
        price_path = source.with_name("default_llm.json")
    loaded = [(split, path, _load_records(path)) for split, path in parts]
    prices = _Prices(price_path)
    cols = _new_columns()
    splits: list[str] = []
    for split, path, records in loaded:
        src = str(path)
        for i, rec in enumerate(records):
            question = _text(rec.get("question", _MISSING), "question", i, src)
            scores = rec.get("scores", _MISSING)
            if not isinstance(scores, dict) or not scores:
                raise ContractError("scores", f"expected a non-empty object, got {_show(scores)}", row=i, source=src)
            cluster = rec.get("cluster_id")
            task = None if cluster is None else f"cluster_{_count(cluster, 'cluster_id', i, src)}"
            prompt = math.ceil(len(question) / chars_per_token)
            query_id = str(i) if split is None else f"{split}-{i}"
            for model in sorted(scores):
                cols["query_id"].append(query_id)
                cols["query"].append(question)
                cols["model"].append(model)
                cols["quality"].append(_number(scores[model], f"scores.{model}", i, src, hi=1.0))
                cols["cost"].append(prices.cost(model, prompt, completion_tokens, i, src))
                cols["task"].append(task)
                cols["prompt_tokens"].append(prompt)
                cols["completion_tokens"].append(completion_tokens)
            if split is not None:
                splits.extend([split] * len(scores))
    df = pl.DataFrame(cols, schema=_SCHEMA)
    if splits:
        df = df.with_columns(split=pl.Series(splits, dtype=pl.String))
    return validate_benchmark_table(df, source=str(source))


def benchmark_descriptors(source: str | os.PathLike, fmt: str) -> tuple[Any, ...]:
    """The pool models (``router_runtime.pool.ModelInfo``) a data set describes, with the descriptors
    of ``DESCRIPTOR_SOURCES[fmt]``: what a cold-start prior knows about each model.  Prices are left
    out (training fits each model's cost on the table itself)."""
    from router_runtime.pool import ModelInfo

    if fmt not in DESCRIPTOR_SOURCES:
        raise ContractError("fmt", f"no descriptors for format {fmt!r} (expected one of {', '.join(DESCRIPTOR_SOURCES)})")
    source = Path(source)
    folder = source if source.is_dir() else source.parent
    path = folder / ("candidate_models.json" if fmt == "routeprofile" else "default_llm.json")
    raw = _load_json(path)
    if not isinstance(raw, dict):
        raise ContractError("json", "expected an object keyed by model name", source=str(path))
    out = []
    for name in sorted(raw):
        entry = raw[name]
        if not isinstance(entry, dict):
            raise ContractError(name, f"expected an object, got {_show(entry)}", source=str(path))
        size = None
        if entry.get("parameters") is not None:
            size = _number(entry["parameters"], f"{name}.parameters", None, str(path))
        elif entry.get("size") is not None:
            m = _SIZE.fullmatch(str(entry["size"]).strip())
            if m is None:
                raise ContractError(f"{name}.size", f"expected a size like '7B', got {_show(entry['size'])}",
                                    source=str(path))
            size = float(m.group(1))
        extra: dict[str, Any] = {}
        arch = entry.get("architecture")
        family = family_of(arch) if isinstance(arch, str) else None
        if family:
            extra["family"] = family
        if entry.get("average_score") is not None:
            extra["benchmark_score"] = _number(entry["average_score"], f"{name}.average_score", None, str(path),
                                               hi=100.0) / 100.0
            extra["benchmark_score"] = round(extra["benchmark_score"], 6)
        out.append(ModelInfo(name, size_b=size, extra=extra))
    return tuple(out)


_IMPORTERS: dict[str, Callable[..., pl.DataFrame]] = {
    "routeprofile": import_routeprofile,
    "dcrouter": import_dcrouter,
}


def import_benchmark(source: str | os.PathLike, fmt: str, **options: Any) -> pl.DataFrame:
    """Import ``source`` with the importer named ``fmt``; ``options`` go to that importer."""
    importer = _IMPORTERS.get(fmt)
    if importer is None:
        raise ContractError("fmt", f"unknown benchmark format {fmt!r} (expected one of {', '.join(_IMPORTERS)})")
    return importer(source, **options)
