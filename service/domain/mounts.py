"""The one place that turns mount requests into engine mounts, for bindings and sharing groups.

Checking comes first and changes nothing: named volumes must exist, bind sources must pass the
bind policy (bind_paths.py), and no host source may lie inside a read-write one (a container
writing above a source could swap a directory of its path for a symlink, and the engine follows
it at the next start). Bind-like volumes (`local`, `o=bind`) count as
read-write sources at their device. Only then are missing bind sources and anonymous volumes made.
Both carry back to their operation: its volumes its id, and the directories it is about to make go
into its record first (intents.py), so that undoing it, in its process or after that died, takes
them back (`remove_made`, `remove_unused_volumes`).
Decisions about host paths run under `BindPolicy.lock()`, so two requests cannot both pass the
overlap check with sources that overlap, and what is about to be made is known exactly; `start()`
walks every host path again before a start.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from ..engine.port import Engine, MountRecord, MountSpec
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from . import labels as label
from . import projects
from .bind_paths import BindPolicy
from .projects import unscoped

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


@dataclass(frozen=True)
class Mount:
    """A mount of a binding or a sharing group, as dockvol shows it (not the engine's record)."""

    type: str
    target: str
    name: str | None = None
    source: str | None = None
    read_only: bool = False
    driver: str | None = None

    @classmethod
    def of(cls, record: MountRecord) -> Mount:
        return cls(record.type, record.target, record.name, record.source, record.read_only, record.driver)


def shown_mounts(records: Iterable[MountRecord]) -> tuple[Mount, ...]:
    return tuple(sorted((Mount.of(r) for r in records), key=lambda m: m.target))


@dataclass
class PreparedMounts:
    mounts: tuple[MountSpec, ...]
    checked_volumes: dict[str, str] = field(default_factory=dict)  # named volume -> its labels.identity


def remove_unused_volumes(engine: Engine, op: str) -> None:
    """Remove the volumes an operation made that no container uses (a recovery's rollback)."""
    for v in engine.list_volumes(labels=[f"{label.MANAGED}=true", f"{label.OP}={op}"]):
        try:
            engine.remove_volume(v.name)
        except (NotFound, Conflict):
            pass


class MountPlanner:
    def __init__(self, engine: Engine, bind_policy: BindPolicy) -> None:
        self._engine = engine
        self._bind_policy = bind_policy

    def prepare(
        self,
        requests: Sequence[MountRequest],
        owner: Mapping[str, str],
        record: Callable[[list[str]], None],
        reuse: Mapping[str, str] = {},
        ignore_container: str | None = None,
    ) -> PreparedMounts:
        """`owner`: labels for anonymous volumes made here; `record(dirs)`: told the directories about
        to be made for bind sources, before any is (under `exclusive`); `reuse`: target -> anonymous
        volume to carry over; `ignore_container`: a container being replaced, whose binds do not count."""
        binds, checked = self._check(requests, ignore_container)
        to_make = [d for i in binds for d in self._bind_policy.to_make(binds[i], f"mounts.{i}.source")]
        if to_make:
            record(list(dict.fromkeys(to_make)))
        specs = []
        for i, r in enumerate(requests):
            source = r.source
            if r.type == "bind":
                source = self._bind_policy.prepare(binds[i], f"mounts.{i}.source")
            elif r.type == "volume" and source is None:
                source = reuse.get(r.target)
                if source is None:
                    own = {label.MANAGED: "true", label.ANONYMOUS: "true", **owner}
                    source = self._engine.create_volume(None, "local", {}, own).name
            specs.append(
                MountSpec(
                    r.type,
                    r.target,
                    source,
                    r.read_only,
                    r.no_copy,
                    (r.propagation or "rprivate") if r.type == "bind" else None,
                    r.size_bytes,
                )
            )
        return PreparedMounts(tuple(specs), checked)

    def remove_made(self, dirs: Sequence[str]) -> None:
        """Take back the directories an operation recorded it would make (a recovery's rollback):
        those still empty, but none a container or a bind-like volume uses now (it came to use it
        after the operation made it); decided under the host-path lock, so none is taken meanwhile."""
        if not dirs:
            return
        with self._bind_policy.lock():
            in_use = {s.path for s in host_sources(self._engine)}
            removed = self._bind_policy.remove_made(dirs, in_use)
        kept = [d for d in dirs if d not in removed]
        log.info(
            "took back the directories %s of an undone operation; not %s (not there, not empty or in use)",
            removed,
            kept,
        )

    def confirm_volumes(self, prepared: PreparedMounts, container: str) -> None:
        """After the container is made: each named volume it mounts is the one that was checked.
        The engine quietly makes a missing named volume, so one deleted meanwhile comes back new
        and empty; then the container is not this binding's to keep."""
        for name, identity in prepared.checked_volumes.items():
            try:
                same = label.identity(self._engine.inspect_volume(name)) == identity
            except NotFound:
                same = False
            if not same:
                self._engine.remove_container(container)
                with contextlib.suppress(NotFound, Conflict):
                    if not label.is_managed(self._engine.inspect_volume(name).labels):
                        self._engine.remove_volume(name)  # the engine's empty stand-in, made for this container
                raise InvalidInput("mounts", f"volume {name} was removed while the container was being made")

    def exclusive(self, requests: Sequence[MountRequest]) -> ContextManager[None]:
        """Hold the host-path lock from `prepare` until the container exists, when binds are asked."""
        return self._bind_policy.lock() if any(r.type == "bind" for r in requests) else contextlib.nullcontext()

    def start(self, container_id: str, mounts: Iterable[MountRecord | Mount]) -> None:
        """Start a container after walking each host path it mounts again (bind sources, and the
        devices of bind-like volumes): refused when it is no longer what was checked at create."""
        for m in mounts:
            if m.type == "bind" and m.source:
                self._bind_policy.verify(m.source, f"mount {m.target}")
            elif m.type == "volume" and m.name:
                try:
                    volume = self._engine.inspect_volume(m.name)
                    device = bind_device(volume.driver, volume.driver_opts)
                except NotFound:
                    continue  # the engine's start says what is missing
                if device:
                    self._bind_policy.verify(device, f"mount {m.target} (volume {m.name})")
        self._engine.start_container(container_id)

    def _check(
        self,
        requests: Sequence[MountRequest],
        ignore_container: str | None,
    ) -> tuple[dict[int, str], dict[str, str]]:
        """Resolved bind sources by request index, and the named volumes' identities; raises
        before anything is made."""
        binds: dict[int, str] = {}
        checked: dict[str, str] = {}
        for i, r in enumerate(requests):
            if r.type == "volume" and r.source is not None:
                try:
                    checked[r.source] = label.identity(self._engine.inspect_volume(r.source))
                except NotFound:
                    raise InvalidInput(f"mounts.{i}.source", f"no volume named {r.source}") from None
            elif r.type == "bind":
                binds[i] = self._bind_policy.check(r.source or "", f"mounts.{i}.source")
        if binds:
            new = [HostSource(binds[i], not requests[i].read_only, f"mounts.{i}.source") for i in binds]
            check_overlap(new, host_sources(self._engine, ignore_container))
        return binds, checked


@dataclass(frozen=True)
class HostSource:
    """A host path a container mounts (or may mount): a bind source, or a bind-like volume's device."""

    path: str
    writable: bool
    what: str
    shown: bool = True  # False: another project's (its path is not told)


def bind_device(driver: str, opts: Mapping[str, str]) -> str | None:
    """The host directory of a `local` volume that is a bind mount in disguise, else None."""
    if driver == "local" and opts.get("type") == "none" and {"bind", "rbind"} & set(opts.get("o", "").split(",")):
        return opts.get("device") or None
    return None


def host_sources(engine: Engine, ignore_container: str | None = None) -> list[HostSource]:
    """Every host path in use on the engine, in two calls whatever the host holds. dockvol's own
    container does not count: it mounts the bind roots to check sources as the engine sees them,
    and it is trusted (its label is one no caller of dockvol can set)."""
    project = projects.current()
    engine = unscoped(engine)  # every project's sources count, but only the caller's are named
    sources = [
        _source(m.source, not m.read_only, f"the bind source of container {c.name}", project, c.labels)
        for c in engine.list_containers()
        if c.id != ignore_container and c.labels.get(label.ROLE) != label.SERVICE_ROLE
        for m in c.mounts
        if m.type == "bind" and m.source
    ]
    for v in engine.list_volumes(driver="local"):
        device = bind_device(v.driver, v.driver_opts)
        if device:
            sources.append(_source(device, True, f"the device of volume {v.name}", project, v.labels))
    return sources


def _source(path: str, writable: bool, what: str, project: str, labels: Mapping[str, str]) -> HostSource:
    """A source the caller's project may not see is described without its name or path."""
    if projects.sees(project, labels):
        return HostSource(path, writable, what)
    return HostSource(path, writable, "a host path in use", shown=False)


def check_overlap(new: Sequence[HostSource], existing: Sequence[HostSource]) -> None:
    """No source may lie inside a read-write one: a container writing there could swap a directory
    of the inner path for a symlink, and the engine would follow it at the next start. Equal paths
    are fine (a container cannot rename the directory it has mounted), and so is a read-write
    source inside a read-only one (nobody writes above it)."""
    for i, n in enumerate(new):
        path = PurePosixPath(n.path)
        for other in [*existing, *(o for j, o in enumerate(new) if j != i)]:
            other_path = PurePosixPath(other.path)
            if path == other_path:
                continue
            where = f"{other.what} ({other.path})" if other.shown else other.what
            if other.writable and path.is_relative_to(other_path):
                raise Forbidden(
                    f"{n.what}: {n.path} lies inside {where}, which a container can write: "
                    "it could redirect this source"
                )
            if n.writable and other_path.is_relative_to(path):
                raise Forbidden(f"{n.what}: {n.path} holds {where}; a container writing here could redirect it")


def check_unique(requests: Sequence[MountRequest], taken: Sequence[str] = ()) -> None:
    """Targets appear once, and not among `taken` (a sharing group's targets)."""
    seen = set(taken)
    for i, r in enumerate(requests):
        if r.target in seen:
            raise InvalidInput(f"mounts.{i}.target", f"{r.target} is already mounted")
        seen.add(r.target)
