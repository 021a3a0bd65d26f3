"""Volume data over HTTP: tar streams out and in, clone, rename, browse, usage."""

from __future__ import annotations

from typing import Any

from flask import Response, g, request, url_for
from flask.views import MethodView

from ...domain import archives
from ...domain.volume_data import Download, Listing, Usage, VolumeData
from ...errors import Forbidden
from ...json_types import JSON
from ..context import services
from ..documents import answer_volume, check_node
from ..smorest import ETAG_DOC, LOCATION_DOC, links_to
from .data_schemas import (
    CloneSchema,
    ExportArgs,
    FilesArgs,
    ImportArgs,
    ImportResultSchema,
    ListingSchema,
    RenameSchema,
    UsageSchema,
)
from .routes import blp
from .schemas import VolumeSchema

# Endpoints whose request body is a tar stream, not JSON (see app.py).
RAW_BODY_ENDPOINTS = {"volumes.VolumeArchive"}
# The GETs of volume data act (they make helpers, may pause writers) and take as long as the data:
# they read the engine, not the view (app.py), and fleet mode waits for their answers (router.py).
ACTING_READS = frozenset({"volumes.VolumeArchive", "volumes.VolumeFiles", "volumes.VolumeUsage"})
TAR_TYPES = ["application/x-tar", "application/octet-stream"]
TAR_BODY = {
    "content": {
        t: {"schema": {"type": "string", "format": "binary"}}
        for t in ("application/x-tar", "application/gzip", "application/octet-stream")
    },
    "required": True,
}


def _data() -> VolumeData:
    return services().volume_data


def _send(download: Download, content_type: str, compression: str | None = None) -> Response:
    filename = download.filename
    headers = {}
    in_transit = compression is None and request.accept_encodings.quality("gzip") > 0 and content_type in TAR_TYPES
    if compression == "gzip":
        content_type, filename = "application/gzip", f"{filename}.gz"
    elif in_transit:
        headers["Content-Encoding"] = "gzip"
    elif download.size is not None:
        headers["Content-Length"] = str(download.size)
    body = download.body
    if compression == "gzip" or in_transit:
        body = archives.Stream(archives.gzipped(download.body), download.body.close)
    headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(body, content_type=content_type, headers=headers, direct_passthrough=True)


@blp.route("/<volume:name>/archive")
class VolumeArchive(MethodView):
    @blp.protected("read")
    @blp.arguments(ExportArgs, location="query", as_kwargs=True)
    @blp.response(200, description="A tar stream of the volume (or of `path` in it)", content_type="application/x-tar")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(
        summary="Export a volume as a tar stream",
        operationId="exportVolume",
        responses={
            200: {
                "description": "A tar stream of the volume (or of `path` in it)",
                "content": {
                    t: {"schema": {"type": "string", "format": "binary"}}
                    for t in ("application/x-tar", "application/gzip", "application/octet-stream")
                },
            }
        },
    )
    def get(self, name: str, path: str, pause: bool, compression: str | None = None) -> Response:
        if pause and not g.principal.allows("write"):
            raise Forbidden("pause=true needs the 'write' scope")
        # Generated clients that know no tar type ask for application/octet-stream: same bytes.
        content_type = request.accept_mimetypes.best_match(TAR_TYPES, default=TAR_TYPES[0])
        return _send(_data().export(name, path, pause), content_type, compression)

    @blp.protected("admin")
    @blp.arguments(ImportArgs, location="query", as_kwargs=True)
    @blp.response(200, ImportResultSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(
        413,
        response="REQUEST_ENTITY_TOO_LARGE",
        description="Over DOCKVOL_MAX_IMPORT_BYTES or DOCKVOL_MAX_IMPORT_ENTRIES, or more than 100,000 symbolic links",
    )
    @blp.refusal(
        "The body is not a tar (or tar.gz) stream, an entry is refused, or a name in `path` is over 255 bytes; "
        "the volume is unchanged"
    )
    @blp.doc(summary="Import a tar (or tar.gz) stream into a volume", operationId="importVolume", requestBody=TAR_BODY)
    def put(self, name: str, path: str) -> JSON:
        # The cap: a declared length over it is refused before reading (app.py gives the
        # request its max_content_length), and what is read is counted as it is (archives.spool).
        entries = _data().import_(name, path, request.stream)
        return {"volume": name, "path": path or "/", "entries": entries}


@blp.route("/<volume:name>/clone")
class VolumeClone(MethodView):
    @blp.protected("write")
    @blp.arguments(CloneSchema, example={"name": "site-data-copy", "labels": {"team": "web"}})
    @blp.response(201, VolumeSchema, headers={**LOCATION_DOC, **ETAG_DOC})
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="A volume of the new name exists")
    @blp.refusal("The body breaks the schema, or names a node other than the source's")
    @blp.doc(
        summary="Clone a volume into a new managed volume",
        operationId="cloneVolume",
        responses={201: {"links": links_to("getVolume", "deleteVolume")}},
    )
    def post(self, data: dict[str, Any], name: str) -> Response:
        check_node(data.get("node"))  # fleet mode sends a clone to another node's instance as an import
        volume = _data().clone(name, data["name"], data["labels"], data["pause"])
        return answer_volume(volume, 201, url_for("volumes.VolumeItem", name=volume.name))


@blp.route("/<volume:name>/rename")
class VolumeRename(MethodView):
    @blp.protected("write")
    @blp.arguments(RenameSchema, example={"name": "site-data-v2"})
    @blp.response(200, VolumeSchema, headers={**LOCATION_DOC, **ETAG_DOC})
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="In use (see `used_by`), or the new name exists")
    @blp.doc(summary="Rename an unused volume dockvol created", operationId="renameVolume")
    def post(self, data: dict[str, Any], name: str) -> Response:
        volume = _data().rename(name, data["name"])
        return answer_volume(volume, 200, url_for("volumes.VolumeItem", name=volume.name))


@blp.route("/<volume:name>/files")
class VolumeFiles(MethodView):
    @blp.protected("read")
    @blp.arguments(FilesArgs, location="query", as_kwargs=True)
    @blp.response(200, ListingSchema, description="A directory's entries, or a file's content")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(
        summary="List a directory in a volume, or download one file",
        operationId="browseVolume",
        responses={
            200: {
                "description": "A directory's entries, or a file's content",
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    def get(self, name: str, path: str) -> Listing | Response:
        found = _data().files(name, path)
        if isinstance(found, Listing):
            return found
        return _send(found, "application/octet-stream")


@blp.route("/<volume:name>/usage")
class VolumeUsage(MethodView):
    @blp.protected("read")
    @blp.response(200, UsageSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(summary="Bytes and file count of a volume", operationId="getVolumeUsage")
    def get(self, name: str) -> Usage:
        return _data().usage(name)
