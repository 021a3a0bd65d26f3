"""/api/v1/volumes: read the request, call one use case, shape the answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Response, url_for
from flask.views import MethodView

from ...domain.volumes import PruneResult, VolumeQuery, Volumes
from ..context import services
from ..documents import answer, check_node, here, volume_document
from ..pagination import HEADERS_DOC, paginate
from ..responses import json_response
from ..smorest import ETAG_DOC, LOCATION_DOC, Blueprint, Serving, if_match
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
    @blp.operation("listVolumes", "read", 200, VolumeSchema(many=True), headers=HEADERS_DOC)
    @blp.arguments(VolumeQuerySchema, location="query", as_kwargs=True)
    def get(self, page: int, page_size: int, label: Sequence[str] = (), **filters: Any) -> Response:
        """List volumes"""
        volumes, headers = paginate(_volumes().list(VolumeQuery(labels=label, **filters)), page, page_size)
        node = here()
        return json_response([volume_document(v, node) for v in volumes], headers=headers)

    @blp.operation(
        "createVolume",
        "write",
        201,
        VolumeSchema,
        headers={**LOCATION_DOC, **ETAG_DOC},
        errors={
            409: "A volume of that name exists",
            422: "The body breaks the schema or a rule it cannot state (a driver not in DOCKVOL_VOLUME_DRIVERS, a "
            "bind device over its byte limits), or names a node other than this one",
        },
        links=("getVolume", "deleteVolume", "exportVolume", "getVolumeUsage"),
    )
    @blp.arguments(VolumeCreateSchema, required=False, example={"name": "site-data", "labels": {"team": "web"}})
    def post(self, body: dict[str, Any] | None) -> Response:
        """Create a volume (no body: an anonymous one)"""
        body = body or VolumeCreateSchema().load({})
        check_node(body.get("node"))
        with services().projects.creating_in(body.get("project")):
            volume = _volumes().create(body.get("name"), body["driver"], body["driver_opts"], body["labels"])
        return answer(volume, 201, url_for("volumes.VolumeItem", name=volume.name))


@blp.route("/<volume:name>")
class VolumeItem(MethodView):
    @blp.operation("getVolume", "read", 200, VolumeSchema, headers=ETAG_DOC, errors={404: None})
    def get(self, name: str) -> Response:
        """Get one volume"""
        return answer(_volumes().get(name))

    @blp.operation(
        "deleteVolume", "write", 204, errors={404: None, 409: "In use: `used_by` says by whom"}, if_match=True
    )
    def delete(self, name: str) -> None:
        """Delete a volume dockvol created (never forced)"""
        _volumes().delete(name, if_match())


@blp.route("/prune")
class VolumePrune(MethodView):
    @blp.operation("pruneVolumes", "admin", 200, PruneResultSchema, serving=Serving(fleet="prune"))
    @blp.arguments(
        PruneSchema, required=False, example={"dry_run": True, "include_named": False, "labels": ["team=web"]}
    )
    def post(self, body: dict[str, Any] | None) -> PruneResult:
        """Remove unused volumes dockvol manages"""
        body = body or PruneSchema().load({})
        return _volumes().prune(body["dry_run"], body["include_named"], body["labels"])
