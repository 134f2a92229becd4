"""The one exception tree of Zeta Router.

    ZetaError                      base of everything raised on purpose
    ├── ContractError              a record, table or spec breaks its documented schema;
    │   │                          carries .field and .problem (and .row where there is one)
    │   ├── SchemaVersionError     a schema_version / format_version this code was not told to trust
    │   └── UnknownOpError         a feature op outside the closed set
    ├── ArtifactError              an artifact cannot be used; carries .path
    │   ├── ArtifactNotFoundError  no artifact (or no CURRENT pointer) where one was expected
    │   ├── ArtifactIntegrityError a file's sha256 differs from the manifest (tampered or torn)
    │   └── ArtifactParityError    export: runtime predictions differ from CatBoost's
    ├── BackendError               a model could not answer (load failure, generation error); carries .model
    │   ├── BackendTimeoutError    no answer, or no free instance of the model, before the deadline
    │   ├── ContextOverflowError   the prompt does not fit the model's context window
    │   └── ModelUnavailableError  the model cannot serve until its file changes (corrupt file, larger
    │                              than the whole memory budget): out of the pool, not cooling down
    ├── LockHeldError              a curated store or registry is being written by another process; carries
    │                              .path and .pid (the holder)
    ├── ServingError               the serving layer cannot answer a request: no capable model, an unknown
    │                              model, every fallback failed; carries .status (HTTP), .code, .param
    └── MissingDependencyError     an optional dependency (numpy, llama_cpp, the serve extra) is absent

`ContractError` subclasses `ValueError` so callers that only know the standard library can still
catch bad input as a value problem.  The runtime's `Router.decide` never lets any of these escape
for an operational problem: it falls back and says why in `Decision.reason`.
"""

from __future__ import annotations

__all__ = [
    "ZetaError",
    "ContractError",
    "SchemaVersionError",
    "UnknownOpError",
    "ArtifactError",
    "ArtifactNotFoundError",
    "ArtifactIntegrityError",
    "ArtifactParityError",
    "MissingDependencyError",
    "BackendError",
    "BackendTimeoutError",
    "ContextOverflowError",
    "ModelUnavailableError",
    "ServingError",
    "LockHeldError",
]


class ZetaError(Exception):
    """Base class of every error Zeta Router raises on purpose."""


class ContractError(ZetaError, ValueError):
    """Input that breaks a documented contract.

    The message always names the field and the problem, e.g.
    ``propensity: must be in (0, 1], got 1.5 (line 12)``.
    """

    def __init__(self, field: str, problem: str, *, row: int | None = None, source: str | None = None):
        self.field = field
        self.problem = problem
        self.row = row
        self.source = source
        where = []
        if source is not None:
            where.append(source)
        if row is not None:
            where.append(f"row {row}")
        suffix = f" ({', '.join(where)})" if where else ""
        super().__init__(f"{field}: {problem}{suffix}")


class SchemaVersionError(ContractError):
    """A schema or format version that this code does not know how to read."""


class UnknownOpError(ContractError):
    """A feature op outside the closed set this runtime implements."""


class ArtifactError(ZetaError):
    """An artifact that cannot be used.  ``path`` names the offending file or directory."""

    def __init__(self, message: str, *, path: str | None = None):
        self.path = path
        super().__init__(f"{message} [{path}]" if path else message)


class ArtifactNotFoundError(ArtifactError):
    """No artifact, or no CURRENT pointer, where one was expected."""


class ArtifactIntegrityError(ArtifactError):
    """A file whose sha256 does not match the manifest: tampered with, torn or truncated."""


class ArtifactParityError(ArtifactError):
    """Export refused: the runtime's predictions differ from the trainer's."""


class MissingDependencyError(ZetaError, ImportError):
    """An optional dependency is not installed.  The message says which extra brings it."""


class BackendError(ZetaError):
    """A model failed to answer.  ``cooldown`` says whether the model itself is to blame (a crash, a
    load failure, a timeout) and should rest, rather than this one request (a prompt too long for it)."""

    cooldown = True

    def __init__(self, model: str, message: str):
        self.model = model
        super().__init__(f"{model}: {message}")


class BackendTimeoutError(BackendError):
    """No answer, or no free instance of the model, before the request's deadline."""


class ContextOverflowError(BackendError):
    """The prompt does not fit the model's context window: another model may take it, this one is fine."""

    cooldown = False


class ModelUnavailableError(BackendError):
    """A failure that trying again cannot cure: the model's file is corrupt, missing, or the model alone
    needs more than the whole memory budget.  The backend keeps the model out of the pool until its
    file changes (another inode, size or modification time), so fallback spends no hop on it."""

    cooldown = False  # not resting: excluded outright, until the file changes


class LockHeldError(ZetaError):
    """Another writer holds the lock of a curated store or a registry (``router_runtime._lock``)."""

    def __init__(self, message: str, *, path: str | None = None, pid: int | None = None):
        self.path = path
        self.pid = pid
        super().__init__(message)


class ServingError(ZetaError):
    """The serving layer cannot answer a request.  ``status`` is the HTTP status the server answers with,
    ``code`` a short machine-readable reason, ``param`` the request field at fault (if one is)."""

    def __init__(self, message: str, *, status: int = 503, code: str = "unavailable", param: str | None = None,
                 attempts: tuple = ()):
        self.status = status
        self.code = code
        self.param = param
        self.attempts = attempts
        super().__init__(message)
