"""/api/v1/repositories: where backups go (scope admin to create and forget one)."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask.views import MethodView

from ...domain.backups.repositories import Repositories, RepositoryRecord
from ...json_types import JSON
from ..context import services
from ..documents import here
from ..pagination import HEADERS_DOC, paginate
from ..responses import json_response
from ..smorest import ETAG_DOC, LOCATION_DOC, Blueprint
from .schemas import RepositoryCreateSchema, RepositoryQuerySchema, RepositorySchema

blp = Blueprint("repositories", __name__, url_prefix="/api/v1/repositories", description="Backup repositories (restic)")
_SCHEMA = RepositorySchema()


def _repositories() -> Repositories:
    return services().repositories


def _document(r: RepositoryRecord) -> JSON:
    status = _repositories().status(r)
    shown = {**r.__dict__, "path": r.path if r.s3 is None else None}
    found: JSON = _SCHEMA.dump({**shown, "node": here(), "status": status.__dict__})
    return found


@blp.route("")
class RepositoryCollection(MethodView):
    @blp.operation("listRepositories", "read", 200, RepositorySchema(many=True), headers=HEADERS_DOC)
    @blp.arguments(RepositoryQuerySchema, location="query", as_kwargs=True)
    def get(self, page: int, page_size: int) -> Response:
        """List backup repositories, each with its status as restic sees it now"""
        found, headers = paginate(_repositories().list(), page, page_size)
        return json_response([_document(r) for r in found], headers=headers)

    @blp.operation(
        "createRepository",
        "admin",
        201,
        RepositorySchema,
        headers={**LOCATION_DOC, **ETAG_DOC},
        errors={
            409: "A repository of that name exists, or another one lies at the path",
            422: "The body breaks the schema, the path holds something that is not a restic repository, or "
            "the password opens none of the repository's keys (nothing is stored)",
        },
        links=("getRepository", "deleteRepository"),
    )
    @blp.arguments(
        RepositoryCreateSchema,
        example={"name": "offsite", "path": "/srv/backups/offsite", "password": "correct horse battery staple"},
    )
    def post(self, body: dict[str, Any]) -> Response:
        """Initialise a repository, or attach an existing one with its password"""
        with services().projects.creating_in(body.get("project")):
            made = _repositories().create(
                body["name"], body.get("path"), body["password"], body.get("s3"), body.get("credentials")
            )
        location = url_for("repositories.RepositoryItem", name=made.name)
        return json_response(_document(made), 201, {"Location": location, "ETag": _etag(made)})


@blp.route("/<name>")
class RepositoryItem(MethodView):
    @blp.operation("getRepository", "read", 200, RepositorySchema, headers=ETAG_DOC, errors={404: None})
    def get(self, name: str) -> Response:
        """Get one repository, with its status"""
        found = _repositories().get(name)
        return json_response(_document(found), headers={"ETag": _etag(found)})

    @blp.operation(
        "deleteRepository", "admin", 204, errors={404: None, 409: "A backup or a restore is running with it"}
    )
    def delete(self, name: str) -> None:
        """Forget a repository: dockvol's record and its password (its data stays where it is)"""
        _repositories().delete(name)


def _etag(r: RepositoryRecord) -> str:
    return f'"{r.created_at}-{r.name}"'
