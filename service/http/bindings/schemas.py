"""What /api/v1/bindings reads and writes."""

from __future__ import annotations

import re

import marshmallow as ma

from ..fields import CreatedAt, Dict, FullMatch, LabelFilters, Labels, Name, ProjectName, StrictBool
from ..mount_schemas import Mounts, MountShownSchema
from ..pagination import PageArgs
from ..smorest import Schema

RESTART_POLICIES = ("no", "on-failure", "unless-stopped", "always")
STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
# An image reference as the engine parses it: a first component with a '.' or a ':' is a registry
# host (the engine takes no other: "VO/x" is a path, and refused for its capitals).
_HOST_PART = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"{_HOST_PART}(?:\.{_HOST_PART})+(?::[0-9]+)?|{_HOST_PART}:[0-9]+"
_COMPONENT = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
_FIRST = r"[a-z0-9]+(?:[_-][a-z0-9]+)*"  # before a '/', a '.' would make it a host
IMAGE = FullMatch(
    rf"^(?:(?:{_HOST})/{_COMPONENT}(?:/{_COMPONENT})*|{_FIRST}(?:/{_COMPONENT})+|{_COMPONENT})"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$",
    error="not an image reference",
)
# The engine refuses a repository name (the reference less its tag and digest) over 255 characters
# once it is normalised: docker.io/ before one without a host, docker.io/library/ before one with no
# '/'. So: 255 with a host (a port's colon is followed by digits and '/', a tag's never by '/'),
# 245 without one, 237 for one component.
IMAGE_NAME_TOO_LONG = (
    r"^(?:[a-zA-Z0-9._/-]|:(?=[0-9]+/)){256}",
    r"^(?=[a-z0-9_-]+/)[a-z0-9._/-]{246}",
    r"^[a-z0-9._-]{238,}(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?(?:@|$)",
)


ARG = ma.fields.String(validate=[ma.validate.Length(max=4096), FullMatch(r"^[^\x00]*$", error="no NUL")])
ENV_KEY = ma.fields.String(validate=FullMatch(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$", error="not a variable name"))

EXAMPLE = {
    "name": "b2",
    "image": "busybox:stable",
    "command": ["sleep", "3600"],
    "environment": {"TZ": "UTC"},
    "mounts": [{"type": "volume", "target": "/data"}, {"type": "bind", "source": "/data/volumes/b2", "target": "/www"}],
    "network": "none",
}


def _name_within_limit(ref: str) -> None:
    if any(re.match(pattern, ref) for pattern in IMAGE_NAME_TOO_LONG):
        raise ma.ValidationError("the repository name is too long for the engine (255 characters, docker.io/ included)")


class BindingWriteSchema(Schema):
    image = ma.fields.String(
        required=True,
        validate=[ma.validate.Length(max=512), IMAGE, _name_within_limit],
        metadata={"example": "busybox:stable", "not": {"anyOf": [{"pattern": p} for p in IMAGE_NAME_TOO_LONG]}},
    )
    command = ma.fields.List(
        ARG,
        allow_none=True,
        load_default=None,
        validate=ma.validate.Length(min=1, max=256),
        metadata={"description": "Exec form; omit it for the image's own"},
    )
    environment = Dict(256, keys=ENV_KEY, values=ARG, load_default=dict)
    labels = Labels(load_default=dict)
    mounts = Mounts(load_default=list)
    network = ma.fields.String(
        allow_none=True,
        load_default=None,
        validate=ma.validate.Length(min=1, max=255),
        metadata={"description": "Default DOCKVOL_DEFAULT_NETWORK; one of DOCKVOL_ALLOWED_NETWORKS"},
    )
    sharing_group = Name(allow_none=True, load_default=None, metadata={"description": "Join this sharing group"})
    sharing_mode = ma.fields.String(
        load_default="rw",
        validate=ma.validate.OneOf(("rw", "ro")),
        metadata={"description": "How members see the group's volumes"},
    )
    restart = ma.fields.String(
        load_default="unless-stopped",
        validate=ma.validate.OneOf(RESTART_POLICIES),
        metadata={
            "description": "The engine's restart policy: with the default, a binding that ran runs again "
            "after an engine restart (and after a crash), until it is stopped"
        },
    )


class BindingCreateSchema(BindingWriteSchema):
    name = Name(required=True, metadata={"example": "b2"})
    start = StrictBool(load_default=True)
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


class BindingReplaceSchema(BindingWriteSchema):
    # No schema can tie a body's value to the path's: `readOnly` says "do not send it", and a
    # body that still carries it is taken only when it is the path's name (422 otherwise).
    name = Name(
        metadata={
            "description": "The path names the binding: leave it out. Sent anyway, it must be the path's name (422)",
            "readOnly": True,
        }
    )
    start = StrictBool(
        allow_none=True,
        load_default=None,
        metadata={"description": "Default: run the new container if the old one ran"},
    )


class BindingSchema(Schema):
    name = ma.fields.String(required=True)
    node = ma.fields.String(required=True, metadata={"description": "The node (host name) that holds it"})
    id = ma.fields.String(required=True)
    image = ma.fields.String(required=True)
    command = ma.fields.List(ma.fields.String(), allow_none=True)
    environment = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.String(),
        allow_none=True,
        metadata={"description": "null for containers dockvol did not create"},
    )
    labels = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())
    mounts = ma.fields.List(ma.fields.Nested(MountShownSchema))
    network = ma.fields.String()
    sharing_group = ma.fields.String(allow_none=True)
    sharing_mode = ma.fields.String(allow_none=True)
    restart = ma.fields.String(allow_none=True, metadata={"description": "null for containers dockvol did not create"})
    state = ma.fields.String()
    created_at = CreatedAt()
    managed = ma.fields.Boolean(metadata={"description": "Created through dockvol (only these can be changed)"})
    project = ma.fields.String(
        allow_none=True, metadata={"description": "The project that owns it; null for what dockvol did not create"}
    )


class BindingQuerySchema(PageArgs):
    volume = Name(metadata={"description": "Only bindings that mount this volume"})
    sharing_group = Name()
    state = ma.fields.String(validate=ma.validate.OneOf(STATES))
    label = LabelFilters(in_query=True, metadata={"description": "Repeatable: `key` or `key=value`; all must hold"})
    project = ProjectName(metadata={"description": "Only this project's (a token sees its own project's only)"})


class BindingDeleteArgs(Schema):
    remove_anonymous_volumes = ma.fields.Boolean(
        load_default=False, metadata={"description": "Named volumes always stay"}
    )
