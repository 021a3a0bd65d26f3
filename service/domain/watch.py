"""The change feed of one node: each worker's `Watch` listens to its view of the engine
(engine/viewed.py): after the view applies an engine event, the watch reads each resource the
event touched (domain/changes.py) from the view as it now stands, compares it with what it showed
last, and records `created`, `updated` or `deleted` with the resource's representation. Ids are
the engine event's time and a counter (`AT-K`), so every worker gives the same change the same id
and a client resumes on any of them, within the RETAIN changes a worker keeps (and since its view
began). A client asking from further back, or whose view had to list the engine again (the
stream broke: what happened meanwhile is unknown), must re-list. Each client has a queue of at
most QUEUE changes: one that does not keep up is dropped, never slowing the others.
http/feed.py builds it over the node's services; the route that streams it is http/events.py."""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..engine.port import ContainerRecord, EngineEvent, labels_match
from ..json_types import JSON
from .changes import BACKUP, BINDING, GROUP, RESTORE, VOLUME, Key, touched

RETAIN = 10_000  # changes a worker keeps for clients that resume
QUEUE = 1_000  # changes a client may have waiting before it is dropped
BASE_WAIT = 10.0  # seconds a new client waits for a starting worker's view to list the engine
RESOURCES = (VOLUME, BINDING, GROUP, BACKUP, RESTORE)
_ID = re.compile(r"([0-9]+)-([0-9]+)")


def id_text(id: tuple[int, int]) -> str:
    """A change's id as clients see it: `AT-K`."""
    return f"{id[0]}-{id[1]}"


def parse_id(text: str) -> tuple[int, int]:
    """An id `id_text` wrote; ValueError for anything else."""
    match = _ID.fullmatch(text)
    if match is None:
        raise ValueError(f"not a change's id (AT-K): {text!r}")
    return int(match[1]), int(match[2])


@dataclass(frozen=True)
class Change:
    id: tuple[int, int]
    kind: str  # created | updated | deleted
    resource: str
    name: str
    at: int
    document: JSON | None
    project: str | None = None  # the resource's (before a delete: as last shown); None: not dockvol's


@dataclass(frozen=True)
class Filters:
    resources: tuple[str, ...] = RESOURCES
    name: str | None = None
    labels: tuple[str, ...] = ()
    project: str = "*"  # the caller's: `*` hears every project's changes, others only their own

    def admit(self, change: Change, labels: dict[str, str] | None) -> bool:
        return (
            self.project in ("*", change.project)
            and change.resource in self.resources
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
        self._based = threading.Event()  # set once the view first listed: changes are told from then

    # -- fed by the view, on its thread ------------------------------------------------------------

    def relisted(self, first: bool) -> None:
        """The view listed the engine: what it shows now is the base. What changed before it
        (after a break; at first, for a client that came before the first listing) is unknown to
        the clients there, so they must re-list."""
        shown = {key: json.dumps(document, sort_keys=True) for key, document in self._everything().items()}
        with self._lock:
            self._shown = shown
            self._kept.clear()
            self._since = (max(self._seen_at + 1, time.time_ns()), 0)  # ids before are not kept
            clients = list(self._clients)
        self._based.set()
        for client in clients:  # after a break; or, at first, a client that came before the base
            self._drop(client)

    def applied(self, event: EngineEvent, before: ContainerRecord | None, after: ContainerRecord | None) -> None:
        for key in touched(event, before, after):
            self.noted(key, self._represent(key), event.at)

    def noted(self, key: Key, document: JSON | None, at: int) -> None:
        """`key` is shown as `document` (None: it is gone) since `at` (ns): the engine's events
        through `applied`, dockvol's own records (record_feed.py) directly."""
        shown = None if document is None else json.dumps(document, sort_keys=True)
        with self._lock:
            last = self._shown.get(key)
            if shown == last:
                return
            if shown is None:
                self._shown.pop(key, None)
                if last is None:
                    return  # nothing that was shown went
                kind = "deleted"
            else:
                self._shown[key] = shown
                kind = "created" if last is None else "updated"
            # several changes may share a time (a prune's destroys): each its own id
            last_id = self._kept[-1][0].id if self._kept else (0, -1)
            k = last_id[1] + 1 if last_id[0] == at else 0
            was = document if document is not None else json.loads(last or "{}")
            change = Change((at, k), kind, key[0], key[1], at, document, was.get("project"))
            labels = was.get("labels")
            self._kept.append((change, labels))
            self._seen_at = max(self._seen_at, at)
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
        self._based.wait(BASE_WAIT)  # a client that came before the first listing waits for it
        client = Client(filters)
        self._observe("watchers", 1)
        with self._lock:
            self._clients.add(client)
            # Where it stands: past the last change it may hear (ids of other projects' are not told)
            heard = [c.id for c, labels in self._kept if filters.admit(c, labels)]
            position = max(heard[-1] if heard else self._since, last_id or (0, 0))
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
