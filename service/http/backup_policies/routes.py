"""/api/v1/backup-policies: scheduled backups of volumes, and their retention (scope write)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, url_for
from flask.views import MethodView

from ...domain.backups.policies import Policies, Policy
from ...domain.backups.retention import Rules
from ...domain.backups.schedule import Schedule
from ...errors import InvalidInput
from ...json_types import JSON
from ..backups.schemas import BackupSchema, backup_document
from ..context import services
from ..documents import here
from ..pagination import HEADERS_DOC, PageArgs, paginate
from ..responses import json_response
from ..smorest import ETAG_DOC, LOCATION_DOC, Blueprint, if_match
from .schemas import (
    EXAMPLE,
    PolicyCreateSchema,
    PolicyPruneResultSchema,
    PolicyPruneSchema,
    PolicyReplaceSchema,
    PolicySchema,
    policy_document,
)

blp = Blueprint(
    "backup_policies", __name__, url_prefix="/api/v1/backup-policies", description="Scheduled backups and retention"
)
_SCHEMA = PolicySchema()


def _policies() -> Policies:
    return services().policies


def _document(p: Policy) -> JSON:
    runs = [] if p.paused else [t.isoformat() for t in p.schedule.next_runs(datetime.now(UTC))]
    found: JSON = _SCHEMA.dump(policy_document(p, here(), runs, _policies().last_run(p.name)))
    return found


def _shown(p: Policy, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return json_response(_document(p), status, {"ETag": f'"{p.version}"', **(headers or {})})


def _spec(body: dict[str, Any], name: str) -> Policy:
    if (body.get("volumes") is None) == (body.get("selector") is None):
        raise InvalidInput("volumes", "give either `volumes` or `selector`, not both")
    schedule = body["schedule"]
    return Policy(
        name=name,
        repository=body["repository"],
        schedule=Schedule(schedule["cron"], schedule["timezone"]),
        volumes=tuple(body["volumes"]) if body.get("volumes") is not None else None,
        labels=tuple(body["selector"]["labels"]) if body.get("selector") is not None else None,
        jitter_seconds=schedule["jitter_seconds"],
        paused=body["paused"],
        starting_deadline_seconds=body["starting_deadline_seconds"],
        retention=Rules(**body["retention"]),
    )


@blp.route("")
class PolicyCollection(MethodView):
    @blp.operation("listBackupPolicies", "read", 200, PolicySchema(many=True), headers=HEADERS_DOC)
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    def get(self, page: int, page_size: int) -> Response:
        """List backup policies, each with its next runs and its last one"""
        found, headers = paginate(_policies().list(), page, page_size)
        return json_response([_document(p) for p in found], headers=headers)

    @blp.operation(
        "createBackupPolicy",
        "write",
        201,
        PolicySchema,
        headers={**LOCATION_DOC, **ETAG_DOC},
        errors={
            409: "A backup policy of that name exists",
            422: "The body breaks the schema, or names a repository the project lacks, a cron expression "
            "or a time zone that does not read",
        },
        links=("getBackupPolicy", "deleteBackupPolicy"),
    )
    @blp.arguments(PolicyCreateSchema, example=EXAMPLE)
    def post(self, body: dict[str, Any]) -> Response:
        """Create a backup policy"""
        with services().projects.creating_in(body.get("project")):
            made = _policies().create(_spec(body, body["name"]))
        location = url_for("backup_policies.PolicyItem", name=made.name)
        return _shown(made, 201, {"Location": location})


@blp.route("/<name>")
class PolicyItem(MethodView):
    @blp.operation("getBackupPolicy", "read", 200, PolicySchema, headers=ETAG_DOC, errors={404: None})
    def get(self, name: str) -> Response:
        """Get one backup policy"""
        return _shown(_policies().get(name))

    @blp.operation(
        "replaceBackupPolicy",
        "write",
        200,
        PolicySchema,
        headers=ETAG_DOC,
        errors={404: None, 422: "As for a create; a `name` other than the path's"},
        if_match=True,
    )
    @blp.arguments(PolicyReplaceSchema, example=EXAMPLE)
    def put(self, body: dict[str, Any], name: str) -> Response:
        """Replace a backup policy (a changed schedule runs from now on)"""
        if body.get("name", name) != name:
            raise InvalidInput("name", "the body's name must be the policy's name")
        return _shown(_policies().replace(name, _spec(body, name), if_match()))

    @blp.operation("deleteBackupPolicy", "write", 204, errors={404: None}, if_match=True)
    def delete(self, name: str) -> None:
        """Delete a backup policy (its backups stay)"""
        _policies().delete(name, if_match())


@blp.route("/<name>/runs")
class PolicyRuns(MethodView):
    @blp.operation(
        "runBackupPolicy",
        "write",
        202,
        BackupSchema(many=True),
        description="The backups it started (`running`): poll each one's URL",
        errors={404: None, 409: "Every one of its volumes is busy with another operation"},
    )
    def post(self, name: str) -> Response:
        """Run a backup policy now"""
        started = _policies().run(_policies().get(name))
        node = here()
        return json_response([backup_document(b, node) for b in started], 202)


@blp.route("/<name>/prune")
class PolicyPrune(MethodView):
    @blp.operation(
        "pruneBackupPolicy",
        "write",
        200,
        PolicyPruneResultSchema,
        errors={404: None, 409: "Its repository cannot be read now"},
    )
    @blp.arguments(PolicyPruneSchema, example={"dry_run": True})
    def post(self, body: dict[str, Any], name: str) -> Response:
        """Apply a backup policy's retention now (its own completed backups, volume by volume)"""
        pruned = _policies().prune(_policies().get(name), body["dry_run"])
        answer = {
            "keep": [{"backup": b, "reasons": why} for b, why in pruned.keep],
            "remove": pruned.remove,
            "dry_run": body["dry_run"],
        }
        return json_response(PolicyPruneResultSchema().dump(answer))
