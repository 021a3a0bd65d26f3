"""What /api/v1/backups and /api/v1/restores read and write."""

from __future__ import annotations

import marshmallow as ma

from ...domain.backups.restores import Restore
from ...domain.backups.runs import Backup
from ...json_types import JSON
from ..fields import CreatedAt, StrictBool, VolumeName
from ..pagination import PageArgs
from ..repositories.schemas import REPOSITORY_NAME
from ..smorest import Schema

STATUSES = ["running", "completed", "failed"]
BACKUP_ID = ma.fields.String(
    required=True,
    validate=ma.validate.Length(min=1, max=128),
    metadata={
        "description": "A backup's id (its restic snapshot's), or its run's while it ran",
        "example": "run-0a1b2c3d4e5f6a7b",
    },
)


class ProgressSchema(Schema):
    bytes_done = ma.fields.Integer(allow_none=True)
    bytes_total = ma.fields.Integer(allow_none=True, metadata={"description": "null: not known beforehand"})


class BackupSchema(Schema):
    id = ma.fields.String(
        required=True,
        metadata={"description": "The restic snapshot's id; while it runs (or once it failed), its run's (`run-...`)"},
    )
    volume = ma.fields.String(required=True)
    node = ma.fields.String(required=True)
    project = ma.fields.String(required=True)
    repository = ma.fields.String(required=True)
    policy = ma.fields.String(allow_none=True, metadata={"description": "null: backed up on request"})
    scheduled_at = ma.fields.String(
        allow_none=True,
        metadata={
            "format": "date-time",
            "description": "The policy's scheduled time it was made for (null: on request)",
        },
    )
    status = ma.fields.String(required=True, metadata={"enum": STATUSES})
    started_at = CreatedAt()
    finished_at = CreatedAt()
    progress = ma.fields.Nested(ProgressSchema)
    size_bytes = ma.fields.Integer(allow_none=True, metadata={"description": "The volume's tar stream"})
    added_bytes = ma.fields.Integer(
        allow_none=True, metadata={"description": "New data the repository stored (after deduplication)"}
    )
    files = ma.fields.Integer(
        allow_none=True,
        metadata={
            "description": (
                "Regular files in the volume as backed up; null: not counted (running, or a backup "
                "another dockvol made)"
            )
        },
    )
    error = ma.fields.String(allow_none=True)


class BackupCreateSchema(Schema):
    volume = VolumeName(required=True, metadata={"example": "site-data"})
    repository = ma.fields.String(required=True, validate=REPOSITORY_NAME, metadata={"example": "offsite"})


class BackupQuerySchema(PageArgs):
    volume = VolumeName()
    repository = ma.fields.String(validate=REPOSITORY_NAME)
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    policy = ma.fields.String(validate=REPOSITORY_NAME, metadata={"description": "Made by this backup policy"})


class RestoreSchema(Schema):
    id = ma.fields.String(required=True)
    backup = ma.fields.String(required=True)
    volume = ma.fields.String(required=True)
    node = ma.fields.String(required=True)
    project = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"enum": STATUSES})
    progress = ma.fields.Nested(ProgressSchema)
    started_at = CreatedAt()
    finished_at = CreatedAt()
    error = ma.fields.String(allow_none=True)
    replace = ma.fields.Boolean(required=True, metadata={"description": "Into an existing volume, replacing it"})


class RestoreCreateSchema(Schema):
    backup = BACKUP_ID
    volume = VolumeName(
        required=True,
        metadata={
            "description": "A new volume (409 if one has the name), or with `replace` an existing one",
            "example": "site-data-restored",
        },
    )
    replace = StrictBool(
        load_default=False,
        metadata={
            "description": "Replace all the content of an existing volume of the backup's project (404 if "
            "there is none), unused (409 while a container uses it), atomically: old content or new, never a mix"
        },
    )


class RestoreQuerySchema(PageArgs):
    pass


def backup_document(b: Backup, node: str) -> JSON:
    return {
        "id": b.id,
        "volume": b.volume,
        "node": node,
        "project": b.project,
        "repository": b.repository,
        "policy": b.policy,
        "scheduled_at": b.scheduled_at,
        "status": b.status,
        "started_at": b.started_at,
        "finished_at": b.finished_at,
        "progress": {"bytes_done": b.bytes_done, "bytes_total": b.size_bytes},
        "size_bytes": b.size_bytes,
        "added_bytes": b.added_bytes,
        "files": b.files,
        "error": b.error,
    }


def restore_document(r: Restore, node: str) -> JSON:
    return {
        "id": r.id,
        "backup": r.backup,
        "volume": r.volume,
        "node": node,
        "project": r.project,
        "status": r.status,
        "replace": r.replace,
        "progress": {"bytes_done": r.bytes_done, "bytes_total": None},
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "error": r.error,
    }
