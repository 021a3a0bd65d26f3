"""The one port between dockvol and a container engine, and the records it speaks in.

Two implementations: `docker_engine.DockerEngine` (the real engine, over the docker
SDK) and `memory.InMemoryEngine` (a fake for unit tests). tests/contract holds the
tests both must pass. Every method may raise `EngineUnavailable` or `EngineFailure`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence


@dataclass(frozen=True)
class EngineInfo:
    api_version: str
    server_version: str
    data_root: str


@dataclass(frozen=True)
class VolumeRecord:
    name: str
    driver: str
    mountpoint: str
    scope: str
    created_at: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    driver_opts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MountRecord:
    """One mount as `docker inspect` shows it."""

    type: str
    target: str
    name: str | None = None
    source: str | None = None
    read_only: bool = False
    driver: str | None = None


@dataclass(frozen=True)
class ContainerRecord:
    id: str
    name: str
    state: str
    labels: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[MountRecord, ...] = ()


@dataclass(frozen=True)
class PruneReport:
    volumes_deleted: tuple[str, ...]
    space_reclaimed: int


class Engine(Protocol):
    def info(self) -> EngineInfo:
        """Version and data root of the engine; also the readiness probe."""

    def list_volumes(self, labels: Sequence[str] = (), driver: str | None = None) -> list[VolumeRecord]:
        """All volumes matching every label filter (`k` or `k=v`) and the driver, in one call."""

    def inspect_volume(self, name: str) -> VolumeRecord:
        """Raises NotFound."""

    def create_volume(
        self,
        name: str | None,
        driver: str,
        driver_opts: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> VolumeRecord:
        """Create, or return the volume that already has this name (the engine's own rule).

        Raises Conflict when a volume of that name exists with another driver.
        """

    def remove_volume(self, name: str) -> None:
        """Never forced. Raises NotFound, or Conflict while a container uses it."""

    def prune_volumes(self, labels: Sequence[str]) -> PruneReport:
        """Remove every unused volume matching all label filters, named or anonymous,
        on every engine API version."""

    def volume_sizes(self) -> dict[str, int]:
        """Bytes used by each local volume (-1 where the engine does not know)."""

    def list_containers(self, volume: str | None = None) -> list[ContainerRecord]:
        """All containers, running or not, with their mounts, in one call;
        only those that mount `volume` when it is given."""
