"""The Router: one decision per request, from an artifact when there is a usable one, by rules otherwise.

``decide`` never raises into its host for an operational problem (no artifact, a corrupt one, a model
missing from the pool, a bug in scoring): it falls back to simple rules and says why in
``Decision.reason``.  Invalid *arguments* (a negative cost weight, an unknown candidate type) are the
caller's bug and raise ``ContractError``.

The same decision can be computed on three engines with bit-identical results (``engines.py``);
hot reload notices a moved CURRENT with ``reload.PointerWatch``; ids and timestamps come from
``ids.py``; the ranking rule is ``policy.rank_key``.

Thread safety: all state a decision reads is one immutable snapshot (``_State``) read once per call;
replacing it (``swap``) is a single reference assignment.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import threading
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .artifact import Artifact, load_artifact
from .candidates import CAPABILITY_PREFIX, FAMILY_PREFIX, NAME_TOKEN_PREFIX, declared_descriptors, name_tokens
from .engines import ENGINES, available_engines, build_parts, build_scorer, resolve_engine
from .errors import ContractError, ZetaError
from .ids import new_id, utc_now
from .policy import Exploration, check_cost_weight, choice_probabilities, rank_scores
from .pool import CHARS_PER_TOKEN, ModelInfo
from .records import OutcomeRecord, cap_response
from .registry import current_file, resolve_artifact_dir
from .reload import PointerWatch
from .routed_text import DEFAULT_SOURCE, RoutedText, has_code, infer_kind, routed_text
from .text import as_text

__all__ = ["Router", "Decision", "CandidateScore", "Outcome", "ENGINES", "available_engines"]

_reload_log = logging.getLogger("zeta.reload")  # what a hot reload swapped in, or why it refused

_TIE = 1e-9  # predicted qualities closer than this are a tie: cost alone decided


@dataclass(frozen=True)
class CandidateScore:
    model: str
    quality: float | None       # predicted quality in [0, 1]; None when not predicted (rules, embed)
    cost: float                 # expected cost of the call, in the pool's cost unit
    latency_ms: float | None    # expected latency, when the pool knows it
    utility: float              # what the decision maximised
    # Output tokens the expected latency/cost assume, when the artifact's length model predicted them
    # (capped by max_tokens); None: the pool's completion_tokens (capped by max_tokens) were assumed.
    output_tokens: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "quality": self.quality, "cost": self.cost,
                "latency_ms": self.latency_ms, "utility": self.utility, "output_tokens": self.output_tokens}


@dataclass(frozen=True)
class Decision:
    decision_id: str
    model: str | None           # None only when no model in the pool can serve the request kind
    kind: str
    scores: tuple[CandidateScore, ...]
    propensity: float
    explored: bool
    reason: str
    artifact_version: str | None
    cost_weight: float
    excluded: Mapping[str, str]  # model -> why it was not a candidate
    ts: str
    query: str | None = field(default=None, repr=False)
    features: tuple[float, ...] | None = field(default=None, repr=False)
    context_chars: int | None = None  # length of everything the model reads (the routed text: ``query``)
    cost_scale: float | None = None   # the cost that counted as 1 in the utility (learned decisions)
    sticky: bool = False              # session affinity chose the model (propensity 1), not the router

    @property
    def fallback(self) -> bool:
        """True when rules, not a learned artifact, made this decision."""
        return self.artifact_version is None

    def score(self, model: str) -> CandidateScore | None:
        return next((s for s in self.scores if s.model == model), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id, "model": self.model, "kind": self.kind,
            "reason": self.reason, "artifact_version": self.artifact_version,
            "cost_weight": self.cost_weight, "propensity": self.propensity, "explored": self.explored,
            "scores": [s.to_dict() for s in self.scores], "excluded": dict(self.excluded), "ts": self.ts,
            "context_chars": self.context_chars, "cost_scale": self.cost_scale, "sticky": self.sticky,
        }


@dataclass(frozen=True)
class Outcome:
    """What the host observed after calling the model: the input of ``Router.record``."""

    success: bool
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    quality: float | None = None
    quality_source: str | None = None
    model: str | None = None          # the model that finally answered, when a fallback changed it
    fallback_from: str | None = None
    cost: float | None = None         # the call's cost in the pool's unit, when the host knows it
    response: str | None = None       # the answer text; logged (capped) only when query text is logged
    response_truncated: bool = False  # already cut by the host (``records.cap_response``)
    request_id: str | None = None     # the client's id of its request (records: request_id)
    retry_of: str | None = None       # decision_id of the failed request this one retries (records: retry_of)
    label: Mapping[str, Any] | None = None  # a label line's metadata (records: label)


@dataclass(frozen=True)
class _State:
    artifact: Artifact | None
    pool: tuple[ModelInfo, ...]
    problem: str | None        # why there is no usable artifact
    cold: frozenset[str]       # pool models the artifact has no outcomes for
    bases: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # per model: CandidateScorer base
    extract: Any = None        # query -> feature vector, on the router's engine
    score: Any = None          # (features, bases) -> raw predictions, on the router's engine
    stack: Any = None          # [bases of each candidate] -> what ``score`` takes
    # Candidate lists repeat (a service routes among the same few models), so their stacked bases
    # are kept per list of names; bounded, and dropped with the state on a swap.
    stacked: dict = field(default_factory=dict)
    scale: float = 1.0         # cost_scale on the serving pool (see _serving_scale)
    engine: str = "python"     # the engine extract/score run on
    # per model whose latency depends on the output length: ModelInfo.output_rate()
    rates: Mapping[str, tuple[float, float, bool]] = field(default_factory=dict)
    # The length model over the models whose latency depends on the output: (score, stack, base per
    # model, stacked bases per candidate list, like ``stacked``).
    length: tuple | None = None
    # The descriptor prior over the cold models: (score, stack, base per cold model, stacked bases
    # per candidate list), and per cold model the descriptors its quality came from (for the reason).
    prior: tuple | None = None
    described: Mapping[str, str] = field(default_factory=dict)


def merge_pool(learned: Sequence[ModelInfo], declared: Sequence[ModelInfo] | None) -> tuple[ModelInfo, ...]:
    """The serving pool: the declared models (added or removed without retraining), each completed
    with what the artifact learned about it (cost, latency, size, context) where the declaration is
    silent.  Without a declaration, the artifact's pool as trained."""
    if declared is None:
        return tuple(learned)
    by_name = {m.name: m for m in learned}
    out = []
    for m in declared:
        k = by_name.get(m.name)
        if k is not None:
            m = ModelInfo(m.name, m.capabilities, m.size_b if m.size_b is not None else k.size_b,
                          m.context_length if m.context_length is not None else k.context_length,
                          m.cost if m.cost is not None else k.cost,
                          m.latency_ms if m.latency_ms is not None else k.latency_ms, {**k.extra, **m.extra})
        out.append(m)
    return tuple(out)


