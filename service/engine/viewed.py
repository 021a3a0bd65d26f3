"""Reads from a view of the engine, kept current by the engine's own events.

`View` holds every volume and container as the engine does: primed by one listing, then fed by
the engine's event stream (each event makes the view fetch the one thing that changed). It
subscribes before it lists, so nothing that happens in between is missed; whenever the stream
breaks (engine restart, stream error) the view stops vouching for itself and lists again.

`ViewedEngine` is the engine port with its three reads (`list_volumes`, `inspect_volume`,
`list_containers`) answered from the view, and everything else passed through.

No stale read, across workers, with no engine call per read: a request that wrote asks the
engine, before it is answered, for the events recorded since it began (its own among them: the
engine records an event before it answers the call that caused it) and appends their digests to a
ring every worker shares (service/engine/written.py). A read answers from its worker's view once
the view has applied every digest appended since it last looked, or listed after them; it waits
up to CATCH_UP for the stream to bring them. Past that, when the ring moved on too far, or when it
holds an UNKNOWN (a writer could not ask), the view proves itself current with one engine call
(the events from shortly, REORDER, before the latest it applied up to now); failing that, or
while the view is not primed, the read goes to the engine, as without a view.

Changes made to the engine directly (the `docker` CLI, another tool) reach reads as fast as the
stream brings them, milliseconds, and are not waited for: no one answered them to a client.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import DockvolError, NotFound
from .port import ContainerRecord, Engine, EngineEvent, VolumeRecord, labels_match
from .written import UNKNOWN, Written, digest

log = logging.getLogger(__name__)
CATCH_UP = 1.0  # seconds a read waits for the view to apply events that happened before it
# The engine stamps an event before it queues it, so two events close in time can arrive in the
# other order: a read checks every event of the last REORDER nanoseconds, not only the newer ones.
REORDER = 250_000_000
KEEP_APPLIED = 4096  # events remembered as applied (more than the engine keeps to answer `since`)
RETRY = 0.5  # seconds between attempts to list again after the stream broke
# Container events that can change what a ContainerRecord holds (state, name); others (exec_*,
# attach, archive-path, health_status, ...) do not, and cost nothing.
CONTAINER_CHANGES = frozenset(
    {"create", "start", "restart", "die", "stop", "kill", "oom", "pause", "unpause", "rename", "update"}
)


class View:
    def __init__(self, engine: Engine, observe: Callable[[str, float], None] | None = None) -> None:
        self._engine = engine
        self.observe = observe or (lambda what, value: None)
        self._changed = threading.Condition()
        self._volumes: dict[str, VolumeRecord] = {}
        self._containers: dict[str, ContainerRecord] = {}
        self._primed = False
        self._since = 0  # the engine time the last listing began: it holds every change before
        self._last = 0  # the latest engine time of an event applied
        self._applied: dict[int, int] = {}  # digests of the events applied lately, oldest first: their time
        self._offset: int | None = None  # the engine's clock minus ours, in nanoseconds, once measured
        self.written = Written()  # what answered writes changed; share() makes it every worker's
        self._checked = 0  # how far into `written` the view is known to hold everything
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.relists = 0  # listings made (the first, and one after each break)
        self.applied = 0  # events applied
        self.lag = 0.0  # seconds between the engine's last event and the view applying it
        self.primed_at = 0.0
        # Told of each event once applied: (event, the container before, after; None if none), and
        # of each listing (True for the first): run on the view's thread, they must be quick.
        self.listeners: list[Callable[[EngineEvent, ContainerRecord | None, ContainerRecord | None], None]] = []
        self.relisted: list[Callable[[bool], None]] = []

    # -- feeding ---------------------------------------------------------------------------------

    def share(self, path: str) -> None:
        """Use the ring at `path`, which every worker of this host maps (before the view starts)."""
        self.written = Written(path)

    def start_in_background(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="dockvol-view", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.follow(self.prime())
            except DockvolError as exc:
                log.warning("the view of the engine is rebuilding: %s", exc.detail)
            with self._changed:
                self._primed = False
            self._stop.wait(RETRY)

    def prime(self) -> Iterator[EngineEvent]:
        """Subscribe, then list: the stream returned holds every change since the listing began."""
        self._offset = self._measure_offset()
        written = self.written.count()  # appended before the listing: the listing holds them
        since = self._engine.clock()
        stream = self._engine.events(since)
        volumes = {v.name: v for v in self._engine.list_volumes()}
        containers = {c.id: c for c in self._engine.list_containers()}
        with self._changed:
            self._volumes, self._containers = volumes, containers
            self._since = self._last = since
            self._applied.clear()
            self._checked = max(self._checked, written)
            self._primed = True
            self.relists += 1
            self.primed_at = time.monotonic()
            self._changed.notify_all()
        self.observe("relist", 1)
        for tell in self.relisted:
            _safely(tell, self.relists == 1)
        return stream

    def _measure_offset(self, samples: int = 3) -> int:
        """The engine's clock minus ours. Each sample may run ahead of the true offset by its call's
        duration, never behind (the engine read its clock after `before`), so "now" in the engine's
        time is never underestimated; the least of a few is the closest (a read's check waits for
        the engine to reach that "now")."""
        offsets = []
        for _ in range(samples):
            before = time.time_ns()
            offsets.append(self._engine.clock() - before)
        return min(offsets)

    def follow(self, stream: Iterator[EngineEvent]) -> None:
        for event in stream:
            self.apply(event)
            if self._stop.is_set():
                return

    def apply(self, event: EngineEvent) -> None:
        if event.action == "prune":
            self._apply_prune(event)
            return
        volume: VolumeRecord | None = None
        containers: list[ContainerRecord] = []
        if event.type == "volume" and event.action == "create":
            try:
                volume = self._engine.inspect_volume(event.id)
            except NotFound:  # gone again since
                pass
        elif event.type == "container" and event.action in CONTAINER_CHANGES:
            containers = self._engine.list_containers(name=event.name) if event.name else []
        self._applied_now(event, volume, containers)

    def _applied_now(
        self, event: EngineEvent, volume: VolumeRecord | None = None, containers: Sequence[ContainerRecord] = ()
    ) -> None:
        with self._changed:
            before = self._containers.get(event.id) if event.type == "container" else None
            if event.type == "volume" and event.action in ("create", "destroy"):
                self._volumes.pop(event.id, None)
                if volume is not None:
                    self._volumes[volume.name] = volume
            elif event.type == "container" and event.action == "destroy":
                self._containers.pop(event.id, None)
            for c in containers:
                self._containers[c.id] = c
            self._last = max(self._last, event.at)
            self._applied[_key(event)] = event.at
            while len(self._applied) > KEEP_APPLIED:
                del self._applied[next(iter(self._applied))]
            self.applied += 1
            self.lag = max(0.0, (time.time_ns() + (self._offset or 0) - event.at) / 1e9)
            after = self._containers.get(event.id) if event.type == "container" else None
            self._changed.notify_all()
        self.observe("event_lag", self.lag)
        for tell in self.listeners:
            _safely(tell, event, before, after)

    def _apply_prune(self, event: EngineEvent) -> None:
        """A prune (volumes or containers, alone or in a system prune) may record one event for all
        it removed and none per object (engine 20.10's volume prune): list that kind again, and
        apply a destroy for each object gone, then the prune itself, which a write waits for."""
        if event.type == "volume":
            listed = {v.name for v in self._engine.list_volumes()}
            with self._changed:
                gone = [EngineEvent("volume", "destroy", n, event.at) for n in self._volumes if n not in listed]
        else:
            listed = {c.id for c in self._engine.list_containers()}
            with self._changed:
                gone = [
                    EngineEvent("container", "destroy", c.id, event.at, c.name)
                    for c in self._containers.values()
                    if c.id not in listed
                ]
        for destroyed in gone:
            self._applied_now(destroyed)
        self._applied_now(event)

    # -- reading ---------------------------------------------------------------------------------

    def caught_up(self) -> bool:
        """Whether the view holds every change an answered write made, in any worker: it has
        applied every digest in `written` it has not checked yet (waiting up to CATCH_UP for the
        stream), or else proves itself current with the engine (`current`)."""
        with self._changed:
            if not self._primed:
                return False
            end, entries = self.written.since(self._checked)
            # None: overwritten before this view read them, so what they were is unknown
            if entries is not None:
                oldest = next(iter(self._applied.values()), self._since)
                unknowable = any(  # a writer could not ask, or the view forgot what it applied then
                    d == UNKNOWN or (at < oldest and at >= self._since and d not in self._applied) for at, d in entries
                )
                if not unknowable:
                    if not self._wait_applied(entries):
                        return False
                    self._checked = max(self._checked, end)
                    return True
        end = self.written.count()  # every write appended before the proof is in it once proven
        if not self.current():
            return False
        with self._changed:
            self._checked = max(self._checked, end)
        return True

    def current(self) -> bool:
        """Whether every event up to now is applied (waiting up to CATCH_UP for the stream): one
        call to the engine."""
        with self._changed:
            if not self._primed or self._offset is None:
                return False
            since, offset = max(self._since, self._last - REORDER), self._offset
        try:
            recent = [(e.at, _key(e)) for e in self._engine.events(since, time.time_ns() + offset)]
        except DockvolError:
            return False
        with self._changed:
            return self._wait_applied(recent)

    def _wait_applied(self, events: list[tuple[int, int]]) -> bool:
        """With the lock held: wait up to CATCH_UP until each (time, digest) is applied or older
        than the last listing; False past that, or once the view is no longer primed."""
        deadline = time.monotonic() + CATCH_UP
        while self._primed:
            missing = [d for at, d in events if at >= self._since and d not in self._applied]
            if not missing:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning(
                    "the view is %d events behind after %.1f s; reading from the engine", len(missing), CATCH_UP
                )
                return False
            self._changed.wait(left)
        return False

    def publish(self, began: int) -> None:
        """After a request that wrote, before it is answered: append the digests of the events the
        engine recorded since the request `began` (our clock, ns), its own among them."""
        offset = self._offset
        if offset is None:  # never measured: what "since" means in the engine's time is unknown
            self.written.append([(time.time_ns(), UNKNOWN)])
            return
        try:
            events = list(self._engine.events(began + offset - REORDER, time.time_ns() + offset))
            self.written.append((e.at, _key(e)) for e in events)
        except DockvolError:
            self.written.append([(time.time_ns() + offset, UNKNOWN)])

    def list_volumes(self, labels: Sequence[str] = (), driver: str | None = None) -> list[VolumeRecord]:
        with self._changed:
            found = list(self._volumes.values())
        return [v for v in found if labels_match(v.labels, labels) and driver in (None, v.driver)]

    def inspect_volume(self, name: str) -> VolumeRecord:
        with self._changed:
            found = self._volumes.get(name)
        if found is None:
            raise NotFound("not found in the engine")
        return found

    def list_containers(
        self, volume: str | None = None, labels: Sequence[str] = (), name: str | None = None
    ) -> list[ContainerRecord]:
        with self._changed:
            found = list(self._containers.values())
        return [
            c
            for c in found
            if labels_match(c.labels, labels)
            and name in (None, c.name)
            and (volume is None or any(m.name == volume for m in c.mounts))
        ]

    def stats(self) -> dict[str, float]:
        with self._changed:
            return {
                "primed": float(self._primed),
                "age_seconds": time.monotonic() - self.primed_at if self._primed else 0.0,
                "volumes": float(len(self._volumes)),
                "containers": float(len(self._containers)),
                "relists": float(self.relists),
                "events_applied": float(self.applied),
                "event_lag_seconds": self.lag,
            }


def _safely(tell: Callable[..., None], *args: Any) -> None:
    try:
        tell(*args)
    except Exception:  # a listener's failure is its own: the view goes on
        log.exception("a listener of the view failed")


def _key(event: EngineEvent) -> int:
    return digest(event.at, event.type, event.action, event.id)


class _Scope(threading.local):
    """One thread's request scope; `new_scope` and `trusted_scope` set what a scope has."""

    reading: bool
    vouched: bool
    began: int | None
    wrote: bool
    trusted: bool


class ViewedEngine:
    """The engine port, its reads answered from `view` in a read scope, when the view is caught up.

    A scope is one request (`new_scope` before it, `settle` before its answer, `end_scope` after).
    A read scope is a GET until it writes (an export's helper): the view is vouched for once, at
    its first read; every write answered before the request began is in it from then on.
    Everything else (operations that change things, a GET after its first write, the reconciler)
    reads the engine itself: their reads follow their own writes at once, and they decide on what
    they read. A scope that wrote publishes what it changed (`View.publish`) before its answer; a
    write outside any request (the reconciler's) publishes at once."""

    QUIET = frozenset(
        {"info", "list_nodes", "clock", "events", "container_state", "volume_sizes", "image_present", "get_archive"}
        | {"create_config", "inspect_config", "remove_config"}  # Swarm's store: no volume or container changes
    )

    def __init__(self, engine: Engine, view: View) -> None:
        self._engine = engine
        self.view = view
        self._scope = _Scope()

    def new_scope(self, reading: bool) -> None:
        self._scope.reading = reading
        self._scope.vouched = False
        self._scope.began = time.time_ns()
        self._scope.wrote = False

    def trusted_scope(self) -> None:
        """Reads from the view as it stands, unproven: for the view's own listeners, which run on
        its thread right after it applied an event (a proof would wait for that very thread)."""
        self._scope.reading, self._scope.trusted = True, True

    def settle(self) -> None:
        """Before a request's answer: if it wrote, no later read anywhere may miss what it wrote."""
        if getattr(self._scope, "wrote", False):  # only writes inside a request set it
            self._scope.wrote = False
            began = self._scope.began
            if began is not None:  # always: a write in a request (wrote) happened after new_scope set it
                self.view.publish(began)

    def end_scope(self) -> None:
        self.settle()  # a streamed answer (an export) writes after its headers went out
        self._scope.reading, self._scope.vouched, self._scope.began = False, False, None

    def __getattr__(self, operation: str) -> Any:
        call = getattr(self._engine, operation)
        if operation in self.QUIET or not callable(call):
            return call

        def write(*args: Any, **kwargs: Any) -> Any:
            self._scope.reading = False  # a request that writes (a GET's helper) reads the engine from here on
            if getattr(self._scope, "began", None) is not None:
                self._scope.wrote = True  # published once, before the request's answer
                return call(*args, **kwargs)
            began = time.time_ns()  # outside a request (the reconciler's recoveries): published at once
            try:
                return call(*args, **kwargs)
            finally:
                self.view.publish(began)

        return write

    def _from_view(self) -> bool:
        if getattr(self._scope, "trusted", False):
            return True
        if not getattr(self._scope, "reading", False):
            return False
        if not self._scope.vouched:
            self._scope.vouched = self.view.caught_up()
        self.view.observe("read_view" if self._scope.vouched else "read_engine", 1)
        return self._scope.vouched

    def list_volumes(self, labels: Sequence[str] = (), driver: str | None = None) -> list[VolumeRecord]:
        if self._from_view():
            return self.view.list_volumes(labels, driver)
        return self._engine.list_volumes(labels, driver)

    def inspect_volume(self, name: str) -> VolumeRecord:
        if self._from_view():
            return self.view.inspect_volume(name)
        return self._engine.inspect_volume(name)

    def list_containers(
        self, volume: str | None = None, labels: Sequence[str] = (), name: str | None = None
    ) -> list[ContainerRecord]:
        if self._from_view():
            return self.view.list_containers(volume, labels, name)
        return self._engine.list_containers(volume, labels, name)
