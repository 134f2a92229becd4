"""Shadow replay: re-run a seeded sample of logged queries on the pool's other eligible models, off-peak.

A logged decision reveals one model's answer.  Replaying its query on the other models of the pool
(``zeta shadow``, flow ``zeta-shadow``) gives the judge more answers to grade and, grouped with the
original by ``shadow_of``, a full-information row for training and for a direct comparison of
candidate and champion beside the off-policy estimates (which never read shadow records: their
``propensity`` 1.0 is not the logging policy's).

**What is replayed.**  Every record of the logs that has query text, is not itself a shadow record,
is not a fallback attempt (``fallback_from`` set: its query is its decision's, replayed once through
the decision) and is not an embedding (no answer to grade), when it falls in the seeded sample: a
decision is in it when ``sha256(seed, decision_id)`` maps below ``rate``, so a decision's membership
does not depend on which other lines the logs hold, and replaying the same logs with the same seed
picks the same decisions.  Each sampled decision is replayed on every model of the pool that

- has not answered it yet: neither the decision nor its fallbacks (``<id>-fb<n>``, the serving
  layer's ids) nor an earlier shadow run (every ``*.jsonl`` below ``<logs>/shadow/``);
- can serve its ``request_kind`` (capabilities);
- fits its prompt (the serving layer's context check, exact when the backend counts tokens);
- can be loaded at all within the backend's memory budget.

Runs are taken in sample order up to ``max_runs`` and then executed grouped by model, so each model
is loaded once per run however the budget makes the backend unload the others.  The replay stops
before a run that would start after ``time_budget_s``; a generation still going at that moment is
abandoned (not recorded: its query stays for the next replay).

**A shadow record** (contract of issue 10) has a fresh decision_id, the original's query,
request_kind, candidates (plus the shadow model when the original did not list it: a record's model
must be one of its candidates) and artifact_version; ``model`` the shadow model, ``propensity`` 1.0,
``explored`` false, ``scores`` {}, ``shadow_of`` the original's decision_id, and its own latency,
tokens, success, error, cost and ``response``.  The answer goes through the serving layer's implicit
signals (``router_runtime.serving.signals``): an empty answer is a failed check (quality 0), a cut
one a success whose error says so.

**A shadow model that fails** (it cannot load, llama.cpp raises, the answer is empty) gets a record
with ``success`` false and the error, and no quality: the one rule of ingest then makes it quality 0
from a check, exactly as the serving layer records a failed attempt before falling back.  That is
deliberate: a model that fails on this machine fails for users too, and the router should learn it.
What is not the model's doing is not recorded at all: the time budget running out, no instance
freeing up before it, a prompt found too long only when generating.

Records go to ``<logs>/shadow/shadow-<UTC stamp>-<8 hex>.jsonl`` (``router_runtime.logger.RecordFile``:
a new file, whole lines, fsync at the end), inside the logs directory so ingest reads them.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from prefect import flow

from router_runtime.errors import BackendError, BackendTimeoutError, ContextOverflowError, ContractError
from router_runtime.ids import new_id, utc_now
from router_runtime.logger import RecordFile
from router_runtime.pool import ModelInfo
from router_runtime.records import OutcomeRecord, cap_response

from ._prefect import step
from .progress import bar
from .reports import publish, shadow_report

__all__ = ["SHADOW_DIR", "DEFAULT_RATE", "DEFAULT_MAX_TOKENS", "ShadowRun", "ShadowPlan", "ShadowResult",
           "in_sample", "plan_shadow", "run_shadow", "shadow_record", "shadow_of", "shadow_flow", "build_backend",
           "summary_lines"]

SHADOW_DIR = "shadow"          # below the logs directory (contract of issue 10)
DEFAULT_RATE = 0.1             # share of logged decisions replayed
DEFAULT_MAX_TOKENS = 256       # the original's max_tokens is not logged; the pool's expected completion length
_FALLBACK_MARK = "-fb"         # the serving layer's fallback attempt ids: <decision_id>-fb<n>
_NO_ANSWER_KINDS = frozenset({"embed"})


# -- the record fields of issue 10 ------------------------------------------------------------------
# ``shadow_of`` and ``response`` are OutcomeRecord fields once the records change of issue 10 is in;
# before, they travel in ``extra`` (readers keep unknown fields).  These two helpers are the only
# places that know, so the switch is one place.
_FIELDS = frozenset(f.name for f in fields(OutcomeRecord))
def _with_fields(rec_kwargs: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    extra = dict(rec_kwargs.pop("extra", {}) or {})
    for k, v in values.items():
        if k in _FIELDS:
            rec_kwargs[k] = v
        elif v is not None and v is not False:
            extra[k] = v
    rec_kwargs["extra"] = extra
    return rec_kwargs


def shadow_of(rec: OutcomeRecord) -> str | None:
    """The decision a shadow record re-ran; None for the logging policy's own records."""
    v = getattr(rec, "shadow_of", None) if "shadow_of" in _FIELDS else rec.extra.get("shadow_of")
    return v if isinstance(v, str) and v else None


