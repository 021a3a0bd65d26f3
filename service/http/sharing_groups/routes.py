"""/api/v1/sharing-groups: read the request, call one use case, shape the answer."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask.views import MethodView

from ...domain.sharing import SharingGroups
from ..context import services
from ..documents import answer, check_node, group_document, here
from ..pagination import HEADERS_DOC, paginate
from ..responses import json_response
from ..smorest import ETAG_DOC, LOCATION_DOC, Blueprint, if_match
from .schemas import (
    EXAMPLE,
    SharingGroupCreateSchema,
    SharingGroupDeleteArgs,
    SharingGroupQuerySchema,
    SharingGroupSchema,
)

blp = Blueprint(
    "sharing_groups",
    __name__,
    url_prefix="/api/v1/sharing-groups",
    description="Containers sharing one infrastructure container's volumes and namespaces",
    per_node=True,
)


def _groups() -> SharingGroups:
    return services().sharing_groups


@blp.route("")
class SharingGroupCollection(MethodView):
    @blp.operation("listSharingGroups", "read", 200, SharingGroupSchema(many=True), headers=HEADERS_DOC)
    @blp.arguments(SharingGroupQuerySchema, location="query", as_kwargs=True)
    def get(self, page: int, page_size: int, project: str | None = None) -> Response:
        """List sharing groups"""
        groups, headers = paginate(_groups().list(project), page, page_size)
        node = here()
        return json_response([group_document(g, node) for g in groups], headers=headers)

    @blp.operation(
        "createSharingGroup",
        "write",
        201,
        SharingGroupSchema,
        headers={**LOCATION_DOC, **ETAG_DOC},
        errors={
            409: "A container of that name exists",
            422: "The body breaks the schema or a rule it cannot state (a repeated mount target), or names what "
            "the engine lacks: a volume, a node other than this one",
        },
        links=("getSharingGroup", "deleteSharingGroup"),
    )
    @blp.arguments(SharingGroupCreateSchema, example=EXAMPLE)
    def post(self, data: dict[str, Any]) -> Response:
        """Create a sharing group and start its infrastructure container"""
        check_node(data.get("node"))
        with services().projects.creating_in(data.get("project")):
            group = _groups().create(data["name"], data["mounts"], data["share"])
        location = url_for("sharing_groups.SharingGroupItem", name=group.name)
        return answer(group, 201, location)


@blp.route("/<name:name>")
class SharingGroupItem(MethodView):
    @blp.operation("getSharingGroup", "read", 200, SharingGroupSchema, headers=ETAG_DOC, errors={404: None})
    def get(self, name: str) -> Response:
        """Get one sharing group with its members"""
        return answer(_groups().get(name))

    @blp.operation(
        "deleteSharingGroup",
        "write",
        204,
        errors={404: None, 409: "The group has members (see `members`)"},
        if_match=True,
    )
    @blp.arguments(SharingGroupDeleteArgs, location="query", as_kwargs=True)
    def delete(self, name: str, cascade: bool) -> None:
        """Delete a sharing group; cascade=true removes its members first. Volumes stay"""
        _groups().delete(name, cascade, if_match())
