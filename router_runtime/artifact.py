"""Artifacts: the versioned JSON a training run hands to the runtime.

An artifact is a directory with two files (documented in ``artifacts/README.md``):

- ``router.json`` (``format_version`` 1): feature spec with its fitted statistics, model pool with
  capabilities and cost model, the quality ensemble as plain arrays, calibration, policy defaults.
- ``manifest.json`` (``manifest_version`` 1): sha256 and size of every other file, the training data
  window and row counts, evaluation metrics, parent version, created_at, code versions.

Loading verifies hashes first, then versions, then every field, and raises a precise subclass of
``ArtifactError`` / ``ContractError``.  Nothing in an artifact is ever executed: it is JSON read with
the standard library.

New versions are written to a temporary directory of the registry (its layout and the CURRENT
pointer are ``router_runtime.registry``'s) and renamed into place, so a version appears whole or
not at all.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from ._checks import finite
from ._files import read_regular_file
from ._atomic import fsync_dir, write_new_file
from .errors import (
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ContractError,
    SchemaVersionError,
)
from .candidates import IDENTITY_PREFIX, candidate_vector, is_candidate_input
from .features import FeatureSpec
from .policy import check_cost_weight
from .pool import ModelInfo, parse_model
from .registry import (  # noqa: F401  (the registry names re-exported at their old path)
    _MANIFEST_OWNED,
    CURRENT_FILE,
    MANIFEST_FILE,
    ROUTER_FILE,
    VERSIONS_DIR,
    check_version_name,
    current_version,
    list_versions,
    new_version_name,
    resolve_artifact_dir,
    set_current,
    versions_dir,
)
from .trees import CandidateScorer, ObliviousEnsemble

__all__ = [
    "FORMAT_VERSION",
    "SUPPORTED_FORMAT_VERSIONS",
    "MANIFEST_VERSION",
    "Artifact",
    "load_artifact",
    "write_artifact",
    "current_version",
    "set_current",
    "list_versions",
    "resolve_artifact_dir",
]

FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = frozenset({1})
MANIFEST_VERSION = 1
VERSION_DIR_MODE = 0o755  # its files are 0o644 (router_runtime._atomic)
MAX_ARTIFACT_BYTES = 256 << 20  # refuse absurd files (enforced while reading, not trusted from stat)


@dataclass(frozen=True)
class Policy:
    """Defaults for the decision rule ``utility = quality - cost_weight * cost / cost_scale``."""

    cost_weight: float
    cost_scale: float
    quality_floor: float = 0.0
    # Mean query length (chars) of the training data, the query ``cost_scale`` was priced on; lets a
    # Router re-price the scale on a declared serving pool (whose costs may be in another unit).
    # Absent in artifacts written before it: those keep ``cost_scale`` as it is.
    typical_chars: float | None = None


@dataclass(frozen=True)
class LengthModel:
    """The optional second ensemble: raw prediction = log1p(completion tokens) of a (query, model)
    pair, over the same kind of inputs as the quality model (matched by name, its own input plan)."""

    ensemble: ObliviousEnsemble
    candidate_inputs: tuple[str, ...]
    scorer: CandidateScorer

    def candidate_vector(self, model: ModelInfo) -> tuple[float, ...]:
        return candidate_vector(self.candidate_inputs, model)


LENGTH_TARGET = "log1p_completion_tokens"
PRIOR_TARGET = "quality"


@dataclass(frozen=True)
class DescriptorPrior:
    """The optional cold-start ensemble: quality of a (query, model) pair from the query's features
    and the model's descriptors only (``router_runtime.candidates.prior_input_names``); it scores the
    pool models the quality model has no outcomes for."""

    ensemble: ObliviousEnsemble
    candidate_inputs: tuple[str, ...]
    scorer: CandidateScorer

    def candidate_vector(self, model: ModelInfo) -> tuple[float, ...]:
        return candidate_vector(self.candidate_inputs, model)


@dataclass(frozen=True)
class Artifact:
    """A verified artifact, ready for the Router."""

    version: str
    path: str | None
    feature_spec: FeatureSpec
    pool: tuple[ModelInfo, ...]
    ensemble: ObliviousEnsemble
    policy: Policy
    clip_quality: tuple[float, float]
    input_plan: tuple[tuple[str, int], ...]   # per ensemble input: ("q", feature index) or ("c", slot)
    candidate_inputs: tuple[str, ...]         # names of the per-candidate inputs, in slot order
    manifest: Mapping[str, Any]
    scorer: CandidateScorer
    # Completion tokens per (query, model), when the training data carried them (key ``length_model``,
    # optional: older artifacts and runtimes that do not know the key route as before).
    length: LengthModel | None = None
    # Quality of a model without outcomes from its descriptors (key ``descriptor_prior``, optional),
    # and why an artifact's prior is not used when it has one this runtime cannot read.
    prior: DescriptorPrior | None = None
    prior_problem: str | None = None

    def model(self, name: str) -> ModelInfo | None:
        for m in self.pool:
            if m.name == name:
                return m
        return None

    def knows(self, name: str) -> bool:
        """True when the quality model learned this model's identity (it had outcomes in training)."""
        return IDENTITY_PREFIX + name in self.candidate_inputs

    def candidate_vector(self, model: ModelInfo) -> tuple[float, ...]:
        """The per-candidate inputs of ``model`` (``router_runtime.candidates``)."""
        return candidate_vector(self.candidate_inputs, model)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_capped(path: Path) -> bytes:
    return read_regular_file(path, limit=MAX_ARTIFACT_BYTES)


