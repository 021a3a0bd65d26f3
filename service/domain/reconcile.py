"""The reconciler: what dockvol mends in the background, so that nothing stays half-done.

1. Intents (intents.py): every few seconds, each process retries the recoveries of its own
   failed operations that could not finish (the engine was away), and one elected process per
   host recovers the operations of processes that died.
2. Members of sharing groups run again after their infrastructure container restarts. A member
   joins its infrastructure container's namespaces (`container:` modes). When the engine
   restarts, it starts every container its restart policy names, in no particular order: a
   member started before its infrastructure container fails ("cannot join network of a non
   running container") and the engine does not try again. When an infrastructure container
   restarts on its own, running members keep namespaces that are no longer the group's. The
   reconciler mends both, at start-up and whenever an infrastructure container starts, for
   members whose restart policy is not `no`.

One process per host and engine is elected (a non-blocking lock) for the work that is not a
process's own.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading

from .. import times
from ..engine.port import Engine
from ..errors import DockvolError
from . import labels as label
from .intents import Intents
from .mounts import MountPlanner

log = logging.getLogger(__name__)
RETRY_SECONDS = 2.0
RECOVER_SECONDS = 2.0


class Reconciler:
    def __init__(self, engine: Engine, planner: MountPlanner, intents: Intents, engine_key: str) -> None:
        """`engine_key` names the engine (its DOCKER_HOST): one elected reconciler per engine and host."""
        self._engine = engine
        self._planner = planner
        self._intents = intents
        digest = hashlib.sha256(engine_key.encode()).hexdigest()[:16]
        self._lock_path = os.path.join(tempfile.gettempdir(), f"dockvol-reconciler-{digest}.lock")
        self._elected_fd: int | None = None
        self._election = threading.Lock()

    def recover(self) -> int:
        """One pass over intents: this process's own retries, and (if elected) the dead's."""
        done = self._intents.retry_own()
        if self.elected():
            done += self._intents.recover_dead()
        return done

    def reconcile(self) -> list[str]:
        """Start or restart the members that need it; their names."""
        mended = []
        for infra in self._engine.list_containers(labels=[f"{label.MANAGED}=true", f"{label.ROLE}=infra"]):
            if infra.state != "running":
                continue
            infra_started = times.nanoseconds(self._engine.container_state(infra.id).started_at)
            group = infra.labels.get(label.GROUP, "")
            for member in self._engine.list_containers(
                labels=[f"{label.MANAGED}=true", f"{label.ROLE}=binding", f"{label.GROUP}={group}"]
            ):
                if json.loads(member.labels.get(label.SPEC, "{}")).get("restart", "no") == "no":
                    continue
                state = self._engine.container_state(member.id)
                failed_to_start = member.state == "exited" and bool(state.error)
                stale = (
                    member.state == "running"
                    and state.started_at
                    and times.nanoseconds(state.started_at) < infra_started
                )
                if not (failed_to_start or stale):
                    continue
                try:
                    if stale:
                        self._engine.stop_container(member.id)
                    self._planner.start(member.id, member.mounts)
                except DockvolError as exc:
                    log.error("could not start member %s of sharing group %s: %s", member.name, group, exc.detail)
                    continue
                log.warning(
                    "started member %s of sharing group %s again (%s)",
                    member.name,
                    group,
                    "its namespaces were gone" if stale else "it could not start before its group",
                )
                mended.append(member.name)
        return mended

    def watch_members(self, stop: threading.Event) -> None:
        """Reconcile members now and at every start of an infrastructure container (elected only)."""
        while not stop.is_set():
            if not self.elected():
                stop.wait(RECOVER_SECONDS * 5)
                continue
            try:
                starts = self._engine.container_starts([f"{label.MANAGED}=true", f"{label.ROLE}=infra"])
                self.reconcile()
                for _ in starts:
                    if stop.is_set():
                        return
                    self.reconcile()
            except DockvolError as exc:
                log.info("reconciler: %s; trying again", exc.detail)
                stop.wait(RETRY_SECONDS)

    def recover_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.recover()
            except DockvolError as exc:
                log.info("reconciler: %s; trying again", exc.detail)
            stop.wait(RECOVER_SECONDS)

    def elected(self) -> bool:
        with self._election:
            if self._elected_fd is None:
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    return False
                self._elected_fd = fd
            return True

    def start_in_background(self) -> threading.Event:
        """Run both loops in daemon threads (greenlets under gevent); set the event to stop them."""
        stop = threading.Event()
        for target in (self.recover_forever, self.watch_members):
            threading.Thread(target=target, args=(stop,), name=f"dockvol-{target.__name__}", daemon=True).start()
        return stop
