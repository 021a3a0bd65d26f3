"""What /api/v1/sharing-groups reads and writes."""

from __future__ import annotations

import marshmallow as ma

from ..fields import CreatedAt, Name, ProjectName
from ..mount_schemas import Mounts, MountShownSchema
from ..pagination import PageArgs
from ..smorest import Schema

NAMESPACES = ("network", "ipc", "pid")
EXAMPLE = {
    "name": "infracon",
    "mounts": [{"type": "bind", "source": "/data/infracon/volume", "target": "/data/web/html"}],
    "share": ["network"],
}


def _unique(values: list[str]) -> None:
    if len(set(values)) != len(values):
        raise ma.ValidationError("each namespace may appear once")


class SharingGroupCreateSchema(Schema):
    name = Name(required=True, metadata={"example": "infracon"})
    mounts = Mounts(load_default=list)
    share = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(NAMESPACES)),
        load_default=lambda: ["network"],
        validate=_unique,
        metadata={"description": "Namespaces members share with the infrastructure container", "uniqueItems": True},
    )
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


class InfraSchema(Schema):
    container = ma.fields.String(required=True, attribute="name")
    id = ma.fields.String(required=True)
    state = ma.fields.String(required=True)
    image = ma.fields.String(required=True)


class SharingGroupSchema(Schema):
    name = ma.fields.String(required=True)
    node = ma.fields.String(required=True, metadata={"description": "The node (host name) that holds it"})
    mounts = ma.fields.List(ma.fields.Nested(MountShownSchema))
    share = ma.fields.List(ma.fields.String())
    infra = ma.fields.Nested(InfraSchema)
    members = ma.fields.List(ma.fields.String(), metadata={"description": "Names of the member bindings"})
    created_at = CreatedAt()
    project = ma.fields.String(allow_none=True, metadata={"description": "The project that owns it"})


class SharingGroupDeleteArgs(Schema):
    cascade = ma.fields.Boolean(load_default=False, metadata={"description": "Remove the members first; volumes stay"})


class SharingGroupQuerySchema(PageArgs):
    project = ProjectName(metadata={"description": "Only this project's (a token sees its own project's only)"})