# No field of an artifact holds an integer beyond int64 (counts, depths, indices, code points): a
# larger literal is refused with its place, before Python's float() or int() (OverflowError, the
# 4,300-digit ValueError) or the compiled engine's C integers meet it.
MAX_ARTIFACT_INT = (1 << 63) - 1


class _HugeInt:
    """An integer literal too large for any artifact field, kept as its digit count to name it."""

    __slots__ = ("digits",)

    def __init__(self, digits: int):
        self.digits = digits


def _parse_int(text: str) -> int | _HugeInt:
    if len(text.lstrip("-")) > 19:  # cheap: never converts thousands of digits
        return _HugeInt(len(text.lstrip("-")))
    v = int(text)
    return v if -MAX_ARTIFACT_INT <= v <= MAX_ARTIFACT_INT else _HugeInt(len(text.lstrip("-")))


def _loads(data: bytes, path: Path) -> Any:
    try:
        obj = json.loads(data.decode("utf-8"), parse_int=_parse_int)
        # NaN/Infinity (and literals like 1e400 that overflow) parse to floats; refuse them naming where.
        where = _bad_number_at(obj, "")
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{path.name}: invalid UTF-8 at byte {exc.start}", path=str(path)) from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path.name}: invalid JSON ({exc.msg} at char {exc.pos})", path=str(path)) from None
    except RecursionError:
        raise ArtifactError(f"{path.name}: JSON nested too deeply", path=str(path)) from None
    if where is not None:
        at, v = where
        if isinstance(v, _HugeInt):
            raise ArtifactError(f"{path.name}: integer of {v.digits} digits at {at or '<top>'} is out of "
                                f"range (at most {MAX_ARTIFACT_INT})", path=str(path))
        name = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(v)]
        raise ArtifactError(f"{path.name}: non-finite number {name} at {at or '<top>'}", path=str(path))
    return obj


def _bad_number_at(v: Any, at: str) -> tuple[str, Any] | None:
    if isinstance(v, float):
        return None if math.isfinite(v) else (at, v)
    if isinstance(v, _HugeInt):
        return at, v
    if isinstance(v, dict):
        items = ((f"{at}.{k}" if at else str(k), x) for k, x in v.items())
    elif isinstance(v, list):
        items = ((f"{at}[{i}]", x) for i, x in enumerate(v))
    else:
        return None
    for sub, x in items:
        found = _bad_number_at(x, sub)
        if found is not None:
            return found
    return None