def shadow_record(original: OutcomeRecord, model: str, *, success: bool, error: str | None,
                  response: str | None, latency_ms: float | None = None, ttft_ms: float | None = None,
                  prompt_tokens: int | None = None, completion_tokens: int | None = None,
                  cost: float | None = None, quality: float | None = None, quality_source: str | None = None,
                  decision_id: str | None = None, ts: str | None = None) -> OutcomeRecord:
    """The shadow record of ``original`` re-run on ``model`` (see the module docstring)."""
    cands = tuple(original.candidates) + (() if model in original.candidates else (model,))
    response, truncated = cap_response(response)  # the writers' one cap (and lone-surrogate repair)
    kwargs = dict(decision_id=decision_id or new_id(), ts=ts or utc_now(), candidates=cands, model=model,
                  propensity=1.0, success=success, artifact_version=original.artifact_version,
                  query=original.query, query_sha256=original.query_sha256 if original.query is None else None,
                  request_kind=original.request_kind, scores={}, explored=False, latency_ms=latency_ms,
                  ttft_ms=ttft_ms, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, error=error,
                  quality=quality, quality_source=quality_source, cost=cost)
    return OutcomeRecord(**_with_fields(kwargs, {"shadow_of": original.decision_id, "response": response,
                                                 "response_truncated": truncated}))


# -- the sample -----------------------------------------------------------------------------------
def in_sample(decision_id: str, seed: int, rate: float) -> tuple[bool, float]:
    """(whether the decision is replayed at ``rate``, its place in the sample order in [0, 1))."""
    h = hashlib.sha256(f"zeta-shadow\0{seed}\0{decision_id}".encode("utf-8")).digest()
    u = int.from_bytes(h[:8], "big") / 2.0 ** 64
    return u < rate, u


def _root(decision_id: str) -> str:
    head, mark, tail = decision_id.rpartition(_FALLBACK_MARK)
    return head if mark and head and tail.isdigit() else decision_id


@dataclass(frozen=True)
class ShadowRun:
    """One planned replay: ``original``'s query on ``model``."""

    original: OutcomeRecord
    model: str
    order: float  # place in the sample order


@dataclass
class ShadowPlan:
    runs: list[ShadowRun] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)

    def by_model(self) -> list[tuple[str, list[ShadowRun]]]:
        """The runs grouped by model (one load each), models in the order of their first run."""
        groups: dict[str, list[ShadowRun]] = {}
        for r in self.runs:
            groups.setdefault(r.model, []).append(r)
        return list(groups.items())


def _chat_request(query: str, *, max_tokens: int, seed: int, deadline: float | None = None):
    from router_runtime.serving.backends import GenerationRequest

    # The log keeps the request's text, not its messages: the replay asks it as one user turn.
    return GenerationRequest(mode="chat", messages=({"role": "user", "content": query},), max_tokens=max_tokens,
                             temperature=0.0, seed=seed, deadline=deadline)