class Router:
    """Routes queries among a pool of models.

    >>> router = Router.load("artifacts")            # registry root, version dir or router.json
    >>> d = router.decide("Write a SQL query ...", kind="code", cost_weight=0.2)
    >>> d.model, d.reason
    """

    def __init__(self, artifact: Artifact | None = None, *, pool: Sequence[ModelInfo] | None = None,
                 use_numpy: bool | None = None, logger: Any = None, log_query_text: bool = True,
                 problem: str | None = None, exploration: Exploration | None = None, seed: int | None = None,
                 source: str | os.PathLike | None = None, reload_interval_ms: float | None = None,
                 engine: str = "auto", _parts: tuple | None = None, _scale: float | None = None):
        self._engine = resolve_engine(engine, use_numpy)
        self._engine_auto = engine == "auto" and use_numpy is None
        self.engine_problem: str | None = None  # why the current artifact is not on the engine asked for
        self._parts = _parts  # (artifact, engine parts) handed down by with_pool
        self._scale = _scale  # the base's cost scale, handed down by with_pool
        self._logger = logger
        self._log_query_text = log_query_text
        self._declared_pool = None if pool is None else tuple(pool)
        self._exploration = exploration or Exploration()
        self._rng = random.Random(seed)
        self._state = self._make_state(artifact, problem)
        # Hot reload: watch <registry>/CURRENT with a stat at most every reload_interval_ms.
        self._source = None if source is None else Path(source)
        self._watch = None
        self._reload_lock = threading.Lock()
        if reload_interval_ms is not None:
            if self._source is None:
                raise ContractError("source", "hot reload needs the registry path the artifact came from")
            self._watch = PointerWatch(current_file(self._source), reload_interval_ms)
        self._index_cache: tuple[tuple[ModelInfo, ...], dict[str, ModelInfo]] | None = None
        self._eligible_cache: tuple[tuple[ModelInfo, ...], dict] | None = None
        self.reload_error: str | None = None  # why the last reload was refused (old artifact kept)
        self.reloads_refused = 0               # how many reloads were refused since this router started

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike | None, *, pool: Sequence[ModelInfo] | None = None,
             use_numpy: bool | None = None, logger: Any = None, log_query_text: bool = True,
             exploration: Exploration | None = None, seed: int | None = None,
             reload_interval_ms: float | None = None, engine: str = "auto") -> "Router":
        """A Router from an artifact path; a missing or bad artifact gives a rule-based Router, not an error.

        ``engine``: "auto" (the fastest this installation has), "compiled", "numpy" or "python"; the
        older ``use_numpy=True/False`` means "numpy"/"python".  All give identical decisions.

        With ``reload_interval_ms`` and a registry root as ``path``, a new CURRENT is picked up by
        itself: at most one ``stat`` per interval on the decision path, loading and verification in
        a background thread, and the old artifact kept when the new one does not verify.
        """
        artifact, problem = None, None
        if path is None:
            problem = "no artifact configured"
        else:
            try:
                artifact = load_artifact(path)
            except (ZetaError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
        return cls(artifact, pool=pool, use_numpy=use_numpy, logger=logger, log_query_text=log_query_text,
                   problem=problem, exploration=exploration, seed=seed,
                   source=path if reload_interval_ms is not None else None,
                   reload_interval_ms=reload_interval_ms, engine=engine)

    def _make_state(self, artifact: Artifact | None, problem: str | None) -> _State:
        if artifact is None:
            pool = tuple(self._declared_pool or ())
            return _State(artifact=None, pool=pool, problem=problem, cold=frozenset(), rates=_rates(pool))
        pool = merge_pool(artifact.pool, self._declared_pool)
        cold = frozenset(m.name for m in pool if not artifact.knows(m.name))
        # A model's candidate inputs never change: its part of every tree's leaf index is computed
        # here, once per artifact and pool, not per decision.
        bases = {m.name: artifact.scorer.candidate_base(artifact.candidate_vector(m)) for m in pool}
        used, extract, score, stack = self._engine_parts(artifact)
        scale = self._scale if self._scale is not None else _serving_scale(artifact, pool, self._declared_pool)
        rates = _rates(pool)
        length = None
        # Only a model whose latency depends on the output length needs its length predicted.
        timed = [m for m in pool if m.name in rates and m.capabilities != ("embed",)]
        if artifact.length is not None and timed:
            lscore, lstack = self._parts[2]
            lm = artifact.length
            length = (lscore, lstack, {m.name: lm.scorer.candidate_base(lm.candidate_vector(m)) for m in timed}, {})
        prior = None
        if artifact.prior is not None and cold:
            pscore, pstack = self._parts[3]
            pr = artifact.prior
            prior = (pscore, pstack, {n: pr.scorer.candidate_base(pr.candidate_vector(m))
                                      for n, m in ((m.name, m) for m in pool) if n in cold}, {})
        described = {m.name: described_descriptors(m, artifact) for m in pool if m.name in cold}
        return _State(artifact=artifact, pool=pool, problem=None, cold=cold, bases=bases, engine=used,
                      extract=extract, score=score, stack=stack, scale=scale, rates=rates, length=length,
                      prior=prior, described=described)

    def _engine_parts(self, artifact: Artifact) -> tuple[str, Any, Any, Any]:
        """(engine, extract, score, stack) of ``artifact``, built once per artifact and shared with
        the ``with_pool`` siblings (compiling a feature plan is not free)."""
        cached = self._parts
        if cached is not None and cached[0] is artifact:
            return cached[1]
        parts, self.engine_problem = build_parts(artifact, self._engine, auto=self._engine_auto)
        lparts = None if artifact.length is None else build_scorer(artifact.length.scorer, parts[0])
        pparts = None if artifact.prior is None else build_scorer(artifact.prior.scorer, parts[0])
        self._parts = (artifact, parts, lparts, pparts)
        return parts

    @property
    def engine(self) -> str:
        """The engine decisions are computed on (for the current artifact, when there is one)."""
        st = self._state
        return st.engine if st.artifact is not None else self._engine

    def with_pool(self, pool: Sequence[ModelInfo]) -> "Router":
        """A router over the same artifact and settings (numpy, exploration, logging) with another
        serving pool, e.g. the same models with a load penalty on the unloaded ones.  It draws its
        own exploration randomness; the propensities it logs are exact all the same."""
        return Router(self.artifact, pool=pool, problem=self.problem,
                      engine="auto" if self._engine_auto else self._engine,
                      logger=self._logger, log_query_text=self._log_query_text, exploration=self._exploration,
                      _parts=self._parts, _scale=self._state.scale if self._state.artifact is not None else None)

    def swap(self, artifact: Artifact) -> None:
        """Replace the artifact atomically; decisions in flight finish on the one they started with."""
        self._state = self._make_state(artifact, None)

    def reload(self) -> bool:
        """Load the registry's CURRENT now; swap if it is a new, valid version.  True when swapped.

        A version that fails verification is refused: the old artifact stays and ``reload_error``
        says why.  Never raises for an operational problem.
        """
        if self._source is None:
            raise ContractError("source", "this router was not loaded from a registry path")
        with self._reload_lock:
            old, target = self.artifact_version, None
            try:
                target = resolve_artifact_dir(self._source)
                if old is not None and target.name == old:
                    _reload_log.debug("hot reload: CURRENT of %s still names %s", self._source, old)
                    return False
                artifact = load_artifact(target)
            except Exception as exc:  # noqa: BLE001
                # This runs on the reload thread: anything left uncaught would end it silently, with
                # no reload_error; the loader raises only ZetaError/OSError on purpose.
                self.reload_error = f"{type(exc).__name__}: {exc}"
                self.reloads_refused += 1
                _reload_log.warning("hot reload refused %s from %s: %s; still serving %s",
                                    target.name if target is not None else "the new CURRENT", self._source,
                                    self.reload_error, old or "the rules (no artifact)")
                return False
            self.swap(artifact)
            self.reload_error = None
            _reload_log.info("hot reload: swapped in %s (was %s) from %s", artifact.version,
                             old or "the rules (no artifact)", self._source)
            return True

    def maybe_reload(self) -> None:
        """The hot-reload check ``decide`` makes (a stat at most once per interval; loading in the
        background).  For hosts that decide through ``with_pool`` copies, which do not watch."""
        if self._watch is not None:
            self._maybe_reload()

    def _maybe_reload(self) -> None:
        if self._watch.changed():
            # Verification reads and hashes the artifact: keep that off the decision path.
            threading.Thread(target=self.reload, name="zeta-reload", daemon=True).start()

    @property
    def reload_interval_ms(self) -> float | None:
        """How often the registry's CURRENT is looked at (None: no hot reload)."""
        return None if self._watch is None else self._watch.interval_ms

    @property
    def source(self) -> Path | None:
        """The registry path hot reload watches (None without hot reload)."""
        return self._source

    @property
    def artifact(self) -> Artifact | None:
        return self._state.artifact

    @property
    def artifact_version(self) -> str | None:
        a = self._state.artifact
        return a.version if a is not None else None

    @property
    def cost_scale(self) -> float | None:
        """The cost that counts as 1 in ``utility = quality - cost_weight * cost / cost_scale``:
        the expected cost of the serving pool's most expensive model on a typical query."""
        return self._state.scale if self._state.artifact is not None else None

    @property
    def routed_text_source(self) -> str:
        """Which text of a chat request decisions read: the artifact's feature spec says
        (``router_runtime.routed_text``); rules read the contract's default."""
        a = self._state.artifact
        return a.feature_spec.routed_text if a is not None else DEFAULT_SOURCE

    def routed_text(self, messages) -> RoutedText:
        """The routed text of a chat conversation under this router's artifact (what ``decide`` takes)."""
        return routed_text(messages, self.routed_text_source)

    @property
    def problem(self) -> str | None:
        """Why the router is on rules, or None when a learned artifact is in use."""
        return self._state.problem

    @property
    def pool(self) -> tuple[ModelInfo, ...]:
        return self._state.pool

    def _state_index(self, pool: tuple[ModelInfo, ...]) -> dict[str, ModelInfo]:
        # Cached per pool object: pools only change by a state swap, which brings a new tuple.
        cached = self._index_cache
        if cached is None or cached[0] is not pool:
            cached = self._index_cache = (pool, {m.name: m for m in pool})
        return cached[1]

    # -- deciding -----------------------------------------------------------------------------
    def decide(self, query: str | bytes | RoutedText | None, *, kind: str | None = "chat",
               candidates: Iterable[str] | None = None, cost_weight: float | None = None,
               max_latency_ms: float | None = None, max_tokens: int | None = None) -> Decision:
        """Choose a model for ``query``.  Deterministic for the same inputs and artifact.

        ``query`` is the text to route, or a ``RoutedText`` (``Router.routed_text(messages)``): then
        the features read its text and the context-fit check, cost and latency its whole length.
        ``kind=None`` infers the kind from the text (``routed_text.infer_kind``; the reason says so).
        ``max_tokens`` caps the output the expected latency (and a latency-priced cost) assumes.
        """
        if kind is not None and (not isinstance(kind, str) or not kind):
            raise ContractError("kind", f"must be a non-empty string or None (infer), got {kind!r}")
        if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)
                                       or max_tokens < 1):
            raise ContractError("max_tokens", f"must be an integer >= 1, got {max_tokens!r}")
        if cost_weight is not None:
            check_cost_weight(cost_weight)
        if max_latency_ms is not None and (not isinstance(max_latency_ms, (int, float)) or max_latency_ms <= 0):
            raise ContractError("max_latency_ms", f"must be a positive number, got {max_latency_ms!r}")
        if candidates is not None:
            candidates = list(candidates)
            if not all(isinstance(c, str) for c in candidates):
                raise ContractError("candidates", "must be model names")
        if isinstance(query, RoutedText):
            text, chars = query.text, query.total_chars
        else:
            try:
                text = as_text(query)
            except TypeError as exc:
                raise ContractError("query", str(exc)) from None
            chars = len(text) if text is not None else 0
        inferred = ""
        if kind is None:
            kind, why = infer_kind(text)
            inferred = f"kind {kind} inferred from the text ({why}); "
        req = (text, chars, kind, candidates, max_latency_ms, max_tokens, inferred)

        if self._watch is not None:
            self._maybe_reload()
        state = self._state
        if state.artifact is not None:
            try:
                return self._decide_learned(state, cost_weight, *req)
            except Exception as exc:  # never take the host down: fall back and say why
                return self._decide_rules(state, cost_weight, *req,
                                          why=f"scoring failed ({type(exc).__name__}: {exc})")
        return self._decide_rules(state, cost_weight, *req, why=state.problem or "no artifact")

    def _eligible_for(self, state, chars, kind, candidates, max_latency_ms, max_tokens, inferred, tokens=None):
        """``_eligible``, where an inferred kind no candidate can serve is routed as chat."""
        got = self._eligible(state, chars, kind, candidates, max_latency_ms, max_tokens, tokens)
        if inferred and kind != "chat" and got[3].startswith(f"no {kind}-capable"):
            got = self._eligible(state, chars, "chat", candidates, max_latency_ms, max_tokens, tokens)
            return got, "chat", f"{inferred[:-2]}, no {kind}-capable candidate: routed as chat; "
        return got, kind, inferred

    def _eligible(self, state, chars, kind, candidates, max_latency_ms, max_tokens=None, tokens=None):
        pool = state.pool
        if max_latency_ms is not None:
            return self._eligible_now(pool, chars, kind, candidates, max_latency_ms,
                                      lambda m: _expected(m, chars, state.rates, max_tokens, tokens)[1])
        # Without a latency limit the outcome depends on the prompt's length only through the context
        # check, which excludes nobody while the prompt fits the smallest context among the
        # candidates: that case is remembered per (kind, candidates) and pool.
        key = (kind, None if candidates is None else tuple(candidates))
        cache = self._eligible_cache
        if cache is None or cache[0] is not pool:
            cache = self._eligible_cache = (pool, {})
        hit = cache[1].get(key)
        if hit is None:
            models, excluded, _, note = self._eligible_now(pool, 0, kind, candidates, None)
            by_name = self._state_index(pool)
            names = candidates if candidates is not None else [m.name for m in pool]
            limits = [by_name[n].context_length for n in names if n in by_name]
            fits = min((c for c in limits if c is not None), default=math.inf)
            hit = (models, excluded, note, fits)
            if len(cache[1]) < 1024:
                cache[1][key] = hit
        models, excluded, note, fits = hit
        if chars / CHARS_PER_TOKEN <= fits:
            return list(models), dict(excluded), chars, note
        return self._eligible_now(pool, chars, kind, candidates, None)

    def _eligible_now(self, pool, chars, kind, candidates, max_latency_ms, latency_of=None):
        prompt_tokens = chars / CHARS_PER_TOKEN
        by_name = self._state_index(pool)
        excluded: dict[str, str] = {}
        names = candidates if candidates is not None else [m.name for m in pool]
        models = []
        for n in dict.fromkeys(names):
            m = by_name.get(n)
            if m is None:
                excluded[n] = "not in the pool"
            elif m.context_length is not None and prompt_tokens > m.context_length:
                excluded[n] = f"prompt ~{int(prompt_tokens)} tokens exceeds context {m.context_length}"
            else:
                models.append(m)
        capable = [m for m in models if m.can(kind)]
        note = ""
        if not capable and kind != "embed":
            capable = [m for m in models if m.can("chat")]
            note = f"no {kind}-capable candidate, using chat-capable ones; "
        if len(capable) < len(models):
            # Compare by name: ModelInfo's generated __eq__ compares every field, on the hot path.
            kept = {m.name for m in capable}
            for m in models:
                if m.name not in kept:
                    excluded[m.name] = f"cannot serve {kind!r}"
        if max_latency_ms is not None:
            lat = {m.name: latency_of(m) for m in capable}
            unknown = [m.name for m in capable if lat[m.name] is None]
            fast = [m for m in capable if lat[m.name] is None or lat[m.name] <= max_latency_ms]
            kept = {m.name for m in fast}
            for m in capable:
                if m.name not in kept:
                    excluded[m.name] = f"expected latency {lat[m.name]:.0f} ms above {max_latency_ms:g} ms"
            if not fast and capable:
                fastest = min(capable, key=lambda m: lat[m.name])
                excluded.pop(fastest.name, None)
                fast = [fastest]
                note += f"no candidate meets {max_latency_ms:g} ms, taking the fastest; "
            if unknown:
                note += (f"max_latency_ms could not be checked for {', '.join(unknown)} "
                         "(no latency model); ")
            capable = fast
        return capable, excluded, chars, note

    def _decide_learned(self, state, cost_weight, text, chars, kind, candidates, max_latency_ms, max_tokens,
                        inferred) -> Decision:
        art = state.artifact
        lam = art.policy.cost_weight if cost_weight is None else float(cost_weight)
        feats = tokens = None
        if state.length is not None and kind != "embed":
            # Predicted before the latency limit is checked: the limit reads the predicted output.
            feats = state.extract(text)
            tokens = _output_tokens(state.length, feats, max_tokens, candidates)
        (models, excluded, chars, note), kind, inferred = self._eligible_for(
            state, chars, kind, candidates, max_latency_ms, max_tokens, inferred, tokens)
        note = inferred + note
        if not models:
            return self._no_model(art.version, kind, lam, excluded, text, chars=chars)
        scale = state.scale
        rates = state.rates if max_tokens is not None or tokens is not None else None
        if kind == "embed":
            # The quality model learned generation quality; for embeddings only cost separates models.
            scores = []
            for m in models:
                cost, lat = _expected(m, chars, rates, max_tokens)
                scores.append(CandidateScore(m.name, None, cost, lat, -cost / scale))
            tokens = None
            how = "embed request: cheapest embed-capable model"
        else:
            if feats is None:
                feats = state.extract(text)
            key = tuple(m.name for m in models)
            bases = state.stacked.get(key)
            if bases is None:
                bases = state.stack([state.bases[n] for n in key])
                if len(state.stacked) < 1024:
                    state.stacked[key] = bases
            q = state.score(feats, bases)
            if state.prior is not None:
                q = _with_prior(state.prior, feats, key, q)
            lo, hi = art.clip_quality
            scores = []
            for m, raw in zip(models, q):
                qual = raw if lo <= raw <= hi else hi if raw > hi else lo  # NaN -> lo
                if rates is None:
                    cost = m.expected_cost(chars)
                    lat = m.latency_ms
                    lat = None if lat is None else lat.at(chars)
                else:
                    cost, lat = _expected(m, chars, rates, max_tokens, tokens)
                scores.append(CandidateScore(m.name, qual, cost, lat, qual - lam * cost / scale,
                                             None if tokens is None else tokens.get(m.name)))
            how = f"highest predicted quality - {lam:g} x relative cost"
        ranked = rank_scores(scores)
        best = ranked[0]
        if best.model in state.cold and best.quality is not None:
            # Its quality is no learned fact about it: say what it came from.
            how = (f"highest predicted quality, {best.model}'s from its descriptors "
                   f"({state.described[best.model]}), - {lam:g} x relative cost")
        if len(ranked) > 1 and best.quality is not None and ranked[1].quality is not None \
                and abs(best.quality - ranked[1].quality) < _TIE:
            tied = sum(1 for s in ranked if s.quality is not None and abs(s.quality - best.quality) < _TIE)
            how = (f"predicted qualities tie ({best.quality:.3f}, {tied} candidates): the choice came down "
                   f"to cost ({lam:g} x relative cost)")
        chosen, propensity = best, 1.0
        if self._exploration.enabled and len(scores) > 1:
            probs = choice_probabilities({s.model: s.utility for s in scores}, {s.model: s.quality for s in scores},
                                         best.model, state.cold, self._exploration)
            chosen = _draw(scores, probs, self._rng.random())
            propensity = probs[chosen.model]
        reason = (f"{note}{how}: {best.model} (utility {best.utility:.3f}"
                  + (f", quality {best.quality:.3f}" if best.quality is not None else "")
                  + f", cost {best.cost:.3g}) among {len(scores)}")
        if len(ranked) > 1:
            reason += f"; runner-up {ranked[1].model} ({ranked[1].utility:.3f})"
        if best.output_tokens is not None:
            capped = max_tokens is not None and best.output_tokens >= max_tokens
            reason += (f"; {best.model}'s output ~{best.output_tokens:.0f} tokens "
                       f"({'capped by max_tokens' if capped else 'length model'})")
        if state.cold:
            cold = [s.model for s in scores if s.model in state.cold and s.quality is not None]
            if cold:
                how_cold = ("the quality model's average model plus the descriptor prior"
                            if state.prior is not None else "the quality model with the identity hidden")
                reason += (f"; scored from descriptors (no outcomes yet; {how_cold}): "
                           + ", ".join(f"{n} ({state.described[n]})" for n in cold))
        if chosen is not best:
            reason = (f"exploring: {chosen.model} with probability {propensity:.3g} "
                      f"(rate {self._exploration.rate:g}, {self._exploration.method}); greedy was " + reason)
        return _new_decision({
            "decision_id": new_id(), "model": chosen.model, "kind": kind, "scores": tuple(scores),
            "propensity": propensity, "explored": chosen is not best, "reason": reason,
            "artifact_version": art.version, "cost_weight": lam, "excluded": excluded, "ts": utc_now(),
            "query": text, "features": None if feats is None else tuple(feats), "context_chars": chars,
            "cost_scale": scale, "sticky": False})

    def _decide_rules(self, state, cost_weight, text, chars, kind, candidates, max_latency_ms, max_tokens,
                      inferred, *, why) -> Decision:
        lam = 0.0 if cost_weight is None else float(cost_weight)
        (models, excluded, chars, note), kind, inferred = self._eligible_for(
            state, chars, kind, candidates, max_latency_ms, max_tokens, inferred)
        note = inferred + note
        if not models:
            return self._no_model(None, kind, lam, excluded, text, why=why, chars=chars)
        wants_code = kind == "code" or has_code(text or "")
        pick = models
        rule = "cheapest capable model"
        if kind == "reason":
            pick = sorted(models, key=lambda m: -(m.size_b or 0.0))[:1]
            rule = "largest reason-capable model"
        elif wants_code and any(m.can("code") for m in models):
            pick = [m for m in models if m.can("code")]
            rule = "cheapest code-capable model (code cues in the query)"
        rates = state.rates if max_tokens is not None else None
        expected = {m.name: _expected(m, chars, rates, max_tokens) for m in models}
        scores = tuple(CandidateScore(m.name, None, expected[m.name][0], expected[m.name][1],
                                      -expected[m.name][0]) for m in models)
        best = min(pick, key=lambda m: (expected[m.name][0], m.name))
        return Decision(
            decision_id=new_id(), model=best.name, kind=kind, scores=scores, propensity=1.0,
            explored=False, reason=f"rule-based ({why}): {note}{rule}: {best.name}", artifact_version=None,
            cost_weight=lam, excluded=excluded, ts=utc_now(), query=text, context_chars=chars)

    def _no_model(self, version, kind, lam, excluded, text, why=None, chars=None) -> Decision:
        why = f" ({why})" if why else ""
        detail = "; ".join(f"{m}: {w}" for m, w in list(excluded.items())[:3])
        more = f" (+{len(excluded) - 3} more)" if len(excluded) > 3 else ""
        return Decision(
            decision_id=new_id(), model=None, kind=kind, scores=(), propensity=1.0, explored=False,
            reason=f"no model in the pool can serve this {kind!r} request{why}: {detail or 'empty pool'}{more}",
            artifact_version=version,
            cost_weight=lam, excluded=excluded, ts=utc_now(), query=text, context_chars=chars)

    # -- recording ----------------------------------------------------------------------------
    def record(self, decision: Decision, outcome: Outcome) -> OutcomeRecord:
        """Turn a decision and its outcome into an OutcomeRecord and append it to the logger, if any."""
        if decision.model is None:
            raise ContractError("decision.model", "a decision that chose no model has no outcome to record")
        model = outcome.model or decision.model
        candidates = [s.model for s in decision.scores] or [decision.model]
        if model not in candidates:
            candidates.append(model)
        text = decision.query if decision.query is not None and decision.query.strip() else None
        # The answer follows the query's switch: text logging off logs neither (privacy is one decision).
        response, cut = cap_response(outcome.response) if self._log_query_text else (None, False)
        rec = OutcomeRecord(
            decision_id=decision.decision_id, ts=utc_now(), artifact_version=decision.artifact_version,
            query=text if self._log_query_text else None,
            query_sha256=None if (self._log_query_text and text) else hashlib.sha256(
                (decision.query or "").encode("utf-8")).hexdigest(),
            request_kind=decision.kind, candidates=tuple(candidates), model=model,
            propensity=decision.propensity if model == decision.model else 1.0,
            scores={s.model: s.quality for s in decision.scores}, explored=decision.explored,
            fallback_from=outcome.fallback_from, latency_ms=outcome.latency_ms, ttft_ms=outcome.ttft_ms,
            prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens,
            success=outcome.success, error=outcome.error, quality=outcome.quality,
            quality_source=outcome.quality_source,
            features=None if self._log_query_text or decision.features is None
            or not all(math.isfinite(v) for v in decision.features) else decision.features, cost=outcome.cost,
            context_chars=decision.context_chars, sticky=decision.sticky and model == decision.model,
            response=response, response_truncated=response is not None and (cut or outcome.response_truncated),
            request_id=outcome.request_id, retry_of=outcome.retry_of, label=outcome.label,
        )
        if self._logger is not None:
            self._logger.write(rec)
        return rec


