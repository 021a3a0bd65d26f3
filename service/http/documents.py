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
from .sharing_groups.schemas import SharingGroupSchema
from .smorest import etag_of, json_response

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
        "in_use": v.in_use,
        "used_by": [
            {"container": u.container, "node": node, "binding": u.binding, "target": u.target, "read_only": u.read_only}
            for u in v.used_by
        ],
    }


def volume_etag(v: Volume, node: str) -> str:
    """A volume's ETag: a digest of its document with its identity (dockvol's one-time label) in
    place of its creation time, which engine 20.10 moves, with no event, when the volume's top
    level changes (a clone, an import): a GET answered from the view and a DELETE that reads the
    engine would otherwise see one unchanged volume under two ETags (a 412 for an honest If-Match)."""
    return etag_of({**volume_document(v, node), "created_at": v.identity})


def answer_volume(v: Volume, status: int = 200, location: str | None = None) -> Response:
    """A volume's document as the answer, with its ETag (volume_etag)."""
    return answer(volume_document(v, here()), status, location, etag=volume_etag(v, here()))


def binding_document(b: Binding, node: str) -> JSON:
    return {**_BINDING.dump(b), "node": node}


def group_document(g: SharingGroup, node: str) -> JSON:
    return {**_GROUP.dump(g), "node": node}


def answer(document: JSON, status: int = 200, location: str | None = None, etag: str | None = None) -> Response:
    """A resource's document as the answer, with its ETag (and Location, for a new one)."""
    headers = {"ETag": etag or etag_of(document)}
    if location:
        headers["Location"] = location
    return json_response(document, status, headers)
