"""How each resource is shown: one document builder per resource, each naming the node that holds
it, used alike by the routes, the ETags and the watch stream."""

from __future__ import annotations

from flask import Response

from ..domain.bindings import Binding
from ..domain.sharing import SharingGroup
from ..domain.volumes import Volume
from ..errors import InvalidInput
from ..json_types import JSON
from .bindings.schemas import BindingSchema
from .context import services
from .responses import json_response
from .sharing_groups.schemas import SharingGroupSchema

_BINDING = BindingSchema()
_GROUP = SharingGroupSchema()


def here() -> str:
    """The node this instance answers for (in a request)."""
    return services().nodes.here()


def check_node(wanted: str | None) -> None:
    """A create's `node`, when given, must be this instance's (fleet mode forwards it here)."""
    if wanted is not None and wanted != here():
        raise InvalidInput("node", f"this is node {here()}; it cannot create on {wanted}")


def volume_document(v: Volume, node: str) -> JSON:
    """What VolumeSchema().dump(v) gives, built directly: listing a thousand volumes through
    marshmallow cost more than the engine calls themselves. tests/unit keeps the two equal."""
    return {
        "name": v.name,
        "node": node,
        "driver": v.driver,
        "driver_opts": dict(v.driver_opts),
        "labels": dict(v.labels),
        "mountpoint": v.mountpoint,
        "scope": v.scope,
        "created_at": v.created_at,
        "anonymous": v.anonymous,
        "managed": v.managed,
        "project": v.project,
        "in_use": v.in_use,
        "used_by": [
            {"container": u.container, "node": node, "binding": u.binding, "target": u.target, "read_only": u.read_only}
            for u in v.used_by
        ],
    }


def binding_document(b: Binding, node: str) -> JSON:
    return {**_BINDING.dump(b), "node": node}


def group_document(g: SharingGroup, node: str) -> JSON:
    return {**_GROUP.dump(g), "node": node}


def document_of(resource: Volume | Binding | SharingGroup, node: str) -> JSON:
    if isinstance(resource, Volume):
        return volume_document(resource, node)
    if isinstance(resource, Binding):
        return binding_document(resource, node)
    return group_document(resource, node)


def answer(resource: Volume | Binding | SharingGroup, status: int = 200, location: str | None = None) -> Response:
    """A resource as the answer: its document, its version as the ETag (the domain's: what
    If-Match is held against), and Location for a new one."""
    headers = {"ETag": f'"{resource.version}"'}
    if location:
        headers["Location"] = location
    return json_response(document_of(resource, here()), status, headers)
