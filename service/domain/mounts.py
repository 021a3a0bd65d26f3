"""The one place that turns mount requests into engine mounts, for bindings and sharing groups.

Checking comes first and changes nothing: named volumes must exist, bind sources must pass the
bind policy and must not lie inside another container's read-write bind source. Only then are
missing bind sources and anonymous volumes made, and `Prepared.undo()` takes them back when the
container that needed them cannot be made.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Mapping, Sequence

from ..engine.port import Engine, MountSpec
from ..errors import DockvolError, Forbidden, InvalidInput, NotFound
from . import labels as L
from .bind_paths import BindPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MountRequest:
    type: str  # volume | bind | tmpfs
    target: str
    source: str | None = None  # volume: its name (none: anonymous); bind: a host path
    read_only: bool = False
    no_copy: bool = False
    propagation: str | None = None
    size_bytes: int | None = None


@dataclass
class Prepared:
    mounts: tuple[MountSpec, ...]
    engine: Engine
    created_volumes: list[str] = field(default_factory=list)
    created_dirs: list[str] = field(default_factory=list)

    def undo(self) -> None:
        """Remove what preparing made; never raises (the original failure is what matters)."""
        for name in self.created_volumes:
            try:
                self.engine.remove_volume(name)
            except DockvolError:
                log.warning("could not remove volume %s after a failed create", name)
        for path in reversed(self.created_dirs):
            try:
                os.rmdir(path)
            except OSError:
                log.warning("could not remove directory %s after a failed create", path)


class MountPlanner:
    def __init__(self, engine: Engine, bind_policy: BindPolicy) -> None:
        self._engine = engine
        self._bind_policy = bind_policy

    def prepare(
        self,
        requests: Sequence[MountRequest],
        owner: Mapping[str, str],
        reuse: Mapping[str, str] = {},
        ignore_container: str | None = None,
    ) -> Prepared:
        """`owner`: labels for anonymous volumes made here; `reuse`: target -> anonymous volume to
        carry over; `ignore_container`: a container being replaced, whose binds do not count."""
        binds = self._check(requests, ignore_container)
        prepared = Prepared((), self._engine)
        try:
            specs = []
            for i, r in enumerate(requests):
                source = r.source
                if r.type == "bind":
                    prepared.created_dirs += _missing_dirs(binds[i])
                    source = self._bind_policy.prepare(binds[i], f"mounts.{i}.source")
                elif r.type == "volume" and source is None:
                    source = reuse.get(r.target)
                    if source is None:
                        own = {L.MANAGED: "true", L.ANONYMOUS: "true", **owner}
                        source = self._engine.create_volume(None, "local", {}, own).name
                        prepared.created_volumes.append(source)
                specs.append(MountSpec(
                    r.type, r.target, source, r.read_only, r.no_copy,
                    (r.propagation or "rprivate") if r.type == "bind" else None, r.size_bytes,
                ))
        except Exception:
            prepared.undo()
            raise
        prepared.mounts = tuple(specs)
        return prepared

    def _check(self, requests: Sequence[MountRequest], ignore_container: str | None) -> dict[int, str]:
        """Resolved bind sources by request index; raises before anything is made."""
        binds: dict[int, str] = {}
        for i, r in enumerate(requests):
            if r.type == "volume" and r.source is not None:
                try:
                    self._engine.inspect_volume(r.source)
                except NotFound:
                    raise InvalidInput(f"mounts.{i}.source", f"no volume named {r.source}") from None
            elif r.type == "bind":
                binds[i] = self._bind_policy.check(r.source or "", f"mounts.{i}.source")
        if binds:
            writable = [
                PurePosixPath(m.source)
                for c in self._engine.list_containers()
                if c.id != ignore_container
                for m in c.mounts
                if m.type == "bind" and m.source and not m.read_only
            ]
            for i, path in binds.items():
                for other in writable:
                    if PurePosixPath(path).is_relative_to(other) and PurePosixPath(path) != other:
                        raise Forbidden(
                            f"mounts.{i}.source lies inside another container's read-write bind source"
                        )
        return binds


def _missing_dirs(path: str) -> list[str]:
    """The directories that making `path` would create, outermost first."""
    missing = []
    p = PurePosixPath(path)
    while not os.path.exists(p) and p != p.parent:
        missing.append(str(p))
        p = p.parent
    return list(reversed(missing))


def check_unique(requests: Sequence[MountRequest], taken: Sequence[str] = ()) -> None:
    """Targets appear once, and not among `taken` (a sharing group's targets)."""
    seen = set(taken)
    for i, r in enumerate(requests):
        if r.target in seen:
            raise InvalidInput(f"mounts.{i}.target", f"{r.target} is already mounted")
        seen.add(r.target)

