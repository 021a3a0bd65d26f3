"""/api/v1/restores: a backup into a new volume or over an unused one (202; scope admin), and how it went."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask.views import MethodView

from ...domain.backups.restores import Restores
from ..backups.schemas import RestoreCreateSchema, RestoreQuerySchema, RestoreSchema, restore_document
from ..context import services
from ..documents import here
from ..pagination import HEADERS_DOC, paginate
from ..responses import json_response
from ..smorest import LOCATION_DOC, Blueprint

blp = Blueprint("restores", __name__, url_prefix="/api/v1/restores", description="Restores of backups")


def _restores() -> Restores:
    return services().restores


@blp.route("")
class RestoreCollection(MethodView):
    @blp.operation("listRestores", "read", 200, RestoreSchema(many=True), headers=HEADERS_DOC)
    @blp.arguments(RestoreQuerySchema, location="query", as_kwargs=True)
    def get(self, page: int, page_size: int) -> Response:
        """List restores, newest first"""
        found, headers = paginate(_restores().list(), page, page_size)
        node = here()
        return json_response([restore_document(r, node) for r in found], headers=headers)

    @blp.operation(
        "startRestore",
        "admin",
        202,
        RestoreSchema,
        headers=LOCATION_DOC,
        description="The restore as it starts (`running`); poll its Location. An archive that fails an "
        "import's checks fails the restore before anything is written",
        errors={
            404: "The backup does not exist, or (`replace`) the volume does not",
            409: "The volume exists (`replace`: a container uses it, or a backup or restore of it runs), "
            "or the backup is not completed",
            422: "The body breaks the schema, or (`replace`) the volume is of another project than the backup",
        },
    )
    @blp.arguments(RestoreCreateSchema, example={"backup": "run-0a1b2c3d4e5f6a7b", "volume": "site-data-restored"})
    def post(self, body: dict[str, Any]) -> Response:
        """Restore a backup into a new volume, or replace an existing one's content"""
        restore = _restores().start(body["backup"], body["volume"], body["replace"])
        location = url_for("restores.RestoreItem", restore_id=restore.id)
        return json_response(restore_document(restore, here()), 202, {"Location": location})


@blp.route("/<restore_id>")
class RestoreItem(MethodView):
    @blp.operation("getRestore", "read", 200, RestoreSchema, errors={404: None})
    def get(self, restore_id: str) -> Response:
        """Get one restore"""
        return json_response(restore_document(_restores().get(restore_id), here()))
