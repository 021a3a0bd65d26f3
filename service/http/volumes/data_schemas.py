"""What the volume-data calls (/api/v1/volumes/{name}/archive, files, usage, clone, rename) take and give."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

import marshmallow as ma

from ..fields import Labels, ProjectName, StrictBool, VolumeName
from ..smorest import Schema

MAX_PATH = 256  # so that any URL the schema admits fits the server's request-line limit


class VolumePath(ma.fields.String):
    """A path inside a volume, read as if the volume were the root: '/a/b', 'a/b/' and 'x/../a/b'
    all name a/b, and '..' never leaves the volume. '' is the root."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text or len(text) > MAX_PATH:
            raise ma.ValidationError("not a usable path")
        return posixpath.normpath("/" + text).lstrip("/")


PATH = VolumePath(
    load_default="",
    metadata={
        "description": "Inside the volume, as if it were the root ('..' stops there); default its root",
        "example": "html",
        "maxLength": MAX_PATH,
        "pattern": r"^[^\x00]*$",
    },
)


class ExportArgs(Schema):
    path = PATH
    compression = ma.fields.String(
        validate=ma.validate.OneOf(("none", "gzip")),
        metadata={"description": "gzip: a .tar.gz file (Accept-Encoding: gzip compresses in transit instead)"},
    )
    pause = ma.fields.Boolean(
        load_default=False,
        metadata={"description": "Pause the containers that can write to it meanwhile (needs write)"},
    )


class ImportArgs(Schema):
    # Extracting, a name over 255 bytes is refused (422): past 255 characters a pattern can see it.
    path = VolumePath(load_default="", metadata={**PATH.metadata, "not": {"pattern": "[^/]{256}"}})


class ImportResultSchema(Schema):
    volume = ma.fields.String(required=True)
    path = ma.fields.String(required=True)
    entries = ma.fields.Integer(required=True, metadata={"description": "Entries extracted"})


class CloneSchema(Schema):
    name = VolumeName(required=True, metadata={"description": "The new volume", "example": "site-data-copy"})
    labels = Labels(load_default=dict)
    pause = StrictBool(
        load_default=False, metadata={"description": "Pause the containers that can write to it meanwhile"}
    )
    node = ma.fields.String(
        validate=ma.validate.Length(min=1, max=255),
        metadata={"description": "Fleet mode: the node of the copy (default: the source's); its data streams there"},
    )


class RenameSchema(Schema):
    name = VolumeName(required=True, metadata={"description": "The new name", "example": "site-data-v2"})
    project = ProjectName(
        metadata={"description": "Move it to this project (a token of the project `*` with `admin` only)"}
    )


class FilesArgs(Schema):
    path = PATH


class EntrySchema(Schema):
    name = ma.fields.String(required=True)
    type = ma.fields.String(required=True, metadata={"description": "file, directory, symlink, hardlink or other"})
    size = ma.fields.Integer(required=True)
    mode = ma.fields.Integer(required=True, metadata={"description": "Permission bits"})
    mtime = ma.fields.Integer(required=True, metadata={"description": "Seconds since the epoch"})
    link_target = ma.fields.String(allow_none=True)


class ListingSchema(Schema):
    path = ma.fields.String(required=True)
    entries = ma.fields.List(ma.fields.Nested(EntrySchema), required=True)


class UsageSchema(Schema):
    name = ma.fields.String(required=True)
    bytes = ma.fields.Integer(required=True, metadata={"description": "Bytes in regular files"})
    files = ma.fields.Integer(required=True)
    directories = ma.fields.Integer(required=True, metadata={"description": "Not counting the root"})
    symlinks = ma.fields.Integer(required=True)
