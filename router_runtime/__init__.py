"""Zeta Router runtime: load a trained artifact and route queries among local models.

Standard library only at import (numpy is an optional accelerator, imported when a Router is built
with it).  Everything a host service needs is importable from here; submodules are implementation.
"""

from .artifact import (
    FORMAT_VERSION,
    Artifact,
    current_version,
    list_versions,
    load_artifact,
    set_current,
    write_artifact,
)
from .errors import (
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactParityError,
    ContractError,
    MissingDependencyError,
    SchemaVersionError,
    UnknownOpError,
    ZetaError,
)
from .features import Feature, FeatureSpec, default_feature_spec
from .logger import OutcomeLogger
from .pool import ModelInfo, load_pool
from .records import OUTCOME_SCHEMA_VERSION, OutcomeRecord, parse_outcome, parse_outcome_line
from .router import CandidateScore, Decision, Outcome, Router
from .trees import ObliviousEnsemble

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # routing
    "Router", "Decision", "CandidateScore", "Outcome",
    # artifacts and the registry
    "Artifact", "FORMAT_VERSION", "load_artifact", "write_artifact", "set_current", "current_version",
    "list_versions", "ObliviousEnsemble",
    # features and the pool
    "Feature", "FeatureSpec", "default_feature_spec", "ModelInfo", "load_pool",
    # outcome records
    "OUTCOME_SCHEMA_VERSION", "OutcomeRecord", "parse_outcome", "parse_outcome_line", "OutcomeLogger",
    # errors
    "ZetaError", "ContractError", "SchemaVersionError", "UnknownOpError", "ArtifactError",
    "ArtifactNotFoundError", "ArtifactIntegrityError", "ArtifactParityError", "MissingDependencyError",
]
