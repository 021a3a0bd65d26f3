"""GET /api/v1/events: every change to volumes, bindings and sharing groups (the node's change
feed, domain/watch.py), as Server-Sent Events. A client the feed cannot resume, or that did not
keep up, gets `resync`: re-list, then watch again. Idle streams carry a `heartbeat` every
HEARTBEAT seconds."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import marshmallow as ma
from flask import Response, request

from ..domain.bindings import BindingQuery
from ..domain.changes import BINDING, GROUP, VOLUME, Key
from ..domain.projects import current
from ..domain.volumes import VolumeQuery
from ..domain.watch import RESOURCES, Change, Filters, Watch, iso
from ..engine.viewed import ViewedEngine
from ..errors import InvalidInput, NotFound
from ..json_types import JSON
from ..wiring import Services
from .context import services
from .documents import binding_document, group_document, volume_document
from .responses import event_stream
from .smorest import Blueprint, Schema, Serving

HEARTBEAT = 15.0  # seconds between heartbeats on an idle stream

blp = Blueprint(
    "events", __name__, url_prefix="/api/v1", description="Watch every change (Server-Sent Events)", per_node=True
)


def new_watch(services: Services, engine: ViewedEngine, observe: Callable[[str, float], None]) -> Watch:
    """The node's change feed, showing each resource as GET does; it reads them from the view of
    the engine (`engine`) as it stands right after each event."""
    return Watch(_representer(services, engine), _everything(services, engine), observe)


def _representer(services: Services, engine: ViewedEngine) -> Callable[[Key], JSON | None]:
    """Read one resource the way GET shows it; None when it does not exist (or is hidden)."""

    def represent(key: Key) -> JSON | None:
        resource, name = key
        engine.trusted_scope()  # the view as it stands, right after the event
        try:
            if resource == VOLUME:
                return volume_document(services.volumes.get(name), services.nodes.here())
            if resource == BINDING:
                return binding_document(services.bindings.get(name), services.nodes.here())
            return group_document(services.sharing_groups.get(name), services.nodes.here())
        except NotFound:
            return None
        finally:
            engine.end_scope()

    return represent


def _everything(services: Services, engine: ViewedEngine) -> Callable[[], dict[Key, JSON]]:
    """Every resource the way the lists show it, by key."""

    def read() -> dict[Key, JSON]:
        engine.trusted_scope()
        try:
            node = services.nodes.here()
            found: dict[Key, JSON] = {
                (VOLUME, v.name): volume_document(v, node) for v in services.volumes.list(VolumeQuery())
            }
            bindings = services.bindings.list(BindingQuery())
            found.update(((BINDING, b.name), binding_document(b, node)) for b in bindings)
            found.update(((GROUP, g.name), group_document(g, node)) for g in services.sharing_groups.list())
            return found
        finally:
            engine.end_scope()

    return read


# -- the route ---------------------------------------------------------------------------------------


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
        "object; a token hears its own project's only), `resync` (re-list, then watch again) and `heartbeat`"
    ),
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


@blp.route("/events")
@blp.operation("watchEvents", "read", responses={200: STREAM_DOC}, serving=Serving(fleet="watch"))
@blp.arguments(EventQuerySchema, location="query", as_kwargs=True)
def events(
    resource: Sequence[str] = RESOURCES, name: str | None = None, label: Sequence[str] = (), **rest: Any
) -> Response:
    """Watch every change to volumes, bindings and sharing groups"""
    last = request.headers.get("Last-Event-ID") or rest.get("last_event_id")
    last_id = _parse_id(last) if last else None
    watch = services().watch
    node = services().nodes.here()
    filters = Filters(tuple(resource) or RESOURCES, name, tuple(label), current())  # the caller's project only
    client, missed, position = watch.subscribe(filters, last_id)
    heartbeat = HEARTBEAT

    def stream() -> Iterator[str]:
        try:
            yield "retry: 2000\n\n"
            if missed is None:
                yield _resync(node)
                return
            for change in missed:
                yield _sse(change, node)
            # Where the client stands, even if nothing changes before it goes: an id with no event
            # (SSE clients keep it as their last id; fleet mode's merged watch needs it per node).
            yield f"id: {position[0]}-{position[1]}\n\n"
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
                    yield f"event: heartbeat\ndata: {json.dumps({'node': node, 'at': iso(_now())})}\n\n"
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
        "at": iso(change.at),
    }
    if change.document is not None:
        data["object"] = change.document
    return f"id: {change.id[0]}-{change.id[1]}\nevent: {change.kind}\ndata: {json.dumps(data)}\n\n"


def _resync(node: str) -> str:
    data = {"node": node, "at": iso(_now()), "reason": "re-list, then watch again"}
    return f"event: resync\ndata: {json.dumps(data)}\n\n"


def _now() -> int:
    return time.time_ns()


def _parse_id(text: str) -> tuple[int, int]:
    at, sep, k = text.partition("-")
    if not (sep and at.isdigit() and k.isdigit()):
        raise InvalidInput("last_event_id", "not an id this service gave (AT-K)")
    return int(at), int(k)
