"""What /api/v1/volumes reads and writes."""

from __future__ import annotations

import marshmallow as ma

from ...json_types import JSON
from ..fields import CreatedAt, Dict, FullMatch, LabelFilters, Labels, ProjectName, StrictBool, VolumeName
from ..mount_schemas import HOST_PATH_REFUSED
from ..pagination import PageArgs
from ..smorest import Api, Schema

DRIVER = ma.fields.String(
    load_default="local",
    validate=FullMatch(r"^[a-zA-Z0-9][a-zA-Z0-9_.:/-]{0,254}$", error="not a valid driver name"),
    metadata={"description": "One of DOCKVOL_VOLUME_DRIVERS (by default local alone): 422 otherwise"},
)


class VolumeUseSchema(Schema):
    container = ma.fields.String(required=True)
    node = ma.fields.String(required=True, metadata={"description": "The node of the container (the volume's)"})
    binding = ma.fields.String(
        allow_none=True, metadata={"description": "The binding, when dockvol made the container"}
    )
    target = ma.fields.String(required=True, metadata={"description": "Where the container sees the volume"})
    read_only = ma.fields.Boolean(required=True)


class VolumeSchema(Schema):
    name = ma.fields.String(required=True)
    node = ma.fields.String(required=True, metadata={"description": "The node (host name) that holds it"})
    driver = ma.fields.String(required=True)
    driver_opts = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())
    labels = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.String(),
        metadata={"description": "User labels (dockvol's own are not shown)"},
    )
    mountpoint = ma.fields.String(metadata={"description": "Where the data lives on the host"})
    scope = ma.fields.String()
    created_at = CreatedAt()
    anonymous = ma.fields.Boolean(metadata={"description": "The engine picked the name"})
    managed = ma.fields.Boolean(metadata={"description": "Created through dockvol (only these can be deleted)"})
    project = ma.fields.String(
        allow_none=True, metadata={"description": "The project that owns it; null for what dockvol did not create"}
    )
    in_use = ma.fields.Boolean()
    used_by = ma.fields.List(ma.fields.Nested(VolumeUseSchema))


class VolumeCreateSchema(Schema):
    name = VolumeName(
        metadata={
            "description": "Omit it and the engine picks one (an anonymous volume); not 'prune'",
            "example": "site-data",
        }
    )
    driver = DRIVER
    driver_opts = Dict(
        32,
        keys=ma.fields.String(validate=ma.validate.Length(min=1, max=255)),
        values=ma.fields.String(validate=ma.validate.Length(max=4096)),
        load_default=dict,
        metadata={
            "description": "Other drivers take what they take. The local driver (the default) takes none, or "
            "a tmpfs (type=tmpfs, o without bind), or a bind mount: type=none, o with bind or rbind, "
            "device=PATH, which must lie inside a bind root (403 otherwise) and is checked as a bind "
            "mount's source (no '..', at most 4096 bytes in UTF-8 and 255 a component)"
        },
    )
    labels = Labels(load_default=dict, metadata={"example": {"team": "web"}})
    project = ProjectName(
        metadata={
            "description": "The project it is made in: the token's own (the default), or any project "
            "for a token of the project `*` (others: 403); made as that project makes it"
        }
    )
    node = ma.fields.String(
        validate=ma.validate.Length(min=1, max=255),
        metadata={"description": "The node to create it on (fleet mode; default: by placement)"},
    )


class VolumeQuerySchema(PageArgs):
    label = LabelFilters(in_query=True, metadata={"description": "Repeatable: `key` or `key=value`; all must hold"})
    driver = ma.fields.String(
        validate=FullMatch(r"^[a-zA-Z0-9][a-zA-Z0-9_.:/-]{0,254}$", error="not a valid driver name")
    )
    dangling = ma.fields.Boolean(metadata={"description": "true: no container uses it"})
    anonymous = ma.fields.Boolean()
    managed = ma.fields.Boolean()
    name = ma.fields.String(
        validate=ma.validate.Length(min=1, max=64), metadata={"description": "Substring of the name"}
    )
    project = ProjectName(metadata={"description": "Only this project's (a token sees its own project's only)"})


class PruneSchema(Schema):
    dry_run = StrictBool(load_default=False, metadata={"description": "List what would go; change nothing"})
    include_named = StrictBool(
        load_default=False, metadata={"description": "Named volumes too, not only anonymous ones"}
    )
    labels = LabelFilters(load_default=list, metadata={"description": "Only volumes matching all of these"})


class PruneResultSchema(Schema):
    volumes_deleted = ma.fields.List(ma.fields.String(), required=True)
    space_reclaimed = ma.fields.Integer(required=True, metadata={"description": "Bytes"})
    dry_run = ma.fields.Boolean(required=True)


BIND_OPTION = "(^|,)r?bind(,|$)"  # `o` is a comma list: bind or rbind among its items
# What Volumes._checked_options takes from the local driver, for VolumeCreate as a whole (it hangs
# on `driver`, whose default is local: an absent driver meets the `if` too).
LOCAL_DRIVER_OPTIONS: JSON = {
    "if": {"properties": {"driver": {"const": "local"}}},
    "then": {
        "properties": {
            "driver_opts": {
                "anyOf": [
                    {"maxProperties": 0},
                    {
                        "properties": {
                            "type": {"const": "tmpfs"},
                            "o": {"not": {"pattern": BIND_OPTION}},
                            "device": {},
                        },
                        "required": ["type"],
                        "additionalProperties": False,
                    },
                    {
                        "properties": {
                            "type": {"const": "none"},
                            "o": {"pattern": BIND_OPTION},
                            "device": {"pattern": "^/[^\\x00]*$", "not": HOST_PATH_REFUSED},
                        },
                        "required": ["type", "o", "device"],
                        "additionalProperties": False,
                    },
                ]
            }
        }
    },
}


def register(api: Api) -> None:
    """VolumeCreate in the OpenAPI components, with the local driver's rule for its options."""
    api.spec.components.schema("VolumeCreate", component=LOCAL_DRIVER_OPTIONS, schema=VolumeCreateSchema)
