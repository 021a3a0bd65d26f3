"""Errors of dockvol's own; the HTTP layer maps each to one status (service/http/problems.py)."""

from __future__ import annotations

from typing import Any


class DockvolError(Exception):
    """Base class. `detail` is safe to show a client; `extra` adds problem members."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DockvolError):
    """The named resource does not exist."""


class Conflict(DockvolError):
    """The resource exists already, or is in use (then `extra["used_by"]` says by whom)."""


class Forbidden(DockvolError):
    """The request is well-formed but policy refuses it (not dockvol's, outside the bind roots...)."""


class InvalidInput(DockvolError):
    """Input that passed the schema but not a rule that needs context; `extra["errors"]`: field -> messages."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, errors={field: [message]})


class PreconditionFailed(DockvolError):
    """If-Match did not match the resource's current ETag."""


class EngineUnavailable(DockvolError):
    """The engine could not be reached or did not answer in time (retry later)."""


class EngineFailure(DockvolError):
    """The engine answered with an error dockvol has no better name for."""


class BackupFailure(DockvolError):
    """The backup engine (restic) failed, or cannot reach a repository (502: not the caller's fault)."""


class Unauthenticated(DockvolError):
    """No bearer token, or one dockvol does not know."""


class EngineRejected(DockvolError):
    """The engine refused a configuration as invalid (its 400), e.g. a command the image lacks."""


class TooLarge(DockvolError):
    """An upload over the configured cap."""


class QuotaExceeded(Forbidden):
    """Creating it would take the project past a quota: `extra` has `quota`, `limit`, `used`."""

    def __init__(self, quota: str, limit: int, used: int) -> None:
        super().__init__(
            f"the project's {quota} quota is {limit} and it holds {used}", quota=quota, limit=limit, used=used
        )