def _serving_scale(artifact: Artifact, pool: Sequence[ModelInfo], declared: Sequence[ModelInfo] | None) -> float:
    """λ's unit on the pool that serves.  ``cost_scale`` is the expected cost of the most expensive
    model on a typical query; a declared pool may price its models in another unit than the training
    data did (milliseconds of this machine against dollars per token), so the scale is priced again
    on that pool, at the training data's typical query length.  Without a declared pool, or for an
    artifact that does not record that length, the artifact's own scale."""
    chars = artifact.policy.typical_chars
    if declared is None or chars is None:
        return artifact.policy.cost_scale
    n = int(round(chars))
    top = max((m.expected_cost(n) for m in pool if m.cost is not None), default=0.0)
    return top if top > 0 else artifact.policy.cost_scale


def _rates(pool: Sequence[ModelInfo]) -> dict[str, tuple[float, float, bool]]:
    out = {}
    for m in pool:
        r = m.output_rate()
        if r is not None:
            out[m.name] = r
    return out


def _expected(m: ModelInfo, chars: int, rates: Mapping[str, tuple[float, float, bool]] | None,
              max_tokens: int | None, tokens: Mapping[str, float] | None = None) -> tuple[float, float | None]:
    """(expected cost, expected latency) of one call: the pool's per-call models where the model's
    latency depends on the output length, with the output tokens it assumes replaced by the length
    model's prediction (``tokens``, already capped) or else capped at ``max_tokens``."""
    cost = m.expected_cost(chars)
    lat = m.latency_ms.at(chars) if m.latency_ms is not None else None
    r = rates.get(m.name) if rates is not None else None
    if r is None:
        return cost, lat
    out = tokens.get(m.name) if tokens is not None else None
    if out is None:
        if max_tokens is None or max_tokens >= r[1]:
            return cost, lat
        out = max_tokens
    delta = r[0] * (out - r[1])
    lat = max(0.0, lat + delta)
    if r[2]:
        cost = max(0.0, cost + delta)
    return cost, lat


