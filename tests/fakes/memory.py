"""An in-memory engine for unit tests, kept honest by tests/contract.

It follows the real engine's rules where dockvol depends on them: create returns an
existing volume of the same name, remove refuses a volume in use, prune skips volumes
in use. `calls` counts the port calls so tests can bound them.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import IO

from service.engine.port import (
    ConfigRecord,
    ContainerRecord,
    ContainerSpec,
    ContainerState,
    EngineEvent,
    EngineInfo,
    MountRecord,
    MountSpec,
    PruneReport,
    SwarmNode,
    VolumeRecord,
    api_version,
    labels_match,
)
from service.errors import Conflict, EngineFailure, EngineRejected, EngineUnavailable, NotFound

from .memory_files import MemoryArchive, VolumeFiles


class InMemoryEngine:
    def __init__(self, api_version: str = "1.41", data_root: str = "/var/lib/docker", name: str = "node-1") -> None:
        self.api_version = api_version
        self.data_root = data_root
        self.name = name
        self.swarm_nodes: list[SwarmNode] = []  # set to make it a Swarm manager (fleet tests)
        self.volumes: dict[str, VolumeRecord] = {}
        self.configs: dict[str, ConfigRecord] = {}  # Swarm's configs, by name (a manager's only)
        self.containers: dict[str, ContainerRecord] = {}
        self.sizes: dict[str, int] = {}
        self.images: set[str] = {"busybox:stable"}
        self.specs: dict[str, ContainerSpec] = {}  # what each container was created from
        self.files = VolumeFiles()
        self.calls: Counter[str] = Counter()
        self.down = False
        self.states: dict[str, ContainerState] = {}  # by id, for containers that ever ran or failed to
        self._lock = threading.RLock()
        self._started = threading.Condition(self._lock)
        self._clock = 0
        self.events_log: list[EngineEvent] = []  # every change, as the engine's event stream gives it
        self.events_kept = 256  # what `events(since, until)` can still return, as the engine keeps

    def _call(self, name: str) -> None:
        self.calls[name] += 1
        if self.down:
            raise EngineUnavailable("the engine is unreachable or did not answer in time")

    def _now(self) -> str:
        self._clock += 1
        return f"2026-01-01T00:00:{self._clock % 60:02d}Z"

    def _emit(self, type_: str, action: str, id_: str, name: str = "") -> None:
        with self._started:
            last = self.events_log[-1].at if self.events_log else 0
            self.events_log.append(EngineEvent(type_, action, id_, max(time.time_ns(), last + 1), name))
            self._started.notify_all()

    def _users(self, volume: str) -> list[ContainerRecord]:
        return [c for c in self.containers.values() if any(m.name == volume for m in c.mounts)]

    # -- the port ---------------------------------------------------------------------------

    def info(self) -> EngineInfo:
        self._call("info")
        return EngineInfo(
            self.api_version,
            "memory",
            self.data_root,
            name=self.name,
            engine_id=f"memory-{self.name}",
            manager=bool(self.swarm_nodes),
        )

    def list_nodes(self) -> list[SwarmNode]:
        self._call("list_nodes")
        if not self.swarm_nodes:
            raise EngineFailure("this node is not a swarm manager")
        return list(self.swarm_nodes)

    def create_config(self, name: str, data: bytes, labels: Mapping[str, str]) -> str:
        self._call("create_config")
        if not self.swarm_nodes:
            raise EngineFailure("this node is not a swarm manager")
        with self._lock:
            if name in self.configs:
                raise Conflict("the engine reports a conflict")
            self._clock += 1
            made = ConfigRecord(f"config-{self._clock}", name, dict(labels))
            self.configs[name] = made
            return made.id

    def inspect_config(self, name: str) -> ConfigRecord:
        self._call("inspect_config")
        with self._lock:
            if name not in self.configs:
                raise NotFound("not found in the engine")
            return self.configs[name]

    def remove_config(self, id_: str) -> None:
        self._call("remove_config")
        with self._lock:
            found = next((n for n, c in self.configs.items() if c.id == id_), None)
            if found is None:
                raise NotFound("not found in the engine")
            del self.configs[found]

    def list_volumes(self, labels: Sequence[str] = (), driver: str | None = None) -> list[VolumeRecord]:
        self._call("list_volumes")
        with self._lock:
            return [
                v
                for v in self.volumes.values()
                if labels_match(v.labels, labels) and (driver is None or v.driver == driver)
            ]

    def inspect_volume(self, name: str) -> VolumeRecord:
        self._call("inspect_volume")
        with self._lock:
            if name not in self.volumes:
                raise NotFound("not found in the engine")
            return self.volumes[name]

    def create_volume(
        self, name: str | None, driver: str, driver_opts: Mapping[str, str], labels: Mapping[str, str]
    ) -> VolumeRecord:
        self._call("create_volume")
        with self._lock:
            name = name or secrets.token_hex(32)
            existing = self.volumes.get(name)
            if existing is not None:
                if existing.driver != driver:
                    raise Conflict(f"volume {name} exists with another driver")
                return existing
            record = VolumeRecord(
                name=name,
                driver=driver,
                mountpoint=f"{self.data_root}/volumes/{name}/_data",
                scope="local",
                created_at=self._now(),
                labels=dict(labels),
                driver_opts=dict(driver_opts),
            )
            self.volumes[name] = record
            self._emit("volume", "create", name)
            return record

    def remove_volume(self, name: str) -> None:
        self._call("remove_volume")
        with self._lock:
            if name not in self.volumes:
                raise NotFound("not found in the engine")
            if self._users(name):
                raise Conflict("volume is in use")
            del self.volumes[name]
            self.sizes.pop(name, None)
            self.files.drop(name)
            self._emit("volume", "destroy", name)

    def prune_volumes(self, labels: Sequence[str]) -> PruneReport:
        self._call("prune_volumes")
        with self._lock:
            doomed = [n for n, v in self.volumes.items() if labels_match(v.labels, labels) and not self._users(n)]
            space = sum(max(self.sizes.get(n, 0), 0) for n in doomed)
            for n in doomed:
                del self.volumes[n]
                self.sizes.pop(n, None)
                self.files.drop(n)
                if api_version(self.api_version) >= (1, 42):  # engine 20.10 records no destroy per volume
                    self._emit("volume", "destroy", n)
            self._emit("volume", "prune", "")  # one event for the whole prune, on every engine
            return PruneReport(tuple(doomed), space)

    def prune_containers(self, labels: Sequence[str] = ()) -> list[str]:
        """What `docker container prune` does (no port operation: dockvol never prunes containers):
        stopped containers go, each with its destroy event, then one prune event."""
        with self._lock:
            doomed = [c for c in self.containers.values() if c.state != "running" and labels_match(c.labels, labels)]
            for c in doomed:
                del self.containers[c.id]
                self.specs.pop(c.id, None)
                self._emit("container", "destroy", c.id, c.name)
            self._emit("container", "prune", "")
            return [c.id for c in doomed]

    def volume_sizes(self) -> dict[str, int]:
        self._call("volume_sizes")
        with self._lock:
            return {n: self.sizes.get(n, self.files.size(n)) for n in self.volumes}

    def list_containers(
        self, volume: str | None = None, labels: Sequence[str] = (), name: str | None = None
    ) -> list[ContainerRecord]:
        self._call("list_containers")
        with self._lock:
            found = self._users(volume) if volume else list(self.containers.values())
            return [c for c in found if labels_match(c.labels, labels) and name in (None, c.name)]

    def image_present(self, ref: str) -> bool:
        self._call("image_present")
        return ref in self.images

    def pull_image(self, ref: str) -> None:
        self._call("pull_image")
        raise NotFound(f"image {ref} could not be pulled")

    def create_container(self, spec: ContainerSpec) -> str:
        self._call("create_container")
        with self._lock:
            if spec.network == "host" or "host" in (spec.ipc, spec.pid):
                raise EngineRejected("host namespaces are never used")
            if any(c.name == spec.name for c in self.containers.values()):
                raise Conflict("the engine reports a conflict")
            if spec.image not in self.images:
                raise NotFound("not found in the engine")
            mounts = [self._mount(m) for m in spec.mounts]
            for ref in spec.volumes_from:  # the engine copies the source's mounts
                source, _, mode = ref.partition(":")
                for m in self._find(source).mounts:
                    mounts.append(replace(m, read_only=m.read_only or mode == "ro"))
            record = ContainerRecord(
                id=secrets.token_hex(32),
                name=spec.name,
                state="created",
                labels=dict(spec.labels),
                mounts=tuple(mounts),
                image=spec.image,
                created_at=self._now(),
                network=spec.network,
            )
            self.containers[record.id] = record
            self.specs[record.id] = spec
            self._emit("container", "create", record.id, record.name)
            return record.id

    def start_container(self, id_or_name: str) -> None:
        self._call("start_container")
        with self._lock:
            self._set_state(id_or_name, "running")
            cid = self._find(id_or_name).id
            started = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            self.states[cid] = ContainerState("running", started, "")
            self._emit("container", "start", cid, self._find(cid).name)

    def container_state(self, id_or_name: str) -> ContainerState:
        self._call("container_state")
        with self._lock:
            c = self._find(id_or_name)
            known = self.states.get(c.id, ContainerState(c.state, "", ""))
            return replace(known, status=c.state)

    def container_starts(self, labels: Sequence[str]) -> Iterator[str]:
        self._call("container_starts")
        with self._lock:
            seen = len(self.events_log)  # subscribed now, not at the first next()
        return self._starting(seen, labels)

    def _starting(self, seen: int, labels: Sequence[str]) -> Iterator[str]:
        for e in self._stream([], seen):
            c = self.containers.get(e.id)
            if e.action == "start" and c is not None and labels_match(c.labels, labels):
                yield e.id

    def events(self, since: int, until: int | None = None) -> Iterator[EngineEvent]:
        self._call("events")
        with self._lock:
            kept = self.events_log[-self.events_kept :]
            past = [e for e in kept if e.at >= since and (until is None or e.at <= until)]
            seen = len(self.events_log)
        return iter(past) if until is not None else self._stream(past, seen)

    def _stream(self, past: list[EngineEvent], seen: int) -> Iterator[EngineEvent]:
        yield from past
        while True:
            with self._started:
                while len(self.events_log) <= seen and not self.down:
                    self._started.wait(0.1)
                if self.down:
                    raise EngineUnavailable("the engine's event stream ended")
                event = self.events_log[seen]
                seen += 1
            yield event

    def clock(self) -> int:
        self._call("clock")
        return time.time_ns()

    def stop_container(self, id_or_name: str, timeout: int = 5) -> None:
        self._call("stop_container")
        self._set_state(id_or_name, "exited", "die")

    def rename_container(self, id_or_name: str, new_name: str) -> None:
        self._call("rename_container")
        with self._lock:
            record = self._find(id_or_name)
            if any(c.name == new_name for c in self.containers.values()):
                raise Conflict("the engine reports a conflict")
            self.containers[record.id] = replace(record, name=new_name)
            self._emit("container", "rename", record.id, new_name)

    def remove_container(self, id_or_name: str) -> None:
        self._call("remove_container")
        with self._lock:
            record = self._find(id_or_name)
            del self.containers[record.id]
            self.specs.pop(record.id, None)
            self._emit("container", "destroy", record.id, record.name)

    def pause_container(self, id_or_name: str) -> None:
        self._call("pause_container")
        self._change_state(id_or_name, "running", "paused", "pause")

    def unpause_container(self, id_or_name: str) -> None:
        self._call("unpause_container")
        self._change_state(id_or_name, "paused", "running", "unpause")

    def import_image(self, ref: str, rootfs_tar: bytes, labels: Mapping[str, str]) -> None:
        self._call("import_image")
        self.images.add(ref)

    def get_archive(self, id_or_name: str, path: str) -> MemoryArchive:
        self._call("get_archive")
        with self._lock:
            volume, rel = self._volume_path(id_or_name, path)
            return self.files.archive(volume, rel)

    def put_archive(self, id_or_name: str, path: str, data: IO[bytes] | Iterable[bytes] | bytes) -> None:
        self._call("put_archive")
        with self._lock:
            volume, rel = self._volume_path(id_or_name, path)
            self.files.extract(volume, rel, data)

    def _volume_path(self, id_or_name: str, path: str) -> tuple[str, str]:
        """The volume mounted where `path` lies in the container, and the path inside it."""
        mounts = [m for m in self._find(id_or_name).mounts if m.type == "volume"]
        for m in sorted(mounts, key=lambda m: -len(m.target)):
            if path == m.target or path.startswith(m.target.rstrip("/") + "/"):
                return m.name or "", path[len(m.target) :].lstrip("/")
        raise NotFound("not found in the engine")

    def _change_state(self, id_or_name: str, before: str, after: str, action: str) -> None:
        with self._lock:
            if self._find(id_or_name).state != before:
                raise Conflict("the engine reports a conflict")
            self._set_state(id_or_name, after, action)

    def _find(self, id_or_name: str) -> ContainerRecord:
        for c in self.containers.values():
            if id_or_name in (c.id, c.name):
                return c
        raise NotFound("not found in the engine")

    def _set_state(self, id_or_name: str, state: str, action: str = "") -> None:
        with self._lock:
            record = self._find(id_or_name)
            self.containers[record.id] = replace(record, state=state)
            if action:
                self._emit("container", action, record.id, record.name)

    def _mount(self, m: MountSpec) -> MountRecord:
        if m.type == "volume":
            name = m.source or secrets.token_hex(32)  # as the engine does: no source, an anonymous volume
            if name not in self.volumes:  # as the engine does: a missing named volume is made
                self.volumes[name] = VolumeRecord(
                    name, "local", f"{self.data_root}/volumes/{name}/_data", "local", self._now()
                )
                self._emit("volume", "create", name)
            v = self.volumes[name]
            return MountRecord(
                "volume", m.target, name=v.name, source=v.mountpoint, read_only=m.read_only, driver=v.driver
            )
        return MountRecord(m.type, m.target, source=m.source, read_only=m.read_only)

    # -- test helpers (the real engine's equivalent is `docker create`) ----------------------

    def add_container(
        self,
        name: str,
        volumes: Mapping[str, str] = {},
        labels: Mapping[str, str] | None = None,
        read_only: bool = False,
    ) -> ContainerRecord:
        """A container mounting each volume name at its target (volume -> target)."""
        with self._lock:
            mounts = tuple(
                MountRecord(
                    "volume",
                    target,
                    name=v,
                    source=self.volumes[v].mountpoint,
                    read_only=read_only,
                    driver=self.volumes[v].driver,
                )
                for v, target in volumes.items()
            )
            record = ContainerRecord(secrets.token_hex(32), name, "created", dict(labels or {}), mounts)
            self.containers[record.id] = record
            self._emit("container", "create", record.id, name)
            return record

    def set_size(self, volume: str, size: int) -> None:
        """The size `volume_sizes` gives, whatever the volume's files (growth made by a container)."""
        self.sizes[volume] = size
