"""The judge: quality labels for logged answers from a judge model of the pool (issue 10).

- ``rubric``: the fixed, versioned prompts, their grammars and the parsers of the verdicts;
- ``grader``: asking the judge model (one retry; pairwise in both orders);
- ``selection``: which records are gradable, the seeded sample, pairwise groups;
- ``grading``: verdicts -> label lines and failure lines, and the run's counts;
- ``labels``: the files the judge writes (``<logs>/labels/``, ``<logs>/_judge/``);
- ``validation``: agreement with known qualities, kept in the registry for the manifest;
- ``flow``: the Prefect flow ``zeta-judge`` (``zeta judge``).

Submodules import Polars and Prefect only where they need them: ``flow`` (Prefect) and
``validation`` (Polars); the others need only the runtime.
"""