_MAX_LOG_TOKENS = 20.0  # e^20 tokens: far beyond any context; keeps expm1 finite on a wild raw value


def _output_tokens(length: tuple, feats, max_tokens: int | None, candidates) -> dict[str, float]:
    """Per candidate the length model covers, expected completion tokens: expm1 of its log1p
    prediction, at least 0, at most ``max_tokens``."""
    score, stack, base, stacked = length
    key = None if candidates is None else tuple(candidates)
    hit = stacked.get(key)
    if hit is None:
        names = tuple(base) if key is None else tuple(n for n in dict.fromkeys(key) if n in base)
        hit = (names, stack([base[n] for n in names]))
        if len(stacked) < 1024:
            stacked[key] = hit
    names, bases = hit
    out = {}
    for n, raw in zip(names, score(feats, bases)):
        t = math.expm1(raw if raw < _MAX_LOG_TOKENS else _MAX_LOG_TOKENS) if raw > 0 else 0.0  # NaN -> 0
        out[n] = t if max_tokens is None or t < max_tokens else float(max_tokens)
    return out


def _with_prior(prior: tuple, feats, key: tuple[str, ...], q) -> list[float]:
    """The quality model's raw scores ``q`` for the candidates ``key``, each cold candidate's plus its
    descriptor prior offset (the prior learned quality relative to the average model on a query,
    which is what the quality model predicts for a model whose identity it does not know)."""
    score, stack, base, stacked = prior
    hit = stacked.get(key)
    if hit is None:
        at = tuple(i for i, n in enumerate(key) if n in base)
        hit = (at, stack([base[key[i]] for i in at]) if at else None)
        if len(stacked) < 1024:
            stacked[key] = hit
    at, bases = hit
    if not at:
        return q
    out = list(q)
    for i, off in zip(at, score(feats, bases)):
        out[i] = out[i] + off
    return out