def load_artifact(path: str | os.PathLike) -> Artifact:
    """Load and verify an artifact.  Raises ArtifactError / ContractError subclasses, never anything vaguer."""
    d = resolve_artifact_dir(path)
    manifest_path = d / MANIFEST_FILE
    manifest = _loads(_read_capped(manifest_path), manifest_path)
    if not isinstance(manifest, dict):
        raise ArtifactError("manifest.json must be a JSON object", path=str(manifest_path))
    mv = manifest.get("manifest_version")
    if type(mv) is not int or mv != MANIFEST_VERSION:  # True == 1 in Python, but is not the int 1
        raise SchemaVersionError("manifest_version", f"unknown version {mv!r}; this runtime reads {MANIFEST_VERSION}",
                                 source=str(manifest_path))
    files = manifest.get("files")
    if not isinstance(files, dict) or ROUTER_FILE not in files:
        raise ArtifactError("manifest.json lists no router.json under 'files'", path=str(manifest_path))
    blobs: dict[str, bytes] = {}
    for name, meta in files.items():
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
            raise ArtifactError(f"manifest entry for {name!r} has no sha256", path=str(manifest_path))
        # Only plain file names: no path, no hidden names, and nothing that ``stat`` chokes on.
        if not name or "/" in name or "\\" in name or "\x00" in name or name.startswith("."):
            raise ArtifactError(f"manifest names a file outside the artifact: {name!r}", path=str(manifest_path))
        data = _read_capped(d / name)
        digest = _sha256(data)
        if digest != meta["sha256"]:
            raise ArtifactIntegrityError(
                f"{name}: sha256 {digest[:12]}… does not match the manifest's {meta['sha256'][:12]}… "
                "(tampered, truncated or half-written)", path=str(d / name))
        blobs[name] = data
    router = _loads(blobs[ROUTER_FILE], d / ROUTER_FILE)
    if isinstance(router, dict) and manifest.get("artifact_version") != router.get("version"):
        raise ArtifactIntegrityError(
            f"manifest is for version {manifest.get('artifact_version')!r} but router.json is "
            f"{router.get('version')!r}", path=str(manifest_path))
    try:
        return parse_router(router, manifest=manifest, path=str(d))
    except ContractError as exc:
        if exc.source is None:
            exc.source = str(d / ROUTER_FILE)
            exc.args = (f"{exc.field}: {exc.problem} ({exc.source})",)
        raise


