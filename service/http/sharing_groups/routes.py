"""/api/v1/sharing-groups: read the request, call one use case, shape the answer."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask.views import MethodView

from ...domain.sharing import SharingGroups
from ..context import services
from ..documents import answer, check_node, group_document, here
from ..pagination import HEADERS_DOC, paginate
from ..smorest import ETAG_DOC, LOCATION_DOC, Blueprint, check_if_match, json_response, links_to
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
    @blp.protected("read")
    @blp.arguments(SharingGroupQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, SharingGroupSchema(many=True), headers=HEADERS_DOC)
    @blp.doc(summary="List sharing groups", operationId="listSharingGroups")
    def get(self, page: int, page_size: int) -> Response:
        groups, headers = paginate(_groups().list(), page, page_size)
        node = here()
        return json_response([group_document(g, node) for g in groups], headers=headers)

    @blp.protected("write")
    @blp.arguments(SharingGroupCreateSchema, example=EXAMPLE)
    @blp.response(201, SharingGroupSchema, headers={**LOCATION_DOC, **ETAG_DOC})
    @blp.alt_response(409, response="CONFLICT", description="A container of that name exists")
    @blp.refusal(
        "The body breaks the schema or a rule it cannot state (a repeated mount target), or names what the "
        "engine lacks: a volume, a node other than this one"
    )
    @blp.doc(
        summary="Create a sharing group and start its infrastructure container",
        operationId="createSharingGroup",
        responses={201: {"links": links_to("getSharingGroup", "deleteSharingGroup")}},
    )
    def post(self, data: dict[str, Any]) -> Response:
        check_node(data.get("node"))
        group = _groups().create(data["name"], data["mounts"], data["share"])
        location = url_for("sharing_groups.SharingGroupItem", name=group.name)
        return answer(group_document(group, here()), 201, location)


@blp.route("/<name:name>")
class SharingGroupItem(MethodView):
    @blp.protected("read")
    @blp.response(200, SharingGroupSchema, headers=ETAG_DOC)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(summary="Get one sharing group with its members", operationId="getSharingGroup")
    def get(self, name: str) -> Response:
        return answer(group_document(_groups().get(name), here()))

    @blp.protected("write")
    @blp.arguments(SharingGroupDeleteArgs, location="query", as_kwargs=True)
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="The group has members (see `members`)")
    @blp.doc(
        summary="Delete a sharing group; cascade=true removes its members first. Volumes stay",
        operationId="deleteSharingGroup",
    )
    @blp.if_match
    def delete(self, name: str, cascade: bool) -> None:
        _groups().delete(name, cascade, precondition=lambda group: check_if_match(group_document(group, here())))
