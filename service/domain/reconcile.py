"""Members of sharing groups run again after their infrastructure container restarts.

A member joins its infrastructure container's namespaces (`container:` modes). When the engine
restarts, it starts every container its restart policy names, in no particular order: a member
started before its infrastructure container fails ("cannot join network of a non running
container") and the engine does not try again. When an infrastructure container restarts on its
own, running members keep namespaces that are no longer the group's. The reconciler mends both,
at start-up and whenever an infrastructure container starts, for members whose restart policy
is not `no`. One reconciler runs per host (a non-blocking lock elects it among the workers).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from datetime import datetime

from ..engine.port import Engine
from ..errors import DockvolError
from . import labels as L
from .mounts import MountPlanner

log = logging.getLogger(__name__)
RETRY_SECONDS = 2.0
ELECTION_SECONDS = 10.0
_FRACTION = re.compile(r"\.(\d+)")


def instant(rfc3339: str) -> datetime:
    """The engine's nanosecond timestamps ("...:39.39219Z", trailing zeros dropped) as datetimes."""
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), rfc3339.replace("Z", "+00:00"))
    return datetime.fromisoformat(text)


class MemberReconciler:
    def __init__(self, engine: Engine, planner: MountPlanner, engine_key: str) -> None:
        """`engine_key` names the engine (its DOCKER_HOST): one reconciler per engine and host."""
        self._engine = engine
        self._planner = planner
        digest = hashlib.sha256(engine_key.encode()).hexdigest()[:16]
        self._lock_path = os.path.join(tempfile.gettempdir(), f"dockvol-reconciler-{digest}.lock")

    def reconcile(self) -> list[str]:
        """Start or restart the members that need it; their names."""
        mended = []
        for infra in self._engine.list_containers(labels=[f"{L.MANAGED}=true", f"{L.ROLE}=infra"]):
            if infra.state != "running":
                continue
            infra_started = instant(self._engine.container_state(infra.id).started_at)
            group = infra.labels.get(L.GROUP, "")
            for member in self._engine.list_containers(labels=[f"{L.MANAGED}=true", f"{L.ROLE}=binding", f"{L.GROUP}={group}"]):
                if json.loads(member.labels.get(L.SPEC, "{}")).get("restart", "no") == "no":
                    continue
                state = self._engine.container_state(member.id)
                failed_to_start = member.state == "exited" and bool(state.error)
                stale = member.state == "running" and state.started_at and instant(state.started_at) < infra_started
                if not (failed_to_start or stale):
                    continue
                try:
                    if stale:
                        self._engine.stop_container(member.id)
                    self._planner.start(member.id, member.mounts)
                except DockvolError as exc:
                    log.error("could not start member %s of sharing group %s: %s", member.name, group, exc.detail)
                    continue
                log.warning("started member %s of sharing group %s again (%s)", member.name, group,
                            "its namespaces were gone" if stale else "it could not start before its group")
                mended.append(member.name)
        return mended

    def run(self, stop: threading.Event) -> None:
        """Reconcile now and at every start of an infrastructure container, until `stop` is set."""
        lock = None
        try:
            while not stop.is_set():
                if lock is None:
                    lock = self._elect()
                    if lock is None:
                        stop.wait(ELECTION_SECONDS)
                        continue
                try:
                    starts = self._engine.container_starts([f"{L.MANAGED}=true", f"{L.ROLE}=infra"])
                    self.reconcile()
                    for _ in starts:
                        if stop.is_set():
                            return
                        self.reconcile()
                except DockvolError as exc:
                    log.info("reconciler: %s; trying again", exc.detail)
                    stop.wait(RETRY_SECONDS)
        finally:
            if lock is not None:
                os.close(lock)

    def _elect(self) -> int | None:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def start_in_background(self) -> threading.Event:
        """Run in a daemon thread (a greenlet under gevent); set the returned event to stop it."""
        stop = threading.Event()
        threading.Thread(target=self.run, args=(stop,), name="dockvol-reconciler", daemon=True).start()
        return stop
