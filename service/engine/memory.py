"""An in-memory engine for unit tests, kept honest by tests/contract.

It follows the real engine's rules where dockvol depends on them: create returns an
existing volume of the same name, remove refuses a volume in use, prune skips volumes
in use. `calls` counts the port calls so tests can bound them.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from typing import Mapping, Sequence

from ..errors import Conflict, EngineUnavailable, NotFound
from .port import ContainerRecord, EngineInfo, MountRecord, PruneReport, VolumeRecord


def labels_match(labels: Mapping[str, str], filters: Sequence[str]) -> bool:
    """The engine's label filter: `k` needs the key, `k=v` the key with that value."""
    for f in filters:
        key, sep, value = f.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


class InMemoryEngine:
    def __init__(self, api_version: str = "1.41", data_root: str = "/var/lib/docker") -> None:
        self.api_version = api_version
        self.data_root = data_root
        self.volumes: dict[str, VolumeRecord] = {}
        self.containers: dict[str, ContainerRecord] = {}
        self.sizes: dict[str, int] = {}
        self.calls: Counter[str] = Counter()
        self.down = False
        self._lock = threading.RLock()
        self._clock = 0

    def _call(self, name: str) -> None:
        self.calls[name] += 1
        if self.down:
            raise EngineUnavailable("the engine is unreachable or did not answer in time")

    def _now(self) -> str:
        self._clock += 1
        return f"2026-01-01T00:00:{self._clock % 60:02d}Z"

    def _users(self, volume: str) -> list[ContainerRecord]:
        return [c for c in self.containers.values() if any(m.name == volume for m in c.mounts)]

    # -- the port ---------------------------------------------------------------------------

    def info(self) -> EngineInfo:
        self._call("info")
        return EngineInfo(self.api_version, "memory", self.data_root)

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

    def prune_volumes(self, labels: Sequence[str]) -> PruneReport:
        self._call("prune_volumes")
        with self._lock:
            doomed = [
                n for n, v in self.volumes.items() if labels_match(v.labels, labels) and not self._users(n)
            ]
            space = sum(max(self.sizes.get(n, 0), 0) for n in doomed)
            for n in doomed:
                del self.volumes[n]
                self.sizes.pop(n, None)
            return PruneReport(tuple(doomed), space)

    def volume_sizes(self) -> dict[str, int]:
        self._call("volume_sizes")
        with self._lock:
            return {n: self.sizes.get(n, 0) for n in self.volumes}

    def list_containers(self, volume: str | None = None) -> list[ContainerRecord]:
        self._call("list_containers")
        with self._lock:
            found = self._users(volume) if volume else list(self.containers.values())
            return list(found)

    # -- test helpers (the real engine's equivalent is `docker create`) ----------------------

    def add_container(
        self, name: str, volumes: Mapping[str, str] = {}, labels: Mapping[str, str] | None = None,
        read_only: bool = False,
    ) -> ContainerRecord:
        """A container mounting each volume name at its target (volume -> target)."""
        with self._lock:
            mounts = tuple(
                MountRecord("volume", target, name=v, source=self.volumes[v].mountpoint,
                            read_only=read_only, driver=self.volumes[v].driver)
                for v, target in volumes.items()
            )
            record = ContainerRecord(secrets.token_hex(32), name, "created", dict(labels or {}), mounts)
            self.containers[record.id] = record
            return record

    def remove_container(self, name: str) -> None:
        with self._lock:
            for cid, c in list(self.containers.items()):
                if c.name == name:
                    del self.containers[cid]

    def set_size(self, volume: str, size: int) -> None:
        self.sizes[volume] = size
