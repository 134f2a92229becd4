"""The decision rule's order and exploration.

Ranking (``rank_key``): candidates are ordered by utility, highest first; a tie goes to the cheaper
model, then to the name, so the order never depends on the order candidates were given in.  The
comparison is exact (floats compared as they are, no tolerance): two utilities that differ in the
last bit are not a tie.  The runtime's decision, the serving fallback order and the offline
evaluation all rank with this one key.

Exploration: how the router occasionally tries a model other than its best guess, and with what
exact probability, so that logged outcomes support off-policy evaluation and retraining.

With exploration rate ε and greedy choice g (the highest utility), the probability of choosing a is

    P(a) = (1 − ε) · [a = g] + ε · w(a)

where w is a distribution over the *explorable* candidates E: those whose predicted quality is at
least ``quality_floor`` (the greedy choice is always in E).  ``method`` shapes w:

- ``"epsilon"``: uniform over E;
- ``"softmax"``: proportional to exp(utility / temperature) over E.

Cold start: models of the pool the artifact has no outcomes for ("cold") get ``cold_start_share`` of
the exploration mass ε, split evenly, as long as they are explorable; the rest of ε goes to the warm
explorable models as above.  So a new model is tried at a bounded rate (at most ε in total) until
retraining with its outcomes makes it warm.  P(a) is what the outcome log records as the propensity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ._checks import is_finite
from .errors import ContractError

__all__ = ["Exploration", "choice_probabilities", "MAX_EXPLORATION_RATE", "MAX_COST_WEIGHT", "check_cost_weight",
           "rank_key", "rank_scores"]

MAX_EXPLORATION_RATE = 0.5  # beyond this the router is a random policy with extra steps
# The cost weight λ is unit-free (1 = the dearest model must be worth one whole quality point more):
# beyond a million every choice is already "the cheapest", and λ × cost stays far from overflow, so
# every utility is finite (1e308 made them -inf and the answer's header unserialisable).
MAX_COST_WEIGHT = 1e6


def check_cost_weight(v: Any, field: str = "cost_weight") -> float:
    """``v`` as a cost weight in [0, MAX_COST_WEIGHT], or ContractError naming ``field``: the one
    check for a request's, a caller's and an artifact's λ."""
    if not is_finite(v) or not 0 <= v <= MAX_COST_WEIGHT:
        shown = repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."
        raise ContractError(field, f"must be a number in [0, {MAX_COST_WEIGHT:g}], got {shown}")
    return float(v)


def rank_key(utility: float, cost: float, model: str) -> tuple[float, float, str]:
    """Sort key of one candidate: ``min``/``sorted`` by it put the chosen model first."""
    return (-utility, cost, model)


def rank_scores(scores: Iterable[Any]) -> list[Any]:
    """Candidate scores (anything with ``utility``, ``cost`` and ``model``), best first."""
    return sorted(scores, key=lambda s: rank_key(s.utility, s.cost, s.model))


@dataclass(frozen=True)
class Exploration:
    rate: float = 0.0
    method: str = "epsilon"
    temperature: float = 0.05
    quality_floor: float = 0.0
    cold_start_share: float = 0.5

    def __post_init__(self) -> None:
        if not (isinstance(self.rate, (int, float)) and 0.0 <= self.rate <= MAX_EXPLORATION_RATE):
            raise ContractError("exploration.rate", f"must be in [0, {MAX_EXPLORATION_RATE}], got {self.rate!r}")
        if self.method not in ("epsilon", "softmax"):
            raise ContractError("exploration.method", f"must be 'epsilon' or 'softmax', got {self.method!r}")
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0 and math.isfinite(self.temperature)):
            raise ContractError("exploration.temperature", f"must be > 0, got {self.temperature!r}")
        if not (isinstance(self.quality_floor, (int, float)) and 0.0 <= self.quality_floor <= 1.0):
            raise ContractError("exploration.quality_floor", f"must be in [0, 1], got {self.quality_floor!r}")
        if not (isinstance(self.cold_start_share, (int, float)) and 0.0 <= self.cold_start_share <= 1.0):
            raise ContractError("exploration.cold_start_share",
                                f"must be in [0, 1], got {self.cold_start_share!r}")

    @property
    def enabled(self) -> bool:
        return self.rate > 0.0


def choice_probabilities(utility: Mapping[str, float], quality: Mapping[str, float | None], greedy: str,
                         cold: frozenset[str] | set[str], exploration: Exploration) -> dict[str, float]:
    """P(a) for every candidate (zero for those that can never be chosen); sums to 1."""
    probs = {m: 0.0 for m in utility}
    probs[greedy] = 1.0 - exploration.rate
    if not exploration.enabled:
        probs[greedy] = 1.0
        return probs
    floor = exploration.quality_floor
    explorable = [m for m in utility if m == greedy or quality.get(m) is None or quality[m] >= floor]
    cold_e = [m for m in explorable if m in cold]
    warm_e = [m for m in explorable if m not in cold]
    cold_mass = exploration.cold_start_share if cold_e else 0.0
    if not warm_e:
        cold_mass = 1.0
    for m in cold_e:
        probs[m] += exploration.rate * cold_mass / len(cold_e)
    if warm_e and cold_mass < 1.0:
        weights = _shape(utility, warm_e, exploration)
        total = math.fsum(weights)
        for m, w in zip(warm_e, weights):
            probs[m] += exploration.rate * (1.0 - cold_mass) * w / total
    return probs


def _shape(utility: Mapping[str, float], models: Sequence[str], exploration: Exploration) -> list[float]:
    if exploration.method == "epsilon":
        return [1.0] * len(models)
    top = max(utility[m] for m in models)  # shift for numerical safety; the ratios are unchanged
    return [math.exp((utility[m] - top) / exploration.temperature) for m in models]