def parse_router(router: Any, *, manifest: Mapping[str, Any] | None = None, path: str | None = None) -> Artifact:
    """Validate a decoded ``router.json`` and build the runtime objects it describes."""
    if not isinstance(router, dict):
        raise ContractError("router", "must be a JSON object")
    fv = router.get("format_version")
    # Type first: an unhashable value (a list) would make the ``in`` test raise TypeError.
    if type(fv) is not int or fv not in SUPPORTED_FORMAT_VERSIONS:
        raise SchemaVersionError(
            "format_version", f"unknown format {fv!r}; this runtime reads {sorted(SUPPORTED_FORMAT_VERSIONS)}")
    version = router.get("version")
    if not isinstance(version, str) or not version:
        raise ContractError("version", "must be a non-empty string")
    for key in ("feature_spec", "pool", "quality_model", "policy"):
        if key not in router:
            raise ContractError(key, "missing")
    spec = FeatureSpec.from_json(router["feature_spec"])
    if spec.needs_fit:
        raise ContractError("feature_spec", "has unfitted statistics (a token vocab or static embedding table missing)")
    pool_raw = router["pool"]
    if not isinstance(pool_raw, list) or not pool_raw:
        raise ContractError("pool", "must be a non-empty list of models")
    pool = tuple(parse_model(m, where=f"pool[{i}]") for i, m in enumerate(pool_raw))
    names = [m.name for m in pool]
    if len(set(names)) != len(names):
        raise ContractError("pool", "duplicate model names")

    ensemble = _ensemble(router["quality_model"], "quality_model")
    qindex = {n: i for i, n in enumerate(spec.output_names)}
    plan, cand_inputs = _input_plan(ensemble, qindex, "quality_model")
    length = None
    if router.get("length_model") is not None:
        lm = router["length_model"]
        if not isinstance(lm, dict) or lm.get("target") != LENGTH_TARGET:
            raise ContractError("length_model.target", f"must be {LENGTH_TARGET!r}")
        lens = _ensemble(lm, "length_model")
        lplan, lcand = _input_plan(lens, qindex, "length_model")
        length = LengthModel(lens, tuple(lcand), CandidateScorer(lens, lplan))
    prior, prior_problem = _prior(router.get("descriptor_prior"), qindex)

    calib = router.get("calibration", {"kind": "clip", "low": 0.0, "high": 1.0})
    if not isinstance(calib, dict) or calib.get("kind") != "clip":
        raise ContractError("calibration.kind", "must be 'clip'")
    low, high = _finite(calib, "low", "calibration"), _finite(calib, "high", "calibration")
    if low > high:
        raise ContractError("calibration", f"low {low} > high {high}")

    pol = router["policy"]
    if not isinstance(pol, dict):
        raise ContractError("policy", "must be an object")
    policy = Policy(
        cost_weight=_finite(pol, "cost_weight", "policy"),
        cost_scale=_finite(pol, "cost_scale", "policy"),
        quality_floor=_finite(pol, "quality_floor", "policy") if "quality_floor" in pol else 0.0,
        typical_chars=_finite(pol, "typical_chars", "policy") if pol.get("typical_chars") is not None else None,
    )
    if policy.typical_chars is not None and policy.typical_chars < 0:
        raise ContractError("policy.typical_chars", f"must be >= 0, got {policy.typical_chars}")
    check_cost_weight(policy.cost_weight, "policy.cost_weight")
    if policy.cost_scale <= 0:
        raise ContractError("policy.cost_scale", f"must be > 0, got {policy.cost_scale}")
    return Artifact(
        version=version,
        path=path,
        feature_spec=spec,
        pool=pool,
        ensemble=ensemble,
        policy=policy,
        clip_quality=(low, high),
        input_plan=tuple(plan),
        candidate_inputs=tuple(cand_inputs),
        manifest=manifest or {},
        scorer=CandidateScorer(ensemble, plan),
        length=length,
        prior=prior,
        prior_problem=prior_problem,
    )


def _prior(doc: Any, qindex: Mapping[str, int]) -> tuple[DescriptorPrior | None, str | None]:
    """The descriptor prior, or (None, why) when its inputs include names this runtime does not know:
    a newer runtime may describe models by more than this one reads, and an unreadable prior must
    not cost the whole artifact (cold models are then scored as before it existed)."""
    if doc is None:
        return None, None
    if not isinstance(doc, dict) or doc.get("target") != PRIOR_TARGET:
        raise ContractError("descriptor_prior.target", f"must be {PRIOR_TARGET!r}")
    ens = _ensemble(doc, "descriptor_prior")
    unknown = [n for n in ens.inputs if isinstance(n, str) and n not in qindex and not is_candidate_input(n)]
    if unknown:
        return None, (f"descriptor_prior not used: inputs {unknown} are unknown to this runtime "
                      "(written by a newer one); models without outcomes are scored by the quality model")
    plan, cand = _input_plan(ens, qindex, "descriptor_prior")
    return DescriptorPrior(ens, tuple(cand), CandidateScorer(ens, plan)), None


def _ensemble(qm: Any, where: str) -> ObliviousEnsemble:
    if not isinstance(qm, dict) or qm.get("kind") != "oblivious_trees":
        raise ContractError(f"{where}.kind", "must be 'oblivious_trees'")
    try:
        return ObliviousEnsemble(qm)
    except ContractError as exc:
        raise ContractError(f"{where}.{exc.field}", exc.problem) from None
    except (TypeError, ValueError) as exc:
        # The evaluator converts with int()/float()/set(): a string depth, a null border or a list
        # in nan_as_true surfaces as TypeError/ValueError.  Loading promises nothing vaguer.
        raise ContractError(where, f"malformed ensemble: {exc}") from None


