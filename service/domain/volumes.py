"""Volumes: what dockvol shows of them and the rules for creating, deleting and pruning."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..engine.port import ContainerRecord, Engine, VolumeRecord
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from . import labels as label
from . import versions
from .bind_paths import BindPolicy
from .intents import Intents, pending_ops
from .mounts import HostSource, bind_device, check_overlap, host_sources
from .projects import project_of
from .versions import IfMatch


@dataclass(frozen=True)
class VolumeUse:
    container: str
    binding: str | None
    target: str
    read_only: bool


@dataclass(frozen=True)
class Volume:
    name: str
    driver: str
    driver_opts: Mapping[str, str]
    labels: Mapping[str, str]
    mountpoint: str
    scope: str
    created_at: str | None
    anonymous: bool
    managed: bool
    used_by: tuple[VolumeUse, ...] = ()
    identity: str = ""  # labels.identity: not shown, compared
    project: str | None = None  # None: not dockvol's (projects.project_of)

    @property
    def in_use(self) -> bool:
        return bool(self.used_by)

    @property
    def version(self) -> str:
        """Its identity stands for its creation time, which engine 20.10 moves with no event when
        the volume's top level changes (a clone, an import writes into it): one unchanged volume
        must not have two versions, one from the view and one from the engine."""
        return versions.digest(self, created_at=self.identity)


@dataclass(frozen=True)
class VolumeQuery:
    labels: Sequence[str] = ()
    driver: str | None = None
    dangling: bool | None = None
    anonymous: bool | None = None
    managed: bool | None = None
    name: str | None = None
    project: str | None = None

    def admits(self, v: Volume) -> bool:
        return (
            (self.project is None or self.project == v.project)
            and (self.dangling is None or self.dangling != v.in_use)
            and (self.anonymous is None or self.anonymous == v.anonymous)
            and (self.managed is None or self.managed == v.managed)
            and (self.name is None or self.name in v.name)
        )


@dataclass(frozen=True)
class PruneResult:
    volumes_deleted: list[str]
    space_reclaimed: int
    dry_run: bool


def usage_index(containers: Iterable[ContainerRecord]) -> dict[str, list[VolumeUse]]:
    """Volume name -> who mounts it, from one container listing."""
    index: dict[str, list[VolumeUse]] = {}
    for c in containers:
        binding = c.labels.get(label.BINDING) if label.is_managed(c.labels) else None
        for m in c.mounts:
            if m.type == "volume" and m.name:
                index.setdefault(m.name, []).append(VolumeUse(c.name, binding, m.target, m.read_only))
    return index


def to_volume(record: VolumeRecord, uses: Iterable[VolumeUse] = ()) -> Volume:
    return Volume(
        name=record.name,
        driver=record.driver,
        driver_opts=dict(record.driver_opts),
        labels=label.user_labels(record.labels),
        mountpoint=record.mountpoint,
        scope=record.scope,
        created_at=record.created_at,
        anonymous=label.is_anonymous(record.name, record.labels),
        managed=label.is_managed(record.labels),
        project=project_of(record.labels),
        used_by=tuple(sorted(uses, key=lambda u: (u.container, u.target))),
        identity=label.identity(record),
    )


class Volumes:
    """The volume use cases. Each costs a fixed number of engine calls, whatever the host holds."""

    def __init__(
        self,
        engine: Engine,
        bind_policy: BindPolicy,
        drivers: Sequence[str],
        intents: Intents,
    ) -> None:
        self._engine = engine
        self._intents = intents
        self._bind_policy = bind_policy
        self._drivers = tuple(drivers)

    def list(self, query: VolumeQuery) -> list[Volume]:
        engine_labels = list(query.labels) + ([f"{label.MANAGED}=true"] if query.managed else [])
        records = self._engine.list_volumes(labels=engine_labels, driver=query.driver)
        listed = self._engine.list_containers()
        index, filling = usage_index(listed), pending_ops(listed)
        found = (
            to_volume(r, index.get(r.name, ())) for r in records if r.labels.get(label.FILLING, "-") not in filling
        )
        return sorted((v for v in found if query.admits(v)), key=lambda v: v.name)

    def get(self, name: str) -> Volume:
        try:
            record = self._engine.inspect_volume(name)
        except NotFound:
            raise NotFound(f"volume {name} does not exist") from None
        if label.FILLING in record.labels and self._engine.list_containers(
            labels=[f"{label.ROLE}=lock", f"{label.OP}={record.labels[label.FILLING]}"]
        ):
            raise NotFound(f"volume {name} does not exist yet: it is being filled")
        index = usage_index(self._engine.list_containers(volume=name))
        return to_volume(record, index.get(name, ()))

    def create(
        self,
        name: str | None,
        driver: str,
        driver_opts: Mapping[str, str],
        labels: Mapping[str, str],
        marks: Mapping[str, str] = {},
    ) -> Volume:
        """`marks`: dockvol's own labels from the operation that creates it (intents.py)."""
        driver_opts = self._checked_options(driver, driver_opts)
        create_id = secrets.token_hex(16)
        own = {**marks, label.MANAGED: "true", label.ANONYMOUS: str(name is None).lower(), label.CREATE_ID: create_id}
        device = bind_device(driver, driver_opts)
        # A bind mount in disguise: the rules of a read-write bind source, decided under the host-path lock.
        with self._bind_policy.lock() if device else contextlib.nullcontext():
            if device:
                resolved = self._bind_policy.check(device, "driver_opts.device")
                check_overlap([HostSource(resolved, True, "driver_opts.device")], host_sources(self._engine))
                driver_opts["device"] = self._bind_policy.prepare(resolved, "driver_opts.device")
            try:
                record = self._engine.create_volume(name, driver, driver_opts, {**labels, **own})
            except Conflict:
                raise Conflict(f"volume {name} exists already") from None
        if record.labels.get(label.CREATE_ID) != create_id:
            raise Conflict(f"volume {name} exists already")
        return to_volume(record)

    def delete(self, name: str, if_match: IfMatch | None = None) -> None:
        with self._intents.run("volume.delete", [f"volume/{name}"]):
            self.remove(name, if_match)

    def remove(self, name: str, if_match: IfMatch | None = None) -> None:
        """Delete, for a caller that holds the volume's lock already."""
        volume = self.get(name)
        versions.check(if_match, volume.version, f"volume {name}")
        self.check_deletable(volume)
        try:
            self._engine.remove_volume(name)
        except NotFound:
            raise NotFound(f"volume {name} does not exist") from None
        except Conflict:  # a container not made through dockvol took it between our look and the removal
            raise _in_use(self.get(name)) from None

    def check_deletable(self, volume: Volume) -> None:
        """Forbidden unless dockvol made it; Conflict (with used_by) while a container uses it."""
        if not volume.managed:
            raise Forbidden(f"volume {volume.name} was not created by dockvol; it is read-only here")
        if volume.in_use:
            raise _in_use(volume)

    def prune(self, dry_run: bool, include_named: bool, labels: Sequence[str]) -> PruneResult:
        selection = [f"{label.MANAGED}=true", *([] if include_named else [f"{label.ANONYMOUS}=true"]), *labels]
        if not dry_run:
            report = self._engine.prune_volumes(selection)
            return PruneResult(sorted(report.volumes_deleted), report.space_reclaimed, False)
        index = usage_index(self._engine.list_containers())
        unused = [r.name for r in self._engine.list_volumes(labels=selection) if r.name not in index]
        sizes = self._engine.volume_sizes() if unused else {}
        return PruneResult(sorted(unused), sum(max(sizes.get(n, 0), 0) for n in unused), True)

    def _checked_options(self, driver: str, opts: Mapping[str, str]) -> dict[str, str]:
        if driver not in self._drivers:
            raise InvalidInput("driver", f"driver {driver!r} is not enabled; enabled: {', '.join(self._drivers)}")
        opts = dict(opts)
        if driver != "local" or not opts:
            return opts
        unknown = set(opts) - {"type", "o", "device"}
        if unknown:
            raise InvalidInput("driver_opts", f"unknown option(s) for local: {', '.join(sorted(unknown))}")
        mount_options = opts.get("o", "").split(",")
        if opts.get("type") == "tmpfs" and not {"bind", "rbind"} & set(mount_options):
            return opts
        if opts.get("type") == "none" and {"bind", "rbind"} & set(mount_options) and "device" in opts:
            return opts  # a bind mount in disguise: `create` applies a bind source's rules to the device
        raise Forbidden("local driver options may describe a tmpfs or a bind mount inside a bind root only")


def _in_use(volume: Volume) -> Conflict:
    users = ", ".join(sorted({u.container for u in volume.used_by})) or "a container"
    return Conflict(f"volume {volume.name} is in use by {users}", used_by=list(volume.used_by))