def plan_shadow(records: Iterable[OutcomeRecord], pool: Sequence[ModelInfo], backend: Any, *,
                rate: float = DEFAULT_RATE, max_runs: int | None = None, seed: int = 0,
                max_tokens: int = DEFAULT_MAX_TOKENS) -> ShadowPlan:
    """Which (logged decision, model) pairs to replay; every record left out is counted with its reason."""
    from router_runtime.serving.backends import request_text
    from router_runtime.serving.service import context_problem

    _check_params(rate, max_runs, None)
    records = list(records)
    answered: dict[str, set[str]] = defaultdict(set)
    shadows = 0
    for r in records:
        of = shadow_of(r)
        if of is not None:
            shadows += 1
            answered[of].add(r.model)
        else:
            answered[_root(r.decision_id)].add(r.model)
    c: Counter = Counter()
    ineligible: Counter = Counter()
    memory_problem = getattr(backend, "memory_problem", None)
    memory = {m.name: memory_problem(m) if memory_problem else None for m in pool}
    runs: list[ShadowRun] = []
    for r in records:
        if shadow_of(r) is not None:
            continue
        c["originals"] += 1
        if r.fallback_from is not None:
            c["skipped_fallback_attempt"] += 1
            continue
        if r.query is None:
            c["skipped_no_query_text"] += 1
            continue
        if r.request_kind in _NO_ANSWER_KINDS:
            c["skipped_embed"] += 1
            continue
        chosen, order = in_sample(r.decision_id, seed, rate)
        if not chosen:
            c["not_sampled"] += 1
            continue
        c["sampled"] += 1
        request = _chat_request(r.query, max_tokens=max_tokens, seed=seed)
        text = request_text(request)
        done = answered[r.decision_id]
        targets = 0
        for m in pool:
            if m.name in done:
                ineligible["already_answered"] += 1
                continue
            if not m.can(r.request_kind):
                ineligible["capability"] += 1
                continue
            if memory[m.name] is not None:
                ineligible["memory"] += 1
                continue
            if context_problem(backend, m, request, text) is not None:
                ineligible["context"] += 1
                continue
            runs.append(ShadowRun(r, m.name, order))
            targets += 1
        if not targets:
            c["sampled_without_target"] += 1
    runs.sort(key=lambda s: (s.order, s.original.decision_id, s.model))
    planned = len(runs)
    if max_runs is not None:
        runs = runs[:max_runs]
    counts = {"records": len(records), "shadow_records": shadows, **dict(c), "ineligible": dict(ineligible),
              "eligible_runs": planned, "planned_runs": len(runs),
              "memory_problems": {k: v for k, v in memory.items() if v is not None}}
    return ShadowPlan(runs, counts)


# -- running it ----------------------------------------------------------------------------------
@dataclass
class ShadowResult:
    written: int = 0
    succeeded: int = 0
    failed: int = 0
    not_recorded: dict[str, int] = field(default_factory=dict)  # reason -> runs
    by_model: dict[str, dict[str, int]] = field(default_factory=dict)
    stopped: str = "done"              # done | time budget
    file: str | None = None
    elapsed_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"written": self.written, "succeeded": self.succeeded, "failed": self.failed,
                "not_recorded": dict(self.not_recorded), "by_model": self.by_model, "stopped": self.stopped,
                "file": self.file, "elapsed_s": round(self.elapsed_s, 3)}


class _OutOfTime(Exception):
    pass


def _generate(backend: Any, model: ModelInfo, request, budget_end: float | None, clock) -> tuple:
    """(text, final event, latency ms, ttft ms) of one generation; raises _OutOfTime at the budget."""
    from router_runtime.serving.backends import Finished, TextDelta

    t0 = time.perf_counter()
    pieces: list[str] = []
    final = ttft = None
    gen = backend.generate(model, request)
    try:
        for ev in gen:
            if isinstance(ev, TextDelta):
                if ttft is None:
                    ttft = (time.perf_counter() - t0) * 1000.0
                pieces.append(ev.text)
            elif isinstance(ev, Finished):
                final = ev
            if budget_end is not None and final is None and clock() > budget_end:
                raise _OutOfTime()
    finally:
        close = getattr(gen, "close", None)
        if close is not None:
            close()
    if final is None:
        raise BackendError(model.name, "the backend ended without a final event")
    return "".join(pieces), final, (time.perf_counter() - t0) * 1000.0, ttft


