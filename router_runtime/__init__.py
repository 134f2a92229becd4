"""Zeta Router runtime: load a trained artifact and route queries among local models.

Standard library only at import (numpy is an optional accelerator, imported when a Router is built
with it; llama-cpp-python and the ASGI stack are imported when a LlamaBackend or a server is built).
Everything a host service needs is importable from here; submodules are implementation.
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
from .backends import Backend, BackendBase, Finished, FunctionBackend, GenerationRequest, TextDelta
from .calibration import calibrate_pool
from .errors import (
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactParityError,
    BackendError,
    BackendTimeoutError,
    ContextOverflowError,
    ContractError,
    MissingDependencyError,
    SchemaVersionError,
    ServingError,
    UnknownOpError,
    ZetaError,
)
from .features import Feature, FeatureSpec, default_feature_spec
from .llama_backend import LlamaBackend
from .logger import OutcomeLogger
from .metrics import Metrics
from .policy import Exploration
from .pool import ModelInfo, dump_pool, load_pool, update_pool_file
from .records import OUTCOME_SCHEMA_VERSION, OutcomeRecord, parse_outcome, parse_outcome_line
from .registry import history, promote, rollback
from .router import ENGINES, CandidateScore, Decision, Outcome, Router, available_engines
from .server import build_service, create_app, serve
from .serving import Attempt, Completion, CompletionStream, RouteOptions, RoutingService
from .trees import ObliviousEnsemble

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # routing
    "Router", "Decision", "CandidateScore", "Outcome", "Exploration", "ENGINES", "available_engines",
    # artifacts and the registry
    "Artifact", "FORMAT_VERSION", "load_artifact", "write_artifact", "set_current", "current_version",
    "list_versions", "ObliviousEnsemble", "promote", "rollback", "history",
    # features and the pool
    "Feature", "FeatureSpec", "default_feature_spec", "ModelInfo", "load_pool", "dump_pool", "update_pool_file",
    # serving: route -> generate -> record, backends, the OpenAI-compatible server
    "RoutingService", "RouteOptions", "Completion", "CompletionStream", "Attempt", "Backend", "BackendBase",
    "FunctionBackend", "LlamaBackend", "GenerationRequest", "TextDelta", "Finished", "Metrics", "create_app",
    "serve", "build_service", "calibrate_pool",
    # outcome records
    "OUTCOME_SCHEMA_VERSION", "OutcomeRecord", "parse_outcome", "parse_outcome_line", "OutcomeLogger",
    # errors
    "ZetaError", "ContractError", "SchemaVersionError", "UnknownOpError", "ArtifactError",
    "ArtifactNotFoundError", "ArtifactIntegrityError", "ArtifactParityError", "MissingDependencyError",
    "BackendError", "BackendTimeoutError", "ContextOverflowError", "ServingError",
]
