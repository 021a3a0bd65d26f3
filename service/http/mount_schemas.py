"""Mount objects, as bindings and sharing groups take and show them."""

from __future__ import annotations

import posixpath

import marshmallow as ma

from ..domain.mounts import MountRequest
from .fields import FullMatch, NAME_PATTERN
from .smorest import Schema

MAX_MOUNTS = 32
PROPAGATIONS = ("rprivate", "private", "rslave", "slave")  # never shared


def _target(value: str) -> None:
    if "\x00" in value or not value.startswith("/"):
        raise ma.ValidationError("a target is an absolute path")
    if value == "/" or posixpath.normpath(value) != value or value.startswith("//"):
        raise ma.ValidationError("a target is normalised (no '.', '..', '//' or trailing '/') and not '/'")


class MountSchema(Schema):
    type = ma.fields.String(required=True, validate=ma.validate.OneOf(("volume", "bind", "tmpfs")))
    target = ma.fields.String(required=True, validate=[ma.validate.Length(max=4096), _target],
                              metadata={"example": "/data"})
    source = ma.fields.String(
        validate=ma.validate.Length(min=1, max=4096),
        metadata={"description": "volume: an existing volume's name (omit it for an anonymous volume); "
                                 "bind: an absolute host path inside a bind root; tmpfs: none"},
    )
    read_only = ma.fields.Boolean(load_default=False)
    no_copy = ma.fields.Boolean(load_default=False, metadata={"description": "volume only: do not copy the image's content in"})
    propagation = ma.fields.String(validate=ma.validate.OneOf(PROPAGATIONS),
                                   metadata={"description": "bind only; default rprivate"})
    size_bytes = ma.fields.Integer(validate=ma.validate.Range(min=4096, max=2**40), metadata={"description": "tmpfs only"})

    @ma.validates_schema
    def _fits_its_type(self, data, **kwargs):
        kind = data.get("type")
        errors = {}
        if kind == "volume" and "source" in data and not FullMatch(f"^{NAME_PATTERN}$").regex.fullmatch(data["source"]):
            errors["source"] = ["not a volume name"]
        if kind == "bind" and "source" not in data:
            errors["source"] = ["a bind mount needs a host path"]
        if kind == "tmpfs" and "source" in data:
            errors["source"] = ["a tmpfs has no source"]
        if kind != "volume" and data.get("no_copy"):
            errors["no_copy"] = ["only for volumes"]
        if kind != "bind" and "propagation" in data:
            errors["propagation"] = ["only for bind mounts"]
        if kind != "tmpfs" and "size_bytes" in data:
            errors["size_bytes"] = ["only for tmpfs"]
        if errors:
            raise ma.ValidationError(errors)

    @ma.post_load
    def _request(self, data, **kwargs) -> MountRequest:
        return MountRequest(**data)


def Mounts(**kwargs) -> ma.fields.List:
    return ma.fields.List(ma.fields.Nested(MountSchema), validate=[ma.validate.Length(max=MAX_MOUNTS), _unique_targets], **kwargs)


def _unique_targets(mounts: list[MountRequest]) -> None:
    targets = [m.target for m in mounts]
    if len(set(targets)) != len(targets):
        raise ma.ValidationError("each target may appear once")


class MountShownSchema(Schema):
    """A mount as `docker inspect` shows it."""

    type = ma.fields.String(required=True)
    name = ma.fields.String(allow_none=True, metadata={"description": "The volume's name, anonymous ones included"})
    source = ma.fields.String(allow_none=True, metadata={"description": "Where it lives on the host"})
    target = ma.fields.String(required=True)
    read_only = ma.fields.Boolean(required=True)
    driver = ma.fields.String(allow_none=True)
