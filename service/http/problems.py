"""The one mapping from errors to `application/problem+json` responses (RFC 9457)."""

from __future__ import annotations

import logging
from dataclasses import asdict, is_dataclass
from http import HTTPStatus
from typing import Any

import marshmallow as ma
from flask import Response, g
from werkzeug.exceptions import HTTPException

from .. import errors
from .context import services
from .responses import json_response

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 5
INVALID_INPUT = "invalid-input"  # every 422 about the caller's input: its schema's or a rule's

# dockvol's errors -> (status, problem type slug). Order matters: the first match wins.
STATUS = (
    (errors.Unauthenticated, 401, "unauthenticated"),
    (errors.QuotaExceeded, 403, "quota-exceeded"),
    (errors.Forbidden, 403, "forbidden"),
    (errors.NotFound, 404, "not-found"),
    (errors.Conflict, 409, "conflict"),
    (errors.PreconditionFailed, 412, "precondition-failed"),
    (errors.TooLarge, 413, "payload-too-large"),
    (errors.InvalidInput, 422, INVALID_INPUT),
    (errors.EngineRejected, 422, "engine-rejected"),
    (errors.EngineFailure, 502, "engine-failure"),
    (errors.BackupFailure, 502, "backup-failure"),
    (errors.EngineUnavailable, 503, "engine-unavailable"),
)


class ProblemSchema(ma.Schema):
    """What every error response carries (documentation only)."""

    type = ma.fields.String(metadata={"description": "A URI naming the kind of problem"})
    title = ma.fields.String(metadata={"description": "The HTTP status phrase"})
    status = ma.fields.Integer()
    detail = ma.fields.String(metadata={"description": "What went wrong, for a person"})
    request_id = ma.fields.String()
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        metadata={"description": "422 only: field (dotted path) -> messages"},
    )
    used_by = ma.fields.List(ma.fields.Dict(), metadata={"description": "409 'in use' only: who uses the resource"})
    quota = ma.fields.String(metadata={"description": "403 quota-exceeded only: which quota (volumes, bindings, ...)"})
    limit = ma.fields.Integer(metadata={"description": "403 quota-exceeded only: the project's limit"})
    used = ma.fields.Integer(metadata={"description": "403 quota-exceeded only: what the project holds"})


def problem(status: int, slug: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body = {
        "type": f"urn:dockvol:problem:{slug}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "request_id": getattr(g, "request_id", None),
        **{k: _jsonable(v) for k, v in extra.items()},
    }
    return json_response(body, status, headers, CONTENT_TYPE)


def from_dockvol_error(error: errors.DockvolError) -> Response:
    for cls, status, slug in STATUS:
        if isinstance(error, cls):
            headers = {}
            if status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="dockvol"'
            if status == 503:
                headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            extra = dict(error.extra)
            if "used_by" in extra:  # entries are shown as in the volume's `used_by`, with their node
                node = services().nodes.here()
                extra["used_by"] = [{"node": node, **_jsonable(use)} for use in extra["used_by"]]
            return problem(status, slug, error.detail, headers, **extra)
    return from_unexpected(error)


def invalid(messages: Any) -> Response:
    """A body that does not match its schema (marshmallow's messages), as the views answer it."""
    return problem(422, INVALID_INPUT, "The request does not match the schema.", errors=_flatten(messages))


def error_from(status: int, document: Any) -> errors.DockvolError:
    """Another instance's problem, as the error it was there (fleet mode passes it on)."""
    document = document if isinstance(document, dict) else {}
    detail = str(document.get("detail") or HTTPStatus(status).phrase)
    extra = {k: v for k, v in document.items() if k in ("errors", "used_by", "nodes")}
    kind = next((cls for cls, code, _ in STATUS if code == status), errors.EngineFailure)
    error = errors.DockvolError.__new__(kind)  # InvalidInput's own constructor takes one field
    errors.DockvolError.__init__(error, detail, **extra)
    return error


def from_http_exception(error: HTTPException) -> Response:
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    data = getattr(error, "data", None) or {}
    extra: dict[str, Any] = {}
    detail = error.description or error.name
    if "messages" in data:  # webargs' validation errors, per location
        if error.code == 422:
            return invalid(data["messages"])
        extra["errors"] = _flatten(data["messages"])
        detail = "The request body is not valid JSON."
    slug = INVALID_INPUT if error.code == 422 else error.name.lower().replace(" ", "-")
    if error.code == 408:
        headers["Connection"] = "close"  # the rest of a slow body is not worth waiting for
    return problem(error.code or 500, slug, detail, headers, **extra)


def from_unexpected(error: Exception) -> Response:
    log.exception("unexpected error", exc_info=error)
    return problem(500, "internal-error", "Something went wrong inside dockvol; the request id finds it in the log.")


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """{"json": {"mounts": {0: {"target": [..]}}}} -> {"mounts.0.target": [..]}."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            if not prefix and key in ("json", "query", "querystring", "headers", "view_args", "path"):
                name = ""
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in _flatten(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "body"] = list(messages)
    elif isinstance(messages, list):
        for i, m in enumerate(messages):
            out.update(_flatten(m, f"{prefix}.{i}" if prefix else str(i)))
    else:
        out[prefix or "body"] = [str(messages)]
    return out


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
