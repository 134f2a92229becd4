"""A small hand-written corpus the feature tests fit a vocabulary on (every op, several scripts,
repeated tokens), shared by the Polars/Python parity tests and the compiled-engine tests."""

FIT_CORPUS = [
    "What is the capital of France? Answer choices: (A) Paris (B) Lyon",
    "def add(a, b):\n    return a + b\n\nWrite a Python function that adds two numbers.",
    "Solve for x: $x^2 + 3x = 10$. How many solutions are there?",
    "Clue(s): 1. The person who likes tea lives directly left of the pianist.",
    "Translate to French: the cat sat on the mat. Summarize the story in one sentence.",
    "Compute the embedding similarity of two vectors, step by step.",
    "日本語の質問です。 Что это? ¿Qué es esto? αβγ δ ε — İstanbul ß",
    "```python\nimport numpy as np\nprint(np.zeros(3))\n```",
    "#include <stdio.h>\nint main(void) { printf(\"hi\"); return 0; }",
    "the the the of of and and a a to to in in is is x_1 x_1 foo_bar foo_bar 42 42",
]