def _input_plan(ensemble: ObliviousEnsemble, qindex: Mapping[str, int],
                where: str) -> tuple[list[tuple[str, int]], list[str]]:
    """Per ensemble input ("q", feature index) or ("c", candidate slot), and the candidate inputs."""
    cand_inputs: list[str] = []
    plan = []
    for name in ensemble.inputs:
        if not isinstance(name, str):
            raise ContractError(f"{where}.inputs", f"input names must be strings, got {name!r}")
        if name in qindex:
            plan.append(("q", qindex[name]))
        elif is_candidate_input(name):
            plan.append(("c", len(cand_inputs)))
            cand_inputs.append(name)
        else:
            raise ContractError(f"{where}.inputs",
                                f"input {name!r} is neither a feature of the spec nor a candidate input")
    return plan, cand_inputs


def _finite(obj: Mapping[str, Any], key: str, where: str) -> float:
    return finite(obj.get(key), f"{where}.{key}")


# -- writing and the registry ----------------------------------------------------------------------

def _dumps(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, allow_nan=False, indent=1, sort_keys=False) + "\n").encode("utf-8")


def write_artifact(root: str | os.PathLike, router: dict[str, Any], manifest: dict[str, Any]) -> Path:
    """Write a new version into the registry at ``root`` and return its directory.

    ``router["version"]`` is filled in if empty.  The version appears atomically (rename of a
    complete temporary directory); CURRENT is not touched: promotion is a separate, explicit step.
    """
    root = Path(root)
    versions = versions_dir(root)
    # Everything is checked and serialised before the first byte hits the disk, so a refusal
    # leaves the registry exactly as it was (not even an empty versions/ directory).
    router_bytes = _json_bytes(dict(router, version=""), "router")
    if not router.get("version"):
        router = dict(router, version=new_version_name(router_bytes))
    version = check_version_name(router["version"], "version")
    router_bytes = _json_bytes(router, "router")
    parse_router(json.loads(router_bytes))  # refuse to write what the runtime could not load
    owned = [k for k in _MANIFEST_OWNED if k in manifest]
    if owned:
        # These describe the files written here; a caller's value would make the artifact lie
        # (or, for manifest_version, unloadable).
        raise ContractError(f"manifest.{owned[0]}", "is written by write_artifact; do not pass it")
    full_manifest = {
        "manifest_version": MANIFEST_VERSION,
        "artifact_version": version,
        "format_version": router["format_version"],
        "created_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        **manifest,
        "files": {ROUTER_FILE: {"sha256": _sha256(router_bytes), "bytes": len(router_bytes)}},
    }
    manifest_bytes = _json_bytes(full_manifest, "manifest")
    final = versions / version
    if final.exists():
        raise ArtifactError(f"version {version} already exists", path=str(final))
    versions.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=versions))
    try:
        # mkdtemp makes it 0700, which the rename keeps: a runtime under another user could not
        # read the version and would route by rules without saying why.  Explicit, like the files'.
        os.chmod(tmp, VERSION_DIR_MODE)
        for name, data in ((ROUTER_FILE, router_bytes), (MANIFEST_FILE, manifest_bytes)):
            write_new_file(tmp / name, data)
        fsync_dir(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if final.exists():  # another writer created the same version since the check above
                raise ArtifactError(f"version {version} already exists", path=str(final)) from None
            raise
    except BaseException:
        # A half-written temp dir is invisible to list_versions but would pile up forever.
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(versions)
    return final


def _json_bytes(obj: Any, where: str) -> bytes:
    try:
        return _dumps(obj)
    except (TypeError, ValueError) as exc:  # NaN/Infinity (allow_nan=False) or a non-JSON type
        bad = _bad_number_at(obj, "")
        if bad is not None:  # name the field: json's own message does not say where
            raise ContractError(f"{where}.{bad[0]}", f"non-finite number {bad[1]!r} cannot be written as JSON") from None
        raise ContractError(where, f"not writable as JSON: {exc}") from None
