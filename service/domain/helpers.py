"""Helper containers: created from an empty image dockvol imports itself, never started, always
removed. The engine's archive API works on a created container, so a helper is how dockvol reads
and writes a volume's files without running anything.

A helper names its owner (host and process) in a label. If a worker dies before removing its
helpers, gunicorn's `child_exit` hook (deploy/gunicorn.conf.py), the elected reconciler and the
next helper made on the same host remove them; one whose removal failed while its process lives
on is removed again by that process's reconciler pass (retries.py). A leftover helper would keep
its volume "in use".
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import socket
import tarfile
from collections.abc import Mapping, Sequence

from ..engine.port import ContainerSpec, Engine, MountSpec
from ..errors import NotFound
from . import labels as label
from .retries import Retries

log = logging.getLogger(__name__)

IMAGE = "dockvol/helper:empty"
NEVER_RUN = ("/dockvol-helper-is-never-started",)


def owner(pid: int | None = None) -> str:
    """The owner label of a helper or a lock: this host and a process (this one unless given)."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def local_pid(owner_label: str) -> int | None:
    """The process an owner label names if it is one of this host's; None otherwise."""
    host, _, pid = owner_label.rpartition(":")
    return int(pid) if host == socket.gethostname() and pid.isascii() and pid.isdigit() else None


def _empty_rootfs() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w"):
        pass
    return buf.getvalue()


class Helper:
    """One helper container; `close()` removes it (idempotent). Usable as a context manager. A
    removal that fails (the engine is away) is tried again later (`retries`)."""

    def __init__(self, engine: Engine, id: str, retries: Retries) -> None:
        self._engine = engine
        self.id = id
        self._closed = False
        self._retries = retries

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._retries.attempt(f"helper {self.id}", f"remove helper container {self.id}", self._remove)

    def _remove(self) -> None:
        try:
            self._engine.remove_container(self.id)
        except NotFound:
            pass

    def __enter__(self) -> Helper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Helpers:
    def __init__(self, engine: Engine, retries: Retries | None = None) -> None:
        """`retries`: this process's one queue of clean-ups to try again (a new one unless given)."""
        self._engine = engine
        self._image_ready = False
        self.retries = retries or Retries()

    def open(self, mounts: Sequence[tuple[str, str, bool]], labels: Mapping[str, str] = {}) -> Helper:
        """A helper mounting each (volume, target, read_only); `labels`: its operation's."""
        self.ensure_image()
        self.sweep_dead()
        spec = ContainerSpec(
            name=f"dockvol-helper-{secrets.token_hex(6)}",
            image=IMAGE,
            command=NEVER_RUN,
            network="none",
            labels={**labels, label.MANAGED: "true", label.ROLE: "helper", label.OWNER: owner()},
            mounts=tuple(MountSpec("volume", target, source=v, read_only=ro, no_copy=True) for v, target, ro in mounts),
        )
        return Helper(self._engine, self._engine.create_container(spec), self.retries)

    def sweep(self, owner_label: str) -> int:
        """Remove every helper of one owner (a worker that has gone); how many."""
        return self._remove([f"{label.ROLE}=helper", f"{label.OWNER}={owner_label}"])

    def sweep_dead(self) -> int:
        """Remove helpers whose owner was a process on this host that no longer exists."""
        gone = []
        for c in self._engine.list_containers(labels=[f"{label.MANAGED}=true", f"{label.ROLE}=helper"]):
            pid = local_pid(c.labels.get(label.OWNER, ""))
            if pid is not None and not alive(pid):
                gone.append(c.id)
        for cid in gone:
            Helper(self._engine, cid, self.retries).close()
        return len(gone)

    def _remove(self, labels: list[str]) -> int:
        found = self._engine.list_containers(labels=[f"{label.MANAGED}=true", *labels])
        for c in found:
            Helper(self._engine, c.id, self.retries).close()
        return len(found)

    def ensure_image(self) -> None:
        if not self._image_ready:
            if not self._engine.image_present(IMAGE):
                self._engine.import_image(IMAGE, _empty_rootfs(), {label.MANAGED: "true", label.ROLE: "helper"})
            self._image_ready = True


def gone(owner_label: str) -> bool:
    """The process an owner label names was one of this host's and has ended."""
    pid = local_pid(owner_label)
    return pid is not None and not alive(pid)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
