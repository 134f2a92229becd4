"""The promotion gate: one rule for every way a candidate can replace the champion.

- no champion yet → promote (something must serve);
- a minimum effective sample size, when the evidence has one (off-policy estimates: the logs rarely
  took the candidate's choices) → keep the champion below it;
- otherwise promote only when the lower end of the paired bootstrap interval of V(candidate) −
  V(champion) (``flows.evaluate.bootstrap``) exceeds ``margin``.

The evidence comes from the off-policy estimates of ``zeta pipeline`` (``offpolicy.paired_difference``
on logged rows) or from the held-out queries of a full-information training run
(``holdout.holdout_comparison``); the gate does not care which, only the reason names it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Evidence", "gate", "FIRST_CANDIDATE"]

FIRST_CANDIDATE = "no champion yet: the first candidate is promoted"


@dataclass(frozen=True)
class Evidence:
    """V(candidate) − V(champion) and its paired bootstrap interval, named for the reason."""
    diff: float
    ci_low: float
    ci_high: float
    measure: str                 # what ``diff`` is, e.g. "DR improvement", "utility"
    where: str = ""              # where it was measured, e.g. " on 178 held-out queries"
    ess: float | None = None     # effective sample size, for off-policy evidence


def gate(champion: str | None, evidence: Evidence | None, *, margin: float,
         min_ess: float | None = None) -> tuple[bool, str]:
    """(promote?, why) for a candidate against ``champion`` (its version; None: there is none)."""
    if champion is None:
        return True, FIRST_CANDIDATE
    if evidence is None:
        raise ValueError("a champion exists: the gate needs evidence")
    if min_ess is not None and evidence.ess is not None and evidence.ess < min_ess:
        return False, f"too little evidence: ESS {evidence.ess:.1f} < {min_ess:g} logged rows matching the candidate"
    e = evidence
    span = f"{e.measure} {e.diff:+.4f} [{e.ci_low:+.4f}, {e.ci_high:+.4f}]"
    if e.ci_low > margin:
        return True, f"better than champion {champion}{e.where}: {span} > margin {margin:g}"
    return False, (f"not better than champion {champion} with confidence: {span}, "
                   f"lower bound not above margin {margin:g}")
