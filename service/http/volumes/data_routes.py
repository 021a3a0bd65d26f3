"""Volume data over HTTP: tar streams out and in, clone, rename, browse, usage."""

from __future__ import annotations

from typing import Any

from flask import Response, g, request, url_for
from flask.views import MethodView

from ... import streams
from ...domain.volume_data import Download, Listing, Usage, VolumeData
from ...errors import Forbidden
from ...json_types import JSON
from ..context import services
from ..documents import answer, check_node
from ..smorest import ETAG_DOC, LOCATION_DOC, Serving
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

# The GETs of volume data act (they make helpers, may pause writers) and take as long as the data:
# they read the engine, not the view, and fleet mode waits for their answers (http/hooks.py).
ACTING = Serving(acting=True)
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
        body = streams.Stream(streams.gzipped(download.body), download.body.close)
    headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(body, content_type=content_type, headers=headers, direct_passthrough=True)


@blp.route("/<volume:name>/archive")
class VolumeArchive(MethodView):
    @blp.operation(
        "exportVolume",
        "read",
        200,
        description="A tar stream of the volume (or of `path` in it)",
        content_type="application/x-tar",
        errors={404: None},
        responses={
            200: {
                "description": "A tar stream of the volume (or of `path` in it)",
                "content": {
                    t: {"schema": {"type": "string", "format": "binary"}}
                    for t in ("application/x-tar", "application/gzip", "application/octet-stream")
                },
            }
        },
        serving=ACTING,
    )
    @blp.arguments(ExportArgs, location="query", as_kwargs=True)
    def get(self, name: str, path: str, pause: bool, compression: str | None = None) -> Response:
        """Export a volume as a tar stream"""
        if pause and not g.principal.allows("write"):
            raise Forbidden("pause=true needs the 'write' scope")
        # Generated clients that know no tar type ask for application/octet-stream: same bytes.
        content_type = request.accept_mimetypes.best_match(TAR_TYPES, default=TAR_TYPES[0])
        return _send(_data().export(name, path, pause), content_type, compression)

    @blp.operation(
        "importVolume",
        "admin",
        200,
        ImportResultSchema,
        errors={
            404: None,
            413: "Over DOCKVOL_MAX_IMPORT_BYTES or DOCKVOL_MAX_IMPORT_ENTRIES, or more than 100,000 symbolic links",
            422: "The body is not a tar (or tar.gz) stream, an entry is refused, or a name in `path` is over 255 "
            "bytes; the volume is unchanged",
        },
        request_body=TAR_BODY,
        serving=Serving(raw_body=True),  # a tar stream, up to DOCKVOL_MAX_IMPORT_BYTES
    )
    @blp.arguments(ImportArgs, location="query", as_kwargs=True)
    def put(self, name: str, path: str) -> JSON:
        """Import a tar (or tar.gz) stream into a volume"""
        # The cap: a declared length over it is refused before reading (http/hooks.py gives the
        # request its max_content_length), and what is read is counted as it is (archive_check.spool).
        entries = _data().import_(name, path, request.stream)
        return {"volume": name, "path": path or "/", "entries": entries}


@blp.route("/<volume:name>/clone")
class VolumeClone(MethodView):
    @blp.operation(
        "cloneVolume",
        "write",
        201,
        VolumeSchema,
        headers={**LOCATION_DOC, **ETAG_DOC},
        errors={
            404: None,
            409: "A volume of the new name exists",
            422: "The body breaks the schema, or names a node other than the source's",
        },
        links=("getVolume", "deleteVolume"),
        serving=Serving(fleet="clone"),
    )
    @blp.arguments(CloneSchema, example={"name": "site-data-copy", "labels": {"team": "web"}})
    def post(self, data: dict[str, Any], name: str) -> Response:
        """Clone a volume into a new managed volume"""
        check_node(data.get("node"))  # fleet mode runs a clone onto another node there (http/fleet)
        volume = _data().clone(name, data["name"], data["labels"], data["pause"])
        return answer(volume, 201, url_for("volumes.VolumeItem", name=volume.name))


@blp.route("/<volume:name>/rename")
class VolumeRename(MethodView):
    @blp.operation(
        "renameVolume",
        "write",
        200,
        VolumeSchema,
        headers={**LOCATION_DOC, **ETAG_DOC},
        errors={404: None, 409: "In use (see `used_by`), or the new name exists"},
    )
    @blp.arguments(RenameSchema, example={"name": "site-data-v2"})
    def post(self, data: dict[str, Any], name: str) -> Response:
        """Rename an unused volume dockvol created (the operator's token may move it to another project)"""
        if "project" in data and not g.principal.allows("admin"):
            raise Forbidden("moving a volume to another project needs the 'admin' scope")
        volume = _data().rename(name, data["name"], data.get("project"))
        return answer(volume, 200, url_for("volumes.VolumeItem", name=volume.name))


@blp.route("/<volume:name>/files")
class VolumeFiles(MethodView):
    @blp.operation(
        "browseVolume",
        "read",
        200,
        ListingSchema,
        description="A directory's entries, or a file's content",
        errors={404: None},
        responses={
            200: {
                "description": "A directory's entries, or a file's content",
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
        serving=ACTING,
    )
    @blp.arguments(FilesArgs, location="query", as_kwargs=True)
    def get(self, name: str, path: str) -> Listing | Response:
        """List a directory in a volume, or download one file"""
        found = _data().files(name, path)
        if isinstance(found, Listing):
            return found
        return _send(found, "application/octet-stream")


@blp.route("/<volume:name>/usage")
class VolumeUsage(MethodView):
    @blp.operation("getVolumeUsage", "read", 200, UsageSchema, errors={404: None}, serving=ACTING)
    def get(self, name: str) -> Usage:
        """Bytes and file count of a volume"""
        return _data().usage(name)
