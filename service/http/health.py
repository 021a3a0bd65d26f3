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
@blp.operation("getHealth", None, 200, HealthSchema)
def healthz() -> dict[str, str]:
    """The process is up"""
    return {"status": "ok"}


@blp.route("/readyz")
@blp.operation("getReadiness", None, 200, ReadySchema, errors={503: "The engine does not answer"})
def readyz() -> dict[str, str]:
    """The engine answers"""
    info = services().engine.info()
    return {"status": "ready", "engine_api_version": info.api_version, "engine_version": info.server_version}
