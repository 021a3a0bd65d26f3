"""What /api/v1/repositories reads and writes."""

from __future__ import annotations

import marshmallow as ma

from ...config import PROJECT_NAME
from ..fields import CreatedAt, FullMatch, ProjectName
from ..pagination import PageArgs
from ..smorest import Schema

REPOSITORY_NAME = FullMatch(f"^{PROJECT_NAME.pattern}$", error="lowercase letters, digits and _.- (at most 63)")


class RepositoryStatusSchema(Schema):
    reachable = ma.fields.Boolean(required=True, metadata={"description": "restic opened it with its password"})
    checked_at = CreatedAt()
    backups = ma.fields.Integer(allow_none=True, metadata={"description": "dockvol's backups in it"})
    stored_bytes = ma.fields.Integer(allow_none=True, metadata={"description": "What it holds, after deduplication"})
    error = ma.fields.String(allow_none=True, metadata={"description": "Why it is not reachable"})


class RepositorySchema(Schema):
    name = ma.fields.String(required=True)
    node = ma.fields.String(required=True, metadata={"description": "The node (host name) that holds its record"})
    project = ma.fields.String(required=True)
    kind = ma.fields.String(required=True, metadata={"description": "`local` (S3 comes later)"})
    path = ma.fields.String(required=True, metadata={"description": "Where it lies, resolved (local)"})
    created_at = CreatedAt()
    status = ma.fields.Nested(RepositoryStatusSchema, metadata={"description": "Asked of restic at each read"})


class RepositoryCreateSchema(Schema):
    name = ma.fields.String(required=True, validate=REPOSITORY_NAME, metadata={"example": "offsite"})
    kind = ma.fields.String(load_default="local", validate=ma.validate.OneOf(["local"]))
    path = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=4096),
        metadata={
            "description": "A directory under DOCKVOL_BACKUP_ROOTS (403 otherwise; missing ones are made), "
            "empty (a new repository is initialised) or holding a restic repository (attached)",
            "example": "/srv/backups/offsite",
        },
    )
    password = ma.fields.String(
        required=True,
        load_only=True,
        validate=ma.validate.Length(min=1, max=1024),
        metadata={
            "description": "restic's key (write-only: never shown again). Attaching: the repository's "
            "own (422 if it opens none of its keys; nothing is stored then)",
            "example": "correct horse battery staple",
        },
    )
    project = ProjectName(
        metadata={"description": "The project it is made in: the token's own, or any for a token of `*`"}
    )


class RepositoryQuerySchema(PageArgs):
    pass
