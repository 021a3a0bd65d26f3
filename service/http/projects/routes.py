"""/api/v1/projects: the projects a token may see, their quotas and what each holds."""

from __future__ import annotations

import marshmallow as ma
from flask import Response
from flask.views import MethodView

from ...config import QUOTA_KEYS
from ...json_types import JSON
from ..context import services
from ..fleet.answers import unreachable
from ..pagination import HEADERS_DOC, PageArgs, paginate
from ..responses import json_response
from ..smorest import Blueprint, Schema

blp = Blueprint("projects", __name__, url_prefix="/api/v1/projects", description="Projects: tenants and quotas")


class ProjectQuotaSchema(Schema):
    volumes = ma.fields.Integer(metadata={"description": "Volumes, the anonymous ones bindings make included"})
    bindings = ma.fields.Integer()
    sharing_groups = ma.fields.Integer()
    backups = ma.fields.Integer()
    bytes = ma.fields.Integer(
        metadata={
            "description": "Measured volume bytes: an import or clone that would pass it is refused; while "
            "usage is over it, new volumes and imports are refused"
        }
    )


class ProjectUsageSchema(Schema):
    volumes = ma.fields.Integer(required=True)
    bindings = ma.fields.Integer(required=True)
    sharing_groups = ma.fields.Integer(required=True)
    backups = ma.fields.Integer(required=True)
    bytes = ma.fields.Integer(
        required=True,
        metadata={
            "description": "The engine's size (system df) of the project's volumes, measured at most "
            "DOCKVOL_USAGE_INTERVAL seconds ago"
        },
    )
    bytes_measured_at = ma.fields.String(required=True, metadata={"description": "When bytes was measured (RFC 3339)"})


class ProjectSchema(Schema):
    name = ma.fields.String(required=True)
    quota = ma.fields.Nested(ProjectQuotaSchema, metadata={"description": "Limits; an absent one is unlimited"})
    usage = ma.fields.Nested(ProjectUsageSchema)


def _document(name: str, silent: set[str]) -> JSON:
    """`name` as shown, with its usage fleet-wide (fleet mode: adds the nodes that did not say to
    `silent`)."""
    projects = services().projects
    usage = projects.usage(name)
    silent.update(usage.unreachable)
    quota = projects.quota(name)
    return {
        "name": name,
        "quota": {k: quota[k] for k in QUOTA_KEYS if k in quota},
        "usage": {
            "volumes": usage.volumes,
            "bindings": usage.bindings,
            "sharing_groups": usage.sharing_groups,
            "backups": services().backups.count(name),
            "bytes": usage.bytes,
            "bytes_measured_at": usage.bytes_measured_at,
        },
    }


@blp.route("")
class ProjectCollection(MethodView):
    @blp.operation("listProjects", "read", 200, ProjectSchema(many=True), headers=HEADERS_DOC)
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    def get(self, page: int, page_size: int) -> Response:
        """List the projects this token may see (the project `*`: all; others: their own)"""
        names, headers = paginate(services().projects.names(), page, page_size)
        silent: set[str] = set()
        shown = [_document(n, silent) for n in names]
        return json_response(shown, headers={**headers, **unreachable(sorted(silent))})


@blp.route("/<name>")
class ProjectItem(MethodView):
    @blp.operation("getProject", "read", 200, ProjectSchema, errors={404: None})
    def get(self, name: str) -> Response:
        """Get one project, with its quota and usage"""
        silent: set[str] = set()
        shown = _document(services().projects.get(name), silent)
        return json_response(shown, headers=unreachable(sorted(silent)))
