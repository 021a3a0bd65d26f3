"""Open endpoints: liveness and readiness."""

from __future__ import annotations

import marshmallow as ma

from .context import services
from .smorest import Blueprint, Schema

blp = Blueprint("health", __name__, description="Liveness and readiness (no token needed)")


class HealthSchema(Schema):
    status = ma.fields.String(metadata={"example": "ok"})


class ReadySchema(Schema):
    status = ma.fields.String(metadata={"example": "ready"})
    engine_api_version = ma.fields.String()
    engine_version = ma.fields.String()


@blp.route("/healthz")
@blp.response(200, HealthSchema)
@blp.doc(summary="The process is up", operationId="getHealth")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@blp.route("/readyz")
@blp.response(200, ReadySchema)
@blp.alt_response(503, response="SERVICE_UNAVAILABLE", description="The engine does not answer")
@blp.doc(summary="The engine answers", operationId="getReadiness")
def readyz() -> dict[str, str]:
    info = services().engine.info()
    return {"status": "ready", "engine_api_version": info.api_version, "engine_version": info.server_version}
