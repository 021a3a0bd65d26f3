"""GET /api/v1/events: every change to volumes, bindings and sharing groups, as Server-Sent Events.

Each worker's `Watch` listens to its view of the engine (engine/viewed.py): after the view applies
an engine event, the watch reads each resource the event touched (domain/changes.py) from the
view as it now stands, compares it with what it showed last, and records `created`, `updated` or
`deleted` with the resource's representation. Ids are the engine event's time and a counter
(`AT-K`), so every worker gives the same change the same id and `Last-Event-ID` resumes on any of
them, within the RETAIN changes a worker keeps (and since its view began). A client asking from
further back, or whose view had to list the engine again (the stream broke: what happened
meanwhile is unknown), gets `resync`: re-list, then watch again. Each client has a queue of at
most QUEUE changes: one that does not keep up gets `resync` and is dropped, never slowing the
others. Idle streams carry a `heartbeat` every HEARTBEAT seconds.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import marshmallow as ma
from flask import Response, request

from ..domain.changes import BINDING, GROUP, VOLUME, Key, touched
from ..engine.memory import labels_match
from ..engine.port import ContainerRecord, EngineEvent
from ..errors import InvalidInput, NotFound
from ..json_types import JSON
from .context import services
from .documents import binding_document, group_document, volume_document
from .smorest import Blueprint, Schema, Serving

if TYPE_CHECKING:
    from ..app import Services

log = logging.getLogger(__name__)
RETAIN = 10_000  # changes a worker keeps for clients that resume
QUEUE = 1_000  # changes a client may have waiting before it is dropped
HEARTBEAT = 15.0  # seconds between heartbeats on an idle stream
RESOURCES = (VOLUME, BINDING, GROUP)

blp = Blueprint(
    "events", __name__, url_prefix="/api/v1", description="Watch every change (Server-Sent Events)", per_node=True
)


@dataclass(frozen=True)
class Change:
    id: tuple[int, int]
    kind: str  # created | updated | deleted
    resource: str
    name: str
    at: int
    document: JSON | None

    def sse(self, node: str) -> str:
        data: dict[str, Any] = {"resource": self.resource, "name": self.name, "node": node, "at": _iso(self.at)}
        if self.document is not None:
            data["object"] = self.document
        return f"id: {self.id[0]}-{self.id[1]}\nevent: {self.kind}\ndata: {json.dumps(data)}\n\n"


@dataclass(frozen=True)
class Filters:
    resources: tuple[str, ...] = RESOURCES
    name: str | None = None
    labels: tuple[str, ...] = ()

    def admit(self, change: Change, labels: dict[str, str] | None) -> bool:
        return (
            change.resource in self.resources
            and self.name in (None, change.name)
            and (not self.labels or labels is not None and labels_match(labels, self.labels))
        )


@dataclass(eq=False)
class Client:
    filters: Filters
    changes: queue.Queue[Change | None] = field(default_factory=lambda: queue.Queue(QUEUE))  # None: dropped
    dropped: bool = False


class Watch:
    def __init__(
        self,
        represent: Callable[[Key], JSON | None],
        everything: Callable[[], dict[Key, JSON]],
        observe: Callable[[str, float], None],
    ) -> None:
        self._represent = represent
        self._everything = everything
        self._observe = observe
        self._lock = threading.Lock()
        self._shown: dict[Key, str] = {}  # what each resource looked like at its last change
        self._kept: deque[tuple[Change, dict[str, str] | None]] = deque(maxlen=RETAIN)  # with the labels it had
        self._clients: set[Client] = set()
        self._since: tuple[int, int] = (0, 0)  # the first id this worker can vouch for
        self._seen_at = 0

    # -- fed by the view, on its thread ------------------------------------------------------------

    def relisted(self, first: bool) -> None:
        """The view listed the engine: what it shows now is the base; after a break, what changed
        meanwhile is unknown, so clients must re-list."""
        shown = {key: json.dumps(document, sort_keys=True) for key, document in self._everything().items()}
        with self._lock:
            self._shown = shown
            self._kept.clear()
            self._since = (max(self._seen_at + 1, time.time_ns()), 0)  # ids before are not kept
            clients = list(self._clients)
        if not first:
            for client in clients:
                self._drop(client)

    def applied(self, event: EngineEvent, before: ContainerRecord | None, after: ContainerRecord | None) -> None:
        for k, key in enumerate(touched(event, before, after)):
            document = self._represent(key)
            shown = None if document is None else json.dumps(document, sort_keys=True)
            with self._lock:
                last = self._shown.get(key)
                if shown == last:
                    continue
                if shown is None:
                    self._shown.pop(key, None)
                    if last is None:
                        continue  # nothing that was shown went
                    kind = "deleted"
                else:
                    self._shown[key] = shown
                    kind = "created" if last is None else "updated"
                change = Change((event.at, k), kind, key[0], key[1], event.at, document)
                labels = (document or {}).get("labels") if document else _labels_of(last)
                self._kept.append((change, labels))
                self._seen_at = max(self._seen_at, event.at)
                clients = list(self._clients)
            for client in clients:
                if client.filters.admit(change, labels):
                    try:
                        client.changes.put_nowait(change)
                    except queue.Full:
                        self._drop(client)

    # -- clients -----------------------------------------------------------------------------------

    def subscribe(
        self, filters: Filters, last_id: tuple[int, int] | None
    ) -> tuple[Client, list[Change] | None, tuple[int, int]]:
        """A new client, what it missed since `last_id` (None: it must re-list), and where it now
        stands: the id to resume from to miss nothing after this moment."""
        client = Client(filters)
        self._observe("watchers", 1)
        with self._lock:
            self._clients.add(client)
            position = max(self._kept[-1][0].id if self._kept else self._since, last_id or (0, 0))
            if last_id is None:
                return client, [], position
            if last_id < self._since or (self._kept and last_id < self._kept[0][0].id and len(self._kept) == RETAIN):
                return client, None, position
            missed = [c for c, labels in self._kept if c.id > last_id and filters.admit(c, labels)]
        return client, missed, position

    def unsubscribe(self, client: Client) -> None:
        self._observe("watchers", -1)
        with self._lock:
            self._clients.discard(client)

    def watchers(self) -> int:
        with self._lock:
            return len(self._clients)

    def _drop(self, client: Client) -> None:
        client.dropped = True
        with self._lock:
            self._clients.discard(client)
        self._observe("dropped", 1)
        try:
            client.changes.put_nowait(None)  # wakes it: it says resync and ends
        except queue.Full:
            pass  # it wakes on its next look and finds itself dropped


def _labels_of(shown: str | None) -> dict[str, str] | None:
    labels: dict[str, str] | None = json.loads(shown).get("labels") if shown else None
    return labels


def _iso(at: int) -> str:
    return datetime.fromtimestamp(at / 1e9, UTC).isoformat().replace("+00:00", "Z")


def representer(services: Services) -> Callable[[Key], JSON | None]:
    """Read one resource the way GET shows it; None when it does not exist (or is hidden)."""
    engine = services.engine

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


def everything(services: Services) -> Callable[[], dict[Key, JSON]]:
    """Every resource the way the lists show it, by key."""
    from ..domain.bindings import BindingQuery
    from ..domain.volumes import VolumeQuery

    engine = services.engine

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
        "text/event-stream: events `created`, `updated`, `deleted` (data: resource, name, node, at, "
        "object), `resync` (re-list, then watch again) and `heartbeat`"
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
    client, missed, position = watch.subscribe(Filters(tuple(resource) or RESOURCES, name, tuple(label)), last_id)
    heartbeat = HEARTBEAT

    def stream() -> Iterator[str]:
        try:
            yield "retry: 2000\n\n"
            if missed is None:
                yield _resync(node)
                return
            for change in missed:
                yield change.sse(node)
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
                    yield f"event: heartbeat\ndata: {json.dumps({'node': node, 'at': _iso(_now())})}\n\n"
                else:
                    yield waited.sse(node)
        finally:
            watch.unsubscribe(client)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(stream(), mimetype="text/event-stream", headers=headers)


def _resync(node: str) -> str:
    data = {"node": node, "at": _iso(_now()), "reason": "re-list, then watch again"}
    return f"event: resync\ndata: {json.dumps(data)}\n\n"


def _now() -> int:
    return time.time_ns()


def _parse_id(text: str) -> tuple[int, int]:
    at, sep, k = text.partition("-")
    if not (sep and at.isdigit() and k.isdigit()):
        raise InvalidInput("last_event_id", "not an id this service gave (AT-K)")
    return int(at), int(k)
