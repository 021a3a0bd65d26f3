"""/api/v1/volumes: read the request, call one use case, shape the answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Response, url_for
from flask.views import MethodView

from ...domain.volumes import PruneResult, VolumeQuery, Volumes
from ..context import services
from ..documents import answer_volume, check_node, here, volume_document, volume_etag
from ..pagination import HEADERS_DOC, paginate
from ..smorest import ETAG_DOC, LOCATION_DOC, Blueprint, check_if_match, json_response, links_to
from .schemas import (
    PruneResultSchema,
    PruneSchema,
    VolumeCreateSchema,
    VolumeQuerySchema,
    VolumeSchema,
)

blp = Blueprint("volumes", __name__, url_prefix="/api/v1/volumes", description="Managed volumes", per_node=True)


def _volumes() -> Volumes:
    return services().volumes


@blp.route("")
class VolumeCollection(MethodView):
    @blp.protected("read")
    @blp.arguments(VolumeQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, VolumeSchema(many=True), headers=HEADERS_DOC)
    @blp.doc(summary="List volumes", operationId="listVolumes")
    def get(self, page: int, page_size: int, label: Sequence[str] = (), **filters: Any) -> Response:
        volumes, headers = paginate(_volumes().list(VolumeQuery(labels=label, **filters)), page, page_size)
        node = here()
        return json_response([volume_document(v, node) for v in volumes], headers=headers)

    @blp.protected("write")
    @blp.arguments(VolumeCreateSchema, required=False, example={"name": "site-data", "labels": {"team": "web"}})
    @blp.response(201, VolumeSchema, headers={**LOCATION_DOC, **ETAG_DOC})
    @blp.alt_response(409, response="CONFLICT", description="A volume of that name exists")
    @blp.refusal(
        "The body breaks the schema or a rule it cannot state (a driver not in DOCKVOL_VOLUME_DRIVERS, a bind "
        "device over its byte limits), or names a node other than this one"
    )
    @blp.doc(
        summary="Create a volume (no body: an anonymous one)",
        operationId="createVolume",
        responses={201: {"links": links_to("getVolume", "deleteVolume", "exportVolume", "getVolumeUsage")}},
    )
    def post(self, spec: dict[str, Any] | None) -> Response:
        spec = spec or VolumeCreateSchema().load({})
        check_node(spec.get("node"))
        volume = _volumes().create(spec.get("name"), spec["driver"], spec["driver_opts"], spec["labels"])
        return answer_volume(volume, 201, url_for("volumes.VolumeItem", name=volume.name))


@blp.route("/<volume:name>")
class VolumeItem(MethodView):
    @blp.protected("read")
    @blp.response(200, VolumeSchema, headers=ETAG_DOC)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(summary="Get one volume", operationId="getVolume")
    def get(self, name: str) -> Response:
        return answer_volume(_volumes().get(name))

    @blp.protected("write")
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="In use: `used_by` says by whom")
    @blp.doc(
        summary="Delete a volume dockvol created (never forced)",
        operationId="deleteVolume",
    )
    @blp.if_match
    def delete(self, name: str) -> None:
        _volumes().delete(name, precondition=lambda v: check_if_match(None, etag=volume_etag(v, here())))


@blp.route("/prune")
class VolumePrune(MethodView):
    @blp.protected("admin")
    @blp.arguments(
        PruneSchema, required=False, example={"dry_run": True, "include_named": False, "labels": ["team=web"]}
    )
    @blp.response(200, PruneResultSchema)
    @blp.doc(summary="Remove unused volumes dockvol manages", operationId="pruneVolumes")
    def post(self, spec: dict[str, Any] | None) -> PruneResult:
        spec = spec or PruneSchema().load({})
        return _volumes().prune(spec["dry_run"], spec["include_named"], spec["labels"])