def run_shadow(plan: ShadowPlan, pool: Sequence[ModelInfo], backend: Any, out_dir: str | Path, *,
               time_budget_s: float | None = None, max_tokens: int = DEFAULT_MAX_TOKENS, seed: int = 0,
               clock: Callable[[], float] = time.monotonic) -> ShadowResult:
    """Execute ``plan`` model by model and write one shadow record per finished run into ``out_dir``."""
    from router_runtime.serving.signals import attempt_cost, detect, outcome_fields

    _check_params(0.0, None, time_budget_s)
    models = {m.name: m for m in pool}
    res = ShadowResult()
    start = clock()
    budget_end = None if time_budget_s is None else start + time_budget_s
    skipped: Counter = Counter()
    out = RecordFile(out_dir, "shadow")
    steps = bar("shadow replay (runs)", sum(len(runs) for _, runs in plan.by_model()))
    try:
        for name, runs in plan.by_model():
            model = models[name]
            stats = res.by_model.setdefault(name, {"succeeded": 0, "failed": 0})
            for run in runs:
                try:
                    if budget_end is not None and clock() >= budget_end:
                        res.stopped = "time budget"
                        break
                    q = run.original.query
                    request = _chat_request(q, max_tokens=max_tokens, seed=seed, deadline=budget_end)
                    t0 = time.perf_counter()
                    try:
                        text, final, latency, ttft = _generate(backend, model, request, budget_end, clock)
                    except _OutOfTime:
                        skipped["time budget"] += 1
                        res.stopped = "time budget"
                        break
                    except BackendTimeoutError:  # nothing freed up before the budget's end: not the model's fault
                        skipped["time budget"] += 1
                        res.stopped = "time budget"
                        break
                    except ContextOverflowError:  # found only when generating: not the model's fault either
                        skipped["context"] += 1
                        continue
                    except Exception as exc:  # the model failed (a BackendError, or a bug of its backend): an outcome
                        latency = (time.perf_counter() - t0) * 1000.0
                        err = str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
                        rec = shadow_record(run.original, name, success=False, error=err, response=None,
                                            latency_ms=round(latency, 3),
                                            cost=_rounded(attempt_cost(model, latency, len(q), False)))
                        out.write(rec)
                        res.failed += 1
                        stats["failed"] += 1
                        continue
                    signals, json_error = detect(request, text, final.finish_reason)
                    success, error, quality, source = outcome_fields(signals, json_error, request.max_tokens)
                    rec = shadow_record(
                        run.original, name, success=success, error=error, response=text if text else None,
                        latency_ms=round(latency, 3), ttft_ms=None if ttft is None else round(ttft, 3),
                        prompt_tokens=final.prompt_tokens, completion_tokens=final.completion_tokens,
                        cost=_rounded(attempt_cost(model, latency, len(q), final.load_ms is not None)),
                        quality=quality, quality_source=source)
                    out.write(rec)
                    res.succeeded += success
                    res.failed += not success
                    stats["succeeded" if success else "failed"] += 1
                finally:  # a run that ends early counts too: the bar reaches its end
                    steps.advance(note=name)
            if res.stopped != "done":
                break
    finally:
        steps.close()
        out.close()
        res.written = out.lines
        res.file = str(out.path) if out.path is not None else None
        res.not_recorded = dict(skipped)
        res.elapsed_s = clock() - start
    return res


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def _check_params(rate: float, max_runs: int | None, time_budget_s: float | None) -> None:
    from router_runtime._checks import is_finite, is_integer

    if not is_finite(rate) or not 0.0 <= rate <= 1.0:
        raise ContractError("rate", f"must be a number in [0, 1], got {rate!r}")
    if max_runs is not None and (not is_integer(max_runs) or max_runs < 0):
        raise ContractError("max", f"must be an integer >= 0, got {max_runs!r}")
    if time_budget_s is not None and (not is_finite(time_budget_s) or time_budget_s <= 0):
        raise ContractError("time_budget_s", f"must be a number > 0, got {time_budget_s!r}")


# -- one replay from a logs directory and a pool file ------------------------------------------------
def build_backend(pool_path: str | Path, models: Sequence[ModelInfo], *, memory_budget_mb: float | None,
                  n_threads: int | None):
    """The backend the server uses (llama.cpp, the pool's GGUF files, the same memory budget rule)."""
    from router_runtime.serving.llama import LlamaBackend

    return LlamaBackend(models, base_dir=Path(pool_path).resolve().parent, memory_budget_mb=memory_budget_mb,
                        n_threads=n_threads)


