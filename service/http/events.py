"""GET /api/v1/events: every change to volumes, bindings and sharing groups (the node's change
feed, domain/watch.py), as Server-Sent Events. A client the feed cannot resume, or that did not
keep up, gets `resync`: re-list, then watch again. Idle streams carry a `heartbeat` every
HEARTBEAT seconds."""

from __future__ import annotations

import queue
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import marshmallow as ma
from flask import Response, request

from .. import sse, times
from ..domain.projects import current
from ..domain.watch import RESOURCES, Change, Filters, id_text, parse_id
from ..errors import InvalidInput
from .context import services
from .responses import event_stream
from .smorest import Blueprint, Schema, Serving

HEARTBEAT = 15.0  # seconds between heartbeats on an idle stream

blp = Blueprint(
    "events", __name__, url_prefix="/api/v1", description="Watch every change (Server-Sent Events)", per_node=True
)


class EventQuerySchema(Schema):
    resource = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(RESOURCES)),
        metadata={"description": "Only these resources (repeatable)"},
    )
    name = ma.fields.String(metadata={"description": "Only the resource of this name"})
    label = ma.fields.List(ma.fields.String(), metadata={"description": "`k` or `k=v`, as the lists (repeatable)"})
    last_event_id = ma.fields.String(metadata={"description": "Resume after this id (as the Last-Event-ID header)"})


STREAM_DOC = {
    "description": (
        "text/event-stream: events `created`, `updated`, `deleted` (data: resource, name, node, project, at, "
        "object; a token hears its own project's only; backup runs and restores are told within a second of their "
        "record's change), `resync` (re-list, then watch again) and `heartbeat`"
    ),
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


@blp.route("/events")
@blp.operation("watchEvents", "read", responses={200: STREAM_DOC}, serving=Serving(fleet="watch"))
@blp.arguments(EventQuerySchema, location="query", as_kwargs=True)
def events(
    resource: Sequence[str] = RESOURCES, name: str | None = None, label: Sequence[str] = (), **rest: Any
) -> Response:
    """Watch every change to volumes, bindings, sharing groups, backup runs and restores"""
    last = request.headers.get("Last-Event-ID") or rest.get("last_event_id")
    last_id = _parse_id(last) if last else None
    watch = services().watch
    node = services().nodes.here()
    filters = Filters(tuple(resource) or RESOURCES, name, tuple(label), current())  # the caller's project only
    client, missed, position = watch.subscribe(filters, last_id)
    heartbeat = HEARTBEAT

    def stream() -> Iterator[str]:
        try:
            yield sse.RETRY
            if missed is None:
                yield _resync(node)
                return
            for change in missed:
                yield _sse(change, node)
            # Where the client stands, even if nothing changes before it goes: an id with no event
            # (SSE clients keep it as their last id; fleet mode's merged watch needs it per node).
            yield sse.block(id=id_text(position))
            while True:
                waited: Change | Literal["heartbeat"] | None
                try:
                    waited = client.changes.get(timeout=0 if client.dropped else heartbeat)
                except queue.Empty:
                    waited = None if client.dropped else "heartbeat"
                if waited is None:
                    yield _resync(node)  # it did not keep up: what it missed is gone
                    return
                if waited == "heartbeat":
                    yield sse.heartbeat(node)
                else:
                    yield _sse(waited, node)
        finally:
            watch.unsubscribe(client)

    return event_stream(stream())


def _sse(change: Change, node: str) -> str:
    data: dict[str, Any] = {
        "resource": change.resource,
        "name": change.name,
        "node": node,
        "project": change.project,
        "at": times.text(change.at, 6),
    }
    if change.document is not None:
        data["object"] = change.document
    return sse.block(change.kind, data, id=id_text(change.id))


def _resync(node: str) -> str:
    data = {"node": node, "at": times.now(), "reason": "re-list, then watch again"}
    return sse.block("resync", data)


def _parse_id(text: str) -> tuple[int, int]:
    try:
        return parse_id(text)
    except ValueError:
        raise InvalidInput("last_event_id", "not an id this service gave (AT-K)") from None
