"""What /api/v1/repositories reads and writes."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from ...config import PROJECT_NAME
from ..fields import CreatedAt, FullMatch, ProjectName
from ..pagination import PageArgs
from ..smorest import Schema

REPOSITORY_NAME = FullMatch(f"^{PROJECT_NAME.pattern}$", error="lowercase letters, digits and _.- (at most 63)")
# What reaches restic's location and the credentials file: nothing that could end a line, start a
# comment or an option, or add a path to the endpoint.
ENDPOINT = FullMatch(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$", error="http(s)://host[:port]")
BUCKET = FullMatch(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", error="an S3 bucket name (3-63 characters)")
PREFIX = FullMatch(r"^([A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*)?$", error="folders of letters, digits and _.-")
REGION = FullMatch(r"^([a-z0-9-]{1,32})?$", error="an S3 region (lowercase letters, digits and -)")
KEY = FullMatch(r"^[A-Za-z0-9+/=._~-]{1,256}$", error="letters, digits and +/=._~- (at most 256)")


class S3Schema(Schema):
    endpoint = ma.fields.String(
        required=True, validate=ENDPOINT, metadata={"example": "https://s3.eu-west-1.amazonaws.com"}
    )
    bucket = ma.fields.String(required=True, validate=BUCKET, metadata={"example": "backups"})
    prefix = ma.fields.String(load_default="", validate=PREFIX, metadata={"description": "A folder in the bucket"})
    region = ma.fields.String(load_default="", validate=REGION, metadata={"example": "eu-west-1"})


class CredentialsSchema(Schema):
    access_key_id = ma.fields.String(required=True, validate=KEY)
    secret_access_key = ma.fields.String(required=True, validate=KEY)


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
    kind = ma.fields.String(required=True, metadata={"description": "`local` or `s3`"})
    path = ma.fields.String(allow_none=True, metadata={"description": "Where it lies, resolved (local)"})
    s3 = ma.fields.Nested(S3Schema, allow_none=True, metadata={"description": "Where it lies (s3)"})
    created_at = CreatedAt()
    status = ma.fields.Nested(RepositoryStatusSchema, metadata={"description": "Asked of restic at each read"})


class RepositoryCreateSchema(Schema):
    name = ma.fields.String(required=True, validate=REPOSITORY_NAME, metadata={"example": "offsite"})
    kind = ma.fields.String(load_default="local", validate=ma.validate.OneOf(["local", "s3"]))
    path = ma.fields.String(
        validate=ma.validate.Length(min=1, max=4096),
        metadata={
            "description": "A directory under DOCKVOL_BACKUP_ROOTS (403 otherwise; missing ones are made), "
            "empty (a new repository is initialised) or holding a restic repository (attached)",
            "example": "/srv/backups/offsite",
        },
    )
    s3 = ma.fields.Nested(
        S3Schema,
        metadata={"description": "kind s3: the bucket (made if missing) and the folder in it, empty or a repository"},
    )
    credentials = ma.fields.Nested(
        CredentialsSchema,
        load_only=True,
        metadata={"description": "kind s3 (required): its keys, write-only, kept mode 0600, never shown again"},
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

    @ma.validates_schema
    def _one_place(self, data: dict[str, Any], **_: Any) -> None:
        if data["kind"] == "s3":
            missing = [k for k in ("s3", "credentials") if k not in data]
            if missing:
                raise ma.ValidationError({k: ["required for kind s3"] for k in missing})
            if "path" in data:
                raise ma.ValidationError({"path": ["a local repository's; kind s3 has s3"]})
        else:
            if "path" not in data:
                raise ma.ValidationError({"path": ["required for kind local"]})
            extra = [k for k in ("s3", "credentials") if k in data]
            if extra:
                raise ma.ValidationError({k: ["for kind s3 only"] for k in extra})


class RepositoryQuerySchema(PageArgs):
    pass
