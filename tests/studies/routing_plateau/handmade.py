"""The hand-made full-information table of issue 12 (`python handmade.py` -> handmade.csv).

480 queries (4 tasks x 120) x 4 models, in the benchmark-table format (flows/tables.py).  Within every
task the best model depends on a cue in the query text, so the per-task router (best model per task)
cannot be optimal and a router that reads the text can beat it:
- math: plain arithmetic (any model) vs multi-step word problems (only `big` is reliable);
- code: Python questions (`coder` is best) vs SQL / regex questions (`big` is best, `coder` is weak);
- trivia: well-known facts (`tiny` suffices) vs obscure ones (`big` only);
- writing: a haiku or a one-liner (`tiny`, `mid`) vs a formal multi-paragraph text (`mid`, `big`).
Quality is a seeded Bernoulli draw of the probability in P (0/1 like the public tables); cost is a
per-model price per prompt character plus a fixed answer cost.  The filler words make queries of one
kind differ from each other, so neighbours and token features must find the cue among noise.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

MODELS = ("tiny", "mid", "big", "coder")
PRICE_PER_CHAR = {"tiny": 0.02e-6, "mid": 0.1e-6, "big": 0.6e-6, "coder": 0.12e-6}
ANSWER_COST = {"tiny": 2e-6, "mid": 10e-6, "big": 60e-6, "coder": 12e-6}
# P[kind][model]: probability of a correct answer
P = {
    "arith": {"tiny": 0.85, "mid": 0.9, "big": 0.95, "coder": 0.8},
    "word": {"tiny": 0.15, "mid": 0.45, "big": 0.85, "coder": 0.35},
    "python": {"tiny": 0.25, "mid": 0.5, "big": 0.75, "coder": 0.9},
    "sql": {"tiny": 0.2, "mid": 0.55, "big": 0.85, "coder": 0.35},
    "common": {"tiny": 0.85, "mid": 0.9, "big": 0.92, "coder": 0.6},
    "obscure": {"tiny": 0.1, "mid": 0.35, "big": 0.8, "coder": 0.15},
    "short": {"tiny": 0.85, "mid": 0.9, "big": 0.9, "coder": 0.5},
    "formal": {"tiny": 0.2, "mid": 0.7, "big": 0.85, "coder": 0.3},
}
TASKS = {"math": ("arith", "word"), "code": ("python", "sql"), "trivia": ("common", "obscure"),
         "writing": ("short", "formal")}
FILLER = ("please", "quickly", "kindly", "now", "for me", "if you can", "thanks", "in short", "briefly", "today")
NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana", "Ivo", "June")
ITEMS = ("apples", "books", "coins", "tickets", "boxes", "pencils", "stamps", "cards")
TOPICS_PY = ("reverse a list", "read a file line by line", "sort a dict by value", "count words in a string",
             "merge two lists", "flatten nested lists", "parse json", "remove duplicates")
TOPICS_SQL = ("a SQL query that joins orders and customers", "a SQL query with a window function for running totals",
              "a regex that matches an email address", "a regex for ISO dates", "a SQL query that finds duplicate rows",
              "a SQL group by with having", "a regex that captures quoted strings", "a recursive SQL CTE")
COMMON = ("What is the capital of France?", "How many days are in a week?", "What colour is the sky on a clear day?",
          "Who wrote Romeo and Juliet?", "What is the largest ocean?", "What is the boiling point of water in Celsius?",
          "How many legs does a spider have?", "What planet do we live on?")
OBSCURE = ("Which medieval abbot compiled the obscure chronicle of the Lindisfarne scriptorium?",
           "In which year did the obscure Treaty of Nerchinsk's second annex get ratified?",
           "Who was the third chancellor of the obscure Duchy of Saxe-Lauenburg?",
           "Which obscure Byzantine hymnographer wrote the kontakion for the Akathist feast?",
           "What is the obscure medieval term for the tithe paid on millstones?",
           "Which obscure Baroque composer taught harpsichord at the Ospedale della Pieta before Vivaldi?",
           "Name the obscure medieval guild that regulated bell founders in Ghent.",
           "Which obscure cartographer drew the 1507 map that first named America?")
SHORT = ("Write a haiku about {x}.", "Give me a one-line slogan for {x}.", "Write a short rhyme about {x}.")
FORMAL = ("Write a formal letter of three paragraphs to a city council about {x}, with a salutation and a closing.",
          "Draft a formal multi-paragraph memo to the board explaining the budget for {x}, citing figures.",
          "Compose a formal three-paragraph complaint to a supplier regarding {x}, in a professional register.")
SUBJECTS = ("rain", "autumn", "coffee", "a bakery", "a bike lane", "the library", "a garden", "a bridge")


def _query(kind: str, rng: np.random.Generator, fillers: int = 1) -> str:
    # one filler word gives only 80 distinct texts for some kinds; two (ordered, distinct) give 720, for the
    # larger variant of the table (the committed 120-per-task table uses one, so it is unchanged)
    f = rng.choice(FILLER) if fillers == 1 else " ".join(rng.choice(FILLER, fillers, replace=False))
    if kind == "arith":
        a, b = rng.integers(2, 99, 2)
        return f"What is {a} {rng.choice(('plus', 'times', 'minus'))} {b}? {f}"
    if kind == "word":
        n1, n2 = rng.choice(NAMES, 2, replace=False)
        it = rng.choice(ITEMS)
        a, b, c = rng.integers(3, 60, 3)
        return (f"{n1} has {a} {it}. {n1} gives {b} {it} to {n2}, then buys {c} more and splits the remaining "
                f"{it} equally among 3 friends. How many {it} does each friend get? Explain each step, {f}.")
    if kind == "python":
        return f"How do I {rng.choice(TOPICS_PY)} in Python? {f}"
    if kind == "sql":
        return f"Write {rng.choice(TOPICS_SQL)}, {f}."
    if kind == "common":
        return f"{rng.choice(COMMON)} {f}"
    if kind == "obscure":
        return f"{rng.choice(OBSCURE)} {f}"
    if kind == "short":
        return rng.choice(SHORT).format(x=rng.choice(SUBJECTS)) + f" {f}"
    return rng.choice(FORMAL).format(x=rng.choice(SUBJECTS)) + f" {f}"


def make_rows(n_per_task: int = 120, seed: int = 12, fillers: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows, seen = [], set()
    qid = 0
    for task, kinds in TASKS.items():
        made = 0
        while made < n_per_task:
            kind = kinds[int(rng.random() < 0.5)]
            q = _query(kind, rng, fillers)
            if q in seen:  # exact duplicates are dropped by the split anyway
                continue
            seen.add(q)
            for m in MODELS:
                rows.append({"query_id": f"hm{qid:04d}", "query": q, "model": m,
                             "quality": float(rng.random() < P[kind][m]),
                             "cost": PRICE_PER_CHAR[m] * len(q) + ANSWER_COST[m], "task": task})
            qid += 1
            made += 1
    return rows


def main() -> None:
    rows = make_rows()
    out = Path(__file__).with_name("handmade.csv")
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(out, len(rows), "rows")


if __name__ == "__main__":
    main()