def read_logged(logs: str | Path) -> tuple[list[OutcomeRecord], int]:
    """Every valid record below ``logs`` (shadow records included) and the number of quarantined lines."""
    from .logs import read_outcome_logs

    got = read_outcome_logs(logs)
    return got.records, len(got.quarantined)


@step
def plan_replay(logs: str, models: list[ModelInfo], backend: Any, rate: float, max_runs: int | None, seed: int,
                max_tokens: int) -> tuple[ShadowPlan, int]:
    records, quarantined = read_logged(logs)
    return plan_shadow(records, models, backend, rate=rate, max_runs=max_runs, seed=seed,
                       max_tokens=max_tokens), quarantined


@step
def run_replay(plan: ShadowPlan, models: list[ModelInfo], backend: Any, out_dir: str, time_budget_s: float | None,
               max_tokens: int, seed: int) -> ShadowResult:
    return run_shadow(plan, models, backend, out_dir, time_budget_s=time_budget_s, max_tokens=max_tokens, seed=seed)


@flow(name="zeta-shadow")
def shadow_flow(logs: str, pool: str, rate: float = DEFAULT_RATE, max_runs: int | None = None,
                time_budget_s: float | None = None, seed: int = 0, memory_budget_mb: float | None = None,
                max_tokens: int = DEFAULT_MAX_TOKENS, threads: int | None = None) -> dict[str, Any]:
    """Shadow replay of a seeded sample of logged queries on the pool's other eligible models
    (``flows/shadow.py``); meant for an off-peak schedule with a ``time_budget_s``.  Ends in a state
    named Replayed, NothingToReplay or TimeBudgetReached, with the summary as its result."""
    from router_runtime.pool import load_pool

    _check_params(rate, max_runs, time_budget_s)
    if not Path(logs).is_dir():
        raise ContractError("logs", f"not a directory of outcome logs: {logs}")
    models = list(load_pool(pool))
    backend = build_backend(pool, models, memory_budget_mb=memory_budget_mb, n_threads=threads)
    try:
        plan, quarantined = plan_replay(logs, models, backend, rate, max_runs, seed, max_tokens)
        result = run_replay(plan, models, backend, str(Path(logs) / SHADOW_DIR), time_budget_s, max_tokens, seed)
    finally:
        backend.close()
    summary = {"plan": {**plan.counts, "quarantined_lines": quarantined, "rate": rate, "seed": seed,
                        "max_runs": max_runs, "time_budget_s": time_budget_s},
               **result.to_json()}
    # Artifacts, one log line and a state named for the outcome (flows/reports.py); the result is the summary.
    return publish(shadow_report(summary, {m: len(runs) for m, runs in plan.by_model()}), summary)


def summary_lines(s: dict[str, Any]) -> list[str]:
    """What ``zeta shadow`` prints: the plan's counts, then what was written."""
    p = s["plan"]
    skipped = {k.removeprefix("skipped_"): p[k] for k in sorted(p) if k.startswith("skipped_") and p[k]}
    lines = [f"logged records {p['records']} ({p['shadow_records']} shadow, {p['quarantined_lines']} quarantined "
             f"lines), sampled {p.get('sampled', 0)} decisions at rate {p['rate']:g} (seed {p['seed']}), not "
             f"sampled {p.get('not_sampled', 0)}, skipped {skipped or 'none'}",
             f"runs: {p['eligible_runs']} eligible, {p['planned_runs']} planned"
             + (f" (--max {p['max_runs']})" if p["max_runs"] is not None else "")
             + f"; model pairs left out {p['ineligible'] or 'none'}"]
    by_model = ", ".join(f"{m} {v['succeeded']} ok/{v['failed']} failed" for m, v in s["by_model"].items())
    lines.append(f"wrote {s['written']} shadow records ({s['succeeded']} succeeded, {s['failed']} failed: "
                 f"{by_model or 'no model ran'}) to {s['file'] or '(nothing written)'}")
    lines.append(f"stopped: {s['stopped']} after {s['elapsed_s']:.1f} s"
                 + (f"; not recorded {s['not_recorded']}" if s["not_recorded"] else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.shadow --logs DIR --pool POOL ...``: the flow as a script (``zeta shadow``'s flags)."""
    from .cli import main as zeta

    return zeta(["shadow", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