def described_descriptors(model: ModelInfo, artifact: Artifact) -> str:
    """The descriptors a cold model's quality was computed from, as the reason names them: those it
    declares among the inputs the scoring ensemble reads (the prior's, else the quality model's)."""
    inputs = set(artifact.prior.candidate_inputs if artifact.prior is not None else artifact.candidate_inputs)
    reads = {"size_b": "model_size_b", "family": FAMILY_PREFIX + str(model.extra.get("family")),
             "benchmark_score": "model_benchmark_score", "quantization": "model_quant_bits",
             "context_length": "model_log2_context"}
    used = [d for d in declared_descriptors(model) if reads[d.split(" ", 1)[0]] in inputs]
    caps = [c for c in model.capabilities if CAPABILITY_PREFIX + c in inputs]
    if caps:
        used.append("capabilities " + "/".join(caps))
    words = sorted(w for w in name_tokens(model.name) if NAME_TOKEN_PREFIX + w in inputs)
    if words:
        used.append("name words " + "/".join(words))
    return ", ".join(used) if used else "none it declares: the value of an undescribed model"


def _draw(scores: Sequence[CandidateScore], probs: Mapping[str, float], u: float) -> CandidateScore:
    acc = 0.0
    for s in scores:
        acc += probs[s.model]
        if u < acc:
            return s
    return next(s for s in reversed(scores) if probs[s.model] > 0)  # u within rounding of 1.0


_DECISION_FIELDS = frozenset(f.name for f in fields(Decision))


def _new_decision(values: dict[str, Any]) -> Decision:
    """``Decision(**values)`` without the frozen dataclass's 13 ``object.__setattr__`` calls (a
    microsecond, on the hot path): the instance dict is filled directly.  Every field is given."""
    assert values.keys() == _DECISION_FIELDS
    d = object.__new__(Decision)
    d.__dict__.update(values)
    return d
