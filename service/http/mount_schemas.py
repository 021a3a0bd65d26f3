"""Mount objects, as bindings and sharing groups take and show them.

One schema per mount type, so the OpenAPI document says exactly what each type takes
(a `oneOf` with `type` as discriminator) and a generated client gets one class per type.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from apispec.ext.marshmallow.field_converter import FieldConverterMixin

from ..domain.mounts import MountRequest
from ..json_types import JSON
from .fields import NAME_PATTERN, FullMatch, StrictBool, StrictInt
from .smorest import Api, Schema

MAX_MOUNTS = 32
PROPAGATIONS = ("rprivate", "private", "rslave", "slave")  # never shared
# What service/domain/bind_paths.py refuses in a host path that a pattern can see: a '..'
# component, or one longer than 255 characters (so over its 255 bytes). A byte count under a
# character count cannot be a pattern: only the descriptions say it.
HOST_PATH_REFUSED: JSON = {"anyOf": [{"pattern": "/\\.\\.(/|$)"}, {"pattern": "[^/]{256}"}]}


def _target(value: str) -> None:
    if value == "/" or posixpath.normpath(value) != value or value.startswith("//"):
        raise ma.ValidationError("a target is normalised (no '.', '..', '//' or trailing '/') and not '/'")


def _kind(name: str) -> ma.fields.String:
    return ma.fields.String(required=True, validate=ma.validate.OneOf((name,)))


class _MountSchema(Schema):
    target = ma.fields.String(
        required=True,
        metadata={"example": "/data"},
        validate=[
            ma.validate.Length(min=2, max=4096),
            FullMatch(r"^/[^\x00]*$", error="a target is an absolute path"),
            _target,
        ],
    )
    read_only = StrictBool(load_default=False)

    @ma.post_load
    def _request(self, data: dict[str, Any], **kwargs: Any) -> MountRequest:
        return MountRequest(**data)


class VolumeMountSchema(_MountSchema):
    type = _kind("volume")
    source = ma.fields.String(
        validate=FullMatch(f"^{NAME_PATTERN}$", error="not a volume name"),
        metadata={"description": "An existing volume's name; omit it for an anonymous volume"},
    )
    no_copy = StrictBool(
        load_default=False, metadata={"description": "Do not copy the image's content into a new volume"}
    )


class BindMountSchema(_MountSchema):
    type = _kind("bind")
    source = ma.fields.String(
        required=True,
        validate=[ma.validate.Length(max=4096), FullMatch(r"^/[^\x00]*$", error="a host path is absolute")],
        metadata={
            "description": "An absolute host path inside DOCKVOL_BIND_ROOTS: no '..', at most 4096 bytes "
            "in UTF-8 and 255 a component (422 otherwise; outside the roots, 403)",
            "example": "/data/volumes/b2",
            "not": HOST_PATH_REFUSED,
        },
    )
    propagation = ma.fields.String(
        validate=ma.validate.OneOf(PROPAGATIONS), metadata={"description": "Default rprivate"}
    )


class TmpfsMountSchema(_MountSchema):
    type = _kind("tmpfs")
    size_bytes = StrictInt(validate=ma.validate.Range(min=4096, max=2**40))


KINDS = {"volume": VolumeMountSchema, "bind": BindMountSchema, "tmpfs": TmpfsMountSchema}


class MountField(ma.fields.Field[MountRequest]):
    """A mount object, read by the schema its `type` names."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> MountRequest:
        if not isinstance(value, dict):
            raise ma.ValidationError("a mount is an object")
        kind = value.get("type")
        schema = KINDS.get(kind) if isinstance(kind, str) else None
        if schema is None:
            raise ma.ValidationError({"type": [f"one of {', '.join(KINDS)}"]})
        request: MountRequest = schema().load(value)  # its post_load makes the MountRequest
        return request


def mount_field_to_openapi(converter: FieldConverterMixin, field: ma.fields.Field[Any], **kwargs: Any) -> JSON:
    """apispec attribute function: document MountField as a oneOf with a discriminator."""
    if not isinstance(field, MountField):
        return {}
    refs = {kind: f"#/components/schemas/{schema.__name__.removesuffix('Schema')}" for kind, schema in KINDS.items()}
    return {"oneOf": [{"$ref": r} for r in refs.values()], "discriminator": {"propertyName": "type", "mapping": refs}}


def Mounts(**kwargs: Any) -> ma.fields.List[MountRequest]:
    # JSON Schema has no keyword for "one property unique across the items" (uniqueItems compares
    # whole items): the rule is told in words, and a repeated target is a 422.
    description = "Each target at most once (and, for a sharing group's member, not one of the group's): 422 otherwise"
    return ma.fields.List(
        MountField(),
        validate=[ma.validate.Length(max=MAX_MOUNTS), _unique_targets],
        metadata={"description": description},
        **kwargs,
    )


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


def register(api: Api) -> None:
    """Put the per-type mount schemas in the OpenAPI components and teach apispec MountField."""
    for schema in KINDS.values():
        api.spec.components.schema(schema.__name__.removesuffix("Schema"), schema=schema)
    api.ma_plugin.converter.add_attribute_function(mount_field_to_openapi)
