"""/api/v1/nodes: the Docker hosts this service answers for."""

from __future__ import annotations

import dataclasses

import marshmallow as ma
from flask import Response
from flask.views import MethodView

from ..context import services
from ..pagination import HEADERS_DOC, PageArgs, paginate
from ..responses import json_response
from ..smorest import Blueprint, Schema, Serving

blp = Blueprint("nodes", __name__, url_prefix="/api/v1/nodes", description="The Docker hosts dockvol answers for")


class NodeSchema(Schema):
    name = ma.fields.String(required=True, metadata={"description": "The host's name: `node` in every resource"})
    id = ma.fields.String(required=True, metadata={"description": "Swarm's node id (standalone: the engine's id)"})
    role = ma.fields.String(required=True, metadata={"enum": ["manager", "worker", "standalone"]})
    availability = ma.fields.String(required=True, metadata={"enum": ["active", "pause", "drain"]})
    state = ma.fields.String(required=True, metadata={"description": "Swarm's node state (standalone: ready)"})
    dockvol = ma.fields.String(required=True, metadata={"enum": ["up", "unreachable"]})
    engine_version = ma.fields.String(required=True)
    api_version = ma.fields.String(required=True)


@blp.route("")
class NodeCollection(MethodView):
    @blp.operation("listNodes", "read", 200, NodeSchema(many=True), headers=HEADERS_DOC, serving=Serving(fleet="nodes"))
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    def get(self, page: int, page_size: int) -> Response:
        """List the nodes (one engine: one node, role standalone)"""
        nodes, headers = paginate(services().nodes.list(), page, page_size)
        return json_response([dataclasses.asdict(n) for n in nodes], headers=headers)
