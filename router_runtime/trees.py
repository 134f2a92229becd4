"""Oblivious-tree ensembles as plain data, and the one small function family that evaluates them.

The shape follows CatBoost's standalone applier: an ensemble is arrays (per-tree depth, split feature,
split border, leaf values, scale, bias) that one generic evaluator walks.  Unlike that applier, inputs
are matched by *name* (``inputs``), and bad data raises a precise ``ContractError``.

Exactness: CatBoost compares ``float32(x) > border`` with float32 borders.  Rather than
rounding every input at run time, each border is turned once into a float64 threshold ``t`` such that
``x > t`` holds exactly when ``float32(x) > border`` does, for every float64 ``x``.  Missing values
follow the training's nan treatment: ``AsTrue`` sends NaN to the "greater" side, everything else to
the other.

Leaf values are held as integers in units of 2^-k, with k as large as int64 allows for this ensemble
(at most 60; rounded once at load, so a quality model's leaves move by about 1e-18).  Integer sums
are exact in any order, so the pure-Python path (Python ints) and the numpy path (int64) give
bit-identical results without a compensated float sum, and the result stays within 1e-9 of CatBoost's
raw prediction (the exporter checks that on every artifact).

Ensemble JSON (inside ``router.json``)::

    {"kind": "oblivious_trees", "inputs": [name, ...],
     "tree_depth": [d0, d1, ...],                # one per tree
     "split_input": [...], "split_border": [...], # sum(tree_depth) each; bit j of a tree's leaf index
                                                  # is its split j (first split = lowest bit)
     "leaf_values": [...],                        # sum(2 ** d) values, tree after tree
     "nan_as_true": [name, ...],                  # inputs whose NaN goes to the "greater" side
     "scale": 1.0, "bias": 0.0}
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .errors import ContractError, MissingDependencyError

__all__ = ["ObliviousEnsemble", "CandidateScorer", "float32_threshold"]

MAX_LEAF_UNIT_BITS = 60
_F32 = struct.Struct("<f")
_U32 = struct.Struct("<I")
_NEG_INF = float("-inf")
_POS_INF = float("inf")


def _round_f32(x: float) -> float:
    try:
        return _F32.unpack(_F32.pack(x))[0]
    except OverflowError:  # beyond float32's range: rounds to +-inf like a C cast
        return math.copysign(_POS_INF, x)


def _next_f32_up(b: float) -> float:
    if b == 0.0:
        return _U32_to_f32(1)  # smallest positive subnormal, for both +0.0 and -0.0
    bits = _U32.unpack(_F32.pack(b))[0]
    return _U32_to_f32(bits + 1 if b > 0 else bits - 1)


def _U32_to_f32(bits: int) -> float:
    return _F32.unpack(_U32.pack(bits))[0]


def float32_threshold(border: float) -> float:
    """The float64 ``t`` with ``x > t  <=>  float32(x) > float32(border)`` for every float64 x."""
    b = _round_f32(border)
    if math.isinf(b) or math.isnan(b):
        raise ContractError("split_border", f"must be a finite float32, got {border!r}")
    up = _next_f32_up(b)
    if math.isinf(up):
        up = 2.0 ** 128  # above FLT_MAX, float32 rounding steps to "2^128", i.e. overflows to inf
    mid = (b + up) / 2.0  # exact in float64: two float32 neighbours differ in 24 bits at most
    # Round-half-even decides which neighbour the midpoint itself goes to.
    return math.nextafter(mid, _NEG_INF) if _round_f32(mid) > b else mid


@dataclass(frozen=True)
class _Plan:
    thresholds: tuple[float, ...]   # one per unique (input, border) split
    split_inputs: tuple[int, ...]   # input position of each unique split
    trees: tuple[tuple[int, tuple[int, ...]], ...]  # (leaf offset, unique-split ids, lowest bit first)


class ObliviousEnsemble:
    """A validated, ready-to-evaluate oblivious-tree ensemble."""

    def __init__(self, spec: Mapping[str, Any]):
        self.inputs: tuple[str, ...] = tuple(_req(spec, "inputs", list))
        depths = _req(spec, "tree_depth", list)
        if not all(type(d) is int for d in depths):  # bool and 1.5 are not depths
            raise ContractError("tree_depth", "must be a list of integers")
        split_input = _req(spec, "split_input", list)
        split_border = _req(spec, "split_border", list)
        leaves = _req(spec, "leaf_values", list)
        self.scale = float(_req(spec, "scale", (int, float)))
        self.bias = float(_req(spec, "bias", (int, float)))
        nan_true = spec.get("nan_as_true", [])
        if not isinstance(nan_true, list) or not all(isinstance(n, str) for n in nan_true):
            raise ContractError("nan_as_true", "must be a list of input names")
        nan_true = set(nan_true)

        if len(set(self.inputs)) != len(self.inputs):
            raise ContractError("inputs", "duplicate input names")
        if any(d < 0 or d > 16 for d in depths):
            raise ContractError("tree_depth", "each depth must be in 0..16")
        if len(split_input) != sum(depths) or len(split_border) != sum(depths):
            raise ContractError(
                "split_input", f"expected sum(tree_depth) = {sum(depths)} splits, got "
                f"{len(split_input)} inputs and {len(split_border)} borders")
        if len(leaves) != sum(2 ** d for d in depths):
            raise ContractError(
                "leaf_values", f"expected {sum(2 ** d for d in depths)} values, got {len(leaves)}")
        if not all(type(v) in (int, float) and math.isfinite(v) for v in leaves):
            raise ContractError("leaf_values", "must all be finite numbers")
        if not (math.isfinite(self.scale) and math.isfinite(self.bias)):
            raise ContractError("scale", "scale and bias must be finite")
        unknown = nan_true - set(self.inputs)
        if unknown:
            raise ContractError("nan_as_true", f"names unknown inputs {sorted(unknown)}")

        self.tree_depth = tuple(depths)
        self.leaf_values = tuple(float(v) for v in leaves)
        # The finest unit whose sums cannot overflow int64: sum over trees of the largest |leaf| < 2^61.
        bound, off = 0.0, 0
        for d in depths:
            bound += max((abs(v) for v in self.leaf_values[off: off + 2 ** d]), default=0.0)
            off += 2 ** d
        bits = MAX_LEAF_UNIT_BITS if bound < 1.0 else min(MAX_LEAF_UNIT_BITS, 60 - math.frexp(bound)[1])
        if bits < 0:
            raise ContractError("leaf_values", f"too large for exact summation (sum of |leaves| {bound:.3g})")
        self._unit = math.ldexp(1.0, -bits)
        self._fixed = tuple(round(math.ldexp(v, bits)) for v in self.leaf_values)
        self._nan_fill = tuple(_POS_INF if n in nan_true else _NEG_INF for n in self.inputs)

        unique: dict[tuple[int, float], int] = {}
        trees = []
        pos = offset = 0
        for d in depths:
            ids = []
            for j in range(pos, pos + d):
                i = split_input[j]
                if not isinstance(i, int) or not 0 <= i < len(self.inputs):
                    raise ContractError(f"split_input[{j}]", f"must index inputs, got {i!r}")
                b = split_border[j]
                if type(b) not in (int, float):
                    raise ContractError(f"split_border[{j}]", f"must be a number, got {b!r}")
                key = (i, float32_threshold(float(b)))
                ids.append(unique.setdefault(key, len(unique)))
            trees.append((offset, tuple(ids)))
            pos += d
            offset += 2 ** d
        self._plan = _Plan(
            thresholds=tuple(k[1] for k in unique),
            split_inputs=tuple(k[0] for k in unique),
            trees=tuple(trees),
        )
        self._np = None  # numpy arrays, built on first use of the numpy path

    @property
    def n_trees(self) -> int:
        return len(self.tree_depth)

    # -- pure Python --------------------------------------------------------------------------
    def predict(self, x: Sequence[float]) -> float:
        """Raw prediction for one input vector ordered like ``inputs``."""
        if len(x) != len(self.inputs):
            raise ContractError("x", f"expected {len(self.inputs)} values, got {len(x)}")
        fill = self._nan_fill
        xs = [v if v == v else fill[i] for i, v in enumerate(x)]
        plan = self._plan
        bits = [xs[i] > t for i, t in zip(plan.split_inputs, plan.thresholds)]
        leaves = self._fixed
        total = 0
        for offset, ids in plan.trees:
            idx = 0
            for j, s in enumerate(ids):
                if bits[s]:
                    idx |= 1 << j
            total += leaves[offset + idx]
        return float(total) * self._unit * self.scale + self.bias

    def predict_many(self, rows: Sequence[Sequence[float]], *, use_numpy: bool = False) -> list[float]:
        """Raw predictions for several vectors; ``use_numpy`` gives identical numbers, faster."""
        if not use_numpy:
            return [self.predict(r) for r in rows]
        return self._predict_numpy(rows)

    # -- numpy ---------------------------------------------------------------------------------
    def _numpy_arrays(self):
        if self._np is None:
            np = _numpy()
            plan = self._plan
            depth = max(self.tree_depth, default=0)
            n_unique = len(plan.thresholds)
            # Shallower trees are padded with a split on a constant-False column (index n_unique).
            ids = np.full((len(plan.trees), depth), n_unique, dtype=np.intp)
            for t, (_, tree_ids) in enumerate(plan.trees):
                ids[t, : len(tree_ids)] = tree_ids
            self._np = (
                np,
                np.asarray(plan.split_inputs, dtype=np.intp),
                np.asarray(plan.thresholds, dtype=np.float64),
                ids,
                (1 << np.arange(depth, dtype=np.intp)),
                np.asarray([o for o, _ in plan.trees], dtype=np.intp),
                np.asarray(self._fixed, dtype=np.int64),
                np.asarray(self._nan_fill, dtype=np.float64),
            )
        return self._np

    def _predict_numpy(self, rows) -> list[float]:
        np, split_inputs, thresholds, ids, weights, offsets, leaves, fill = self._numpy_arrays()
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.inputs):
            raise ContractError("x", f"expected rows of {len(self.inputs)} values, got shape {x.shape}")
        x = np.where(np.isnan(x), fill, x)
        bits = x[:, split_inputs] > thresholds
        bits = np.concatenate([bits, np.zeros((len(x), 1), dtype=bool)], axis=1)
        idx = (bits[:, ids] * weights).sum(axis=2) + offsets
        picked = leaves[idx]
        return (picked.sum(axis=1).astype(np.float64) * self._unit * self.scale + self.bias).tolist()


def _req(spec: Mapping[str, Any], key: str, typ):
    if key not in spec:
        raise ContractError(key, "missing")
    value = spec[key]
    if not isinstance(value, typ) or isinstance(value, bool):
        raise ContractError(key, f"wrong type {type(value).__name__}")
    return value


def _numpy():
    try:
        import numpy
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "numpy is not installed: `pip install zeta-router[fast]`, or use the pure-Python path"
        ) from exc
    return numpy


class CandidateScorer:
    """The ensemble specialised for routing: one query, several candidates.

    Every split tests either a query input (the same for all candidates of a decision) or a
    candidate input (a constant of each model).  So a tree's leaf index splits into a query part,
    computed once per decision, and a candidate part, computed once per model and cached
    (``candidate_base``).  Scoring C candidates then costs one pass over the query splits plus C
    leaf look-ups per tree, instead of C full evaluations.  Results are bit-identical to
    ``ObliviousEnsemble.predict`` (same leaves, same exact integer sums).

    ``input_plan`` gives, per ensemble input, ``("q", index in the query vector)`` or
    ``("c", index in the candidate vector)``.
    """

    def __init__(self, ensemble: ObliviousEnsemble, input_plan: Sequence[tuple[str, int]]):
        if len(input_plan) != len(ensemble.inputs):
            raise ContractError("input_plan", f"expected {len(ensemble.inputs)} entries, got {len(input_plan)}")
        self.ensemble = ensemble
        plan = ensemble._plan
        q_splits: dict[int, int] = {}   # unique split id -> position among query splits
        c_splits: dict[int, int] = {}
        for u, i in enumerate(plan.split_inputs):
            side = q_splits if input_plan[i][0] == "q" else c_splits
            side[u] = len(side)
        fill = ensemble._nan_fill
        # Query splits: (query vector index, threshold, NaN replacement).
        self._q = tuple((input_plan[plan.split_inputs[u]][1], plan.thresholds[u], fill[plan.split_inputs[u]])
                        for u in q_splits)
        self._c = tuple((input_plan[plan.split_inputs[u]][1], plan.thresholds[u], fill[plan.split_inputs[u]])
                        for u in c_splits)
        # Per query split, the (tree, weight) pairs it sets when true: one pass over true splits
        # builds every tree's query index.
        contrib: list[list[tuple[int, int]]] = [[] for _ in q_splits]
        self._tree_c: list[tuple[tuple[int, int], ...]] = []
        for t, (_, ids) in enumerate(plan.trees):
            cs = []
            for j, u in enumerate(ids):
                if u in q_splits:
                    contrib[q_splits[u]].append((t, 1 << j))
                else:
                    cs.append((c_splits[u], 1 << j))
            self._tree_c.append(tuple(cs))
        self._contrib = tuple(tuple(c) for c in contrib)
        self._offsets = tuple(o for o, _ in plan.trees)
        self._leaves = ensemble._fixed
        self._np = None

    def candidate_base(self, cand: Sequence[float]) -> tuple[int, ...]:
        """Per tree: leaf offset plus the candidate part of the leaf index, for one model."""
        bits = []
        for i, t, f in self._c:
            v = cand[i]
            bits.append((v if v == v else f) > t)
        return tuple(o + sum(w for s, w in cs if bits[s]) for o, cs in zip(self._offsets, self._tree_c))

    def _query_index(self, q: Sequence[float]) -> list[int]:
        idx = [0] * len(self._offsets)
        for (i, t, f), contrib in zip(self._q, self._contrib):
            v = q[i]
            if (v if v == v else f) > t:
                for tree, w in contrib:
                    idx[tree] += w
        return idx

    def score(self, q: Sequence[float], bases, *, use_numpy: bool = False) -> list[float]:
        """Raw predictions for one query vector and the candidates whose bases are given
        (a sequence of ``candidate_base`` tuples; on the numpy path also a 2-D integer array)."""
        scale, bias, unit = self.ensemble.scale, self.ensemble.bias, self.ensemble._unit
        if use_numpy:
            np, q_idx, q_thr, q_fill, q_tree_ids, q_w, leaves = self._numpy_arrays()
            x = np.asarray(q, dtype=np.float64)[q_idx]
            bits = np.where(np.isnan(x), q_fill, x) > q_thr
            qidx = (np.append(bits, False)[q_tree_ids] * q_w).sum(axis=1)
            picked = leaves[np.asarray(bases, dtype=np.intp) + qidx]
            return (picked.sum(axis=1).astype(np.float64) * unit * scale + bias).tolist()
        qidx = self._query_index(q)
        leaves = self._leaves
        return [float(sum([leaves[b + k] for b, k in zip(base, qidx)])) * unit * scale + bias
                for base in bases]

    def _numpy_arrays(self):
        if self._np is None:
            np = _numpy()
            n_q = len(self._q)
            per_tree: list[list[tuple[int, int]]] = [[] for _ in self._offsets]
            for s, contrib in enumerate(self._contrib):
                for tree, w in contrib:
                    per_tree[tree].append((s, w))
            depth = max((len(p) for p in per_tree), default=0)
            ids = np.full((len(per_tree), depth), n_q, dtype=np.intp)  # n_q: a constant-False column
            ws = np.zeros((len(per_tree), depth), dtype=np.intp)
            for t, p in enumerate(per_tree):
                for k, (s, w) in enumerate(p):
                    ids[t, k], ws[t, k] = s, w
            self._np = (np, np.asarray([i for i, _, _ in self._q], dtype=np.intp),
                        np.asarray([t for _, t, _ in self._q], dtype=np.float64),
                        np.asarray([f for _, _, f in self._q], dtype=np.float64), ids, ws,
                        np.asarray(self._leaves, dtype=np.int64))
        return self._np
