"""The one way each kind of answer is written that no schema writes: a JSON document (as the
schemas' answers are, through the app's JSON provider) and a Server-Sent Events stream."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from flask import Response, current_app

JSON_TYPE = "application/json"
# No cache may keep an event stream, and no proxy may hold its events back to fill a buffer.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def json_response(
    document: Any, status: int = 200, headers: dict[str, str] | None = None, content_type: str = JSON_TYPE
) -> Response:
    """A JSON answer built by the caller (flask-smorest passes a Response through as it is): for
    hot paths whose documents are assembled without marshmallow, and for problems."""
    response = cast(Response, current_app.json.response(document))  # the app's Response class
    response.status_code = status
    response.content_type = content_type
    response.headers.update(headers or {})
    return response


def event_stream(events: Iterable[str], headers: dict[str, str] | None = None) -> Response:
    """Server-Sent Events, as they come."""
    return Response(events, mimetype="text/event-stream", headers={**STREAM_HEADERS, **(headers or {})})
