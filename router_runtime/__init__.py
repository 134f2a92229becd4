"""Zeta Router runtime: load a trained artifact and route queries among local models.

Standard library only at import (numpy is an optional accelerator, imported when a Router is built
with it).  ``import router_runtime`` loads the core only: an edge service that calls ``decide()``
pays for no HTTP stack.  The serving names (``RoutingService``, the backends, the server, metrics,
calibration) live in ``router_runtime.serving`` and are resolved here on first use (PEP 562); so are
llama-cpp-python and the ASGI stack, imported only when a LlamaBackend or a server is built.
Everything a host service needs is importable from here; submodules are implementation.
"""

from typing import TYPE_CHECKING

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
    BackendError,
    BackendTimeoutError,
    ContextOverflowError,
    ContractError,
    LockHeldError,
    MissingDependencyError,
    ModelUnavailableError,
    SchemaVersionError,
    ServingError,
    UnknownOpError,
    ZetaError,
)
from .features import Feature, FeatureSpec, default_feature_spec
from .logger import OutcomeLogger
from .policy import Exploration
from .pool import ModelInfo, PoolSettings, dump_pool, load_pool, load_pool_settings, update_pool_file
from .pool_check import check_pool
from .records import OUTCOME_SCHEMA_VERSION, OutcomeRecord, parse_outcome, parse_outcome_line
from .registry import history, promote, rollback
from .routed_text import RoutedText, routed_text
from .router import ENGINES, CandidateScore, Decision, Outcome, Router, available_engines
from .trees import ObliviousEnsemble

if TYPE_CHECKING:  # what __getattr__ resolves, for type checkers and editors
    from .serving.backends import Backend, BackendBase, Finished, FunctionBackend, GenerationRequest, TextDelta
    from .serving.calibration import calibrate_pool
    from .serving.http import build_service, create_app, serve
    from .serving.llama import LlamaBackend
    from .serving.metrics import Metrics
    from .serving.service import Attempt, Completion, CompletionStream, RouteOptions, RoutingService

__version__ = "0.1.0"

# Serving name -> the submodule of router_runtime.serving that defines it.
_LAZY = {
    **dict.fromkeys(("RoutingService", "RouteOptions", "Completion", "CompletionStream", "Attempt"), "service"),
    **dict.fromkeys(("Backend", "BackendBase", "FunctionBackend", "GenerationRequest", "TextDelta", "Finished"),
                    "backends"),
    "LlamaBackend": "llama",
    "Metrics": "metrics",
    **dict.fromkeys(("create_app", "serve", "build_service"), "http"),
    "calibrate_pool": "calibration",
}


def __getattr__(name: str):
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.serving.{where}"), name)
    globals()[name] = value  # resolved once; later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "__version__",
    # routing
    "Router", "Decision", "CandidateScore", "Outcome", "Exploration", "ENGINES", "available_engines",
    # artifacts and the registry
    "Artifact", "FORMAT_VERSION", "load_artifact", "write_artifact", "set_current", "current_version",
    "list_versions", "ObliviousEnsemble", "promote", "rollback", "history",
    # features and the pool
    "Feature", "FeatureSpec", "default_feature_spec", "RoutedText", "routed_text", "ModelInfo", "load_pool", "dump_pool", "update_pool_file",
    "PoolSettings", "load_pool_settings", "check_pool",
    # serving: route -> generate -> record, backends, the OpenAI-compatible server
    "RoutingService", "RouteOptions", "Completion", "CompletionStream", "Attempt", "Backend", "BackendBase",
    "FunctionBackend", "LlamaBackend", "GenerationRequest", "TextDelta", "Finished", "Metrics", "create_app",
    "serve", "build_service", "calibrate_pool",
    # outcome records
    "OUTCOME_SCHEMA_VERSION", "OutcomeRecord", "parse_outcome", "parse_outcome_line", "OutcomeLogger",
    # errors
    "ZetaError", "ContractError", "SchemaVersionError", "UnknownOpError", "ArtifactError",
    "ArtifactNotFoundError", "ArtifactIntegrityError", "ArtifactParityError", "MissingDependencyError",
    "BackendError", "BackendTimeoutError", "ContextOverflowError", "ModelUnavailableError", "ServingError",
    "LockHeldError",
]
