"""What /api/v1/volumes reads and writes."""

from __future__ import annotations

import marshmallow as ma

from ..fields import Dict, FullMatch, LabelFilters, Labels, StrictBool, VolumeName
from ..pagination import PageArgs
from ..smorest import Schema

DRIVER = ma.fields.String(
    load_default="local",
    validate=FullMatch(r"^[a-zA-Z0-9][a-zA-Z0-9_.:/-]{0,254}$", error="not a valid driver name"),
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
    created_at = ma.fields.String(allow_none=True)
    anonymous = ma.fields.Boolean(metadata={"description": "The engine picked the name"})
    managed = ma.fields.Boolean(metadata={"description": "Created through dockvol (only these can be deleted)"})
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
        metadata={"description": "local: a tmpfs, or type=none,o=bind,device=PATH inside a bind root"},
    )
    labels = Labels(load_default=dict, metadata={"example": {"team": "web"}})
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
