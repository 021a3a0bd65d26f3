"""/api/v1/backups: back a volume up now (202), list, get, forget, and its archive."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask.views import MethodView

from ... import streams
from ...domain.backups.runs import BackupQuery, Backups
from ..context import services
from ..documents import here
from ..pagination import HEADERS_DOC, paginate
from ..responses import json_response
from ..smorest import LOCATION_DOC, Blueprint
from .schemas import BackupCreateSchema, BackupQuerySchema, BackupSchema, backup_document

blp = Blueprint("backups", __name__, url_prefix="/api/v1/backups", description="Backups of volumes (restic snapshots)")
UNREACHABLE = "Dockvol-Unreachable-Repositories"


def _backups() -> Backups:
    return services().backups


@blp.route("")
class BackupCollection(MethodView):
    @blp.operation(
        "listBackups",
        "read",
        200,
        BackupSchema(many=True),
        headers={
            **HEADERS_DOC,
            UNREACHABLE: {
                "description": "Repositories restic could not read (their backups are not in the list)",
                "schema": {"type": "string"},
            },
        },
    )
    @blp.arguments(BackupQuerySchema, location="query", as_kwargs=True)
    def get(self, page: int, page_size: int, **filters: Any) -> Response:
        """List backups, newest first: completed ones from the repositories, running and failed runs"""
        found, unreachable = _backups().list(BackupQuery(**filters))
        page_of, headers = paginate(found, page, page_size)
        if unreachable:
            headers[UNREACHABLE] = ", ".join(unreachable)
        node = here()
        return json_response([backup_document(b, node) for b in page_of], headers=headers)

    @blp.operation(
        "startBackup",
        "write",
        202,
        BackupSchema,
        headers=LOCATION_DOC,
        description="The backup as it starts (`running`); poll its Location until it is `completed` or `failed`",
        errors={
            404: "The volume or the repository does not exist",
            409: "A backup, restore or other operation of the volume is under way",
            422: "The body breaks the schema, or the repository belongs to another project than the volume",
        },
    )
    @blp.arguments(BackupCreateSchema, example={"volume": "site-data", "repository": "offsite"})
    def post(self, body: dict[str, Any]) -> Response:
        """Back a volume up now"""
        run = _backups().start(body["volume"], body["repository"])
        location = url_for("backups.BackupItem", backup_id=run.id)
        return json_response(backup_document(run, here()), 202, {"Location": location})


@blp.route("/<backup_id>")
class BackupItem(MethodView):
    @blp.operation(
        "getBackup",
        "read",
        200,
        BackupSchema,
        errors={404: None},
        headers={
            "Content-Location": {
                "description": "A run that completed: the URL of its backup (its snapshot's id)",
                "schema": {"type": "string"},
            }
        },
    )
    def get(self, backup_id: str) -> Response:
        """Get one backup (by its id, or by its run's id: then as the run is now)"""
        found = _backups().get(backup_id)
        headers = {}
        if found.id != backup_id:
            headers["Content-Location"] = url_for("backups.BackupItem", backup_id=found.id)
        return json_response(backup_document(found, here()), headers=headers)

    @blp.operation("deleteBackup", "admin", 204, errors={404: None, 409: "It is running"})
    def delete(self, backup_id: str) -> None:
        """Forget a backup (restic forget; its data goes at the repository's next prune)"""
        _backups().delete(backup_id)


@blp.route("/<backup_id>/archive")
class BackupArchive(MethodView):
    @blp.operation(
        "getBackupArchive",
        "read",
        200,
        description="The volume as the backup holds it: a tar stream",
        content_type="application/x-tar",
        errors={404: None, 409: "The backup is not completed"},
        responses={
            200: {
                "description": "The volume as the backup holds it: a tar stream",
                "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    def get(self, backup_id: str) -> Response:
        """Download a backup's archive (as `restic dump` gives it)"""
        backup = _backups().get(backup_id)
        dumped = _backups().open_archive(backup)
        body = streams.Stream(iter(lambda: dumped.read(streams.CHUNK), b""), dumped.close)
        headers = {"Content-Disposition": f'attachment; filename="{backup.volume}-{backup.id[:8]}.tar"'}
        return Response(body, content_type="application/x-tar", headers=headers, direct_passthrough=True)
