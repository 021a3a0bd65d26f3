"""The one port between dockvol and a container engine, and the records it speaks in.

Implemented by `docker_engine.DockerEngine` (the real engine, over the docker SDK) and,
in the unit tier, by a fake (tests/fakes); tests/contract holds the tests both
must pass. Every method may raise `EngineUnavailable` or `EngineFailure`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol


@dataclass(frozen=True)
class EngineInfo:
    api_version: str
    server_version: str
    data_root: str
    name: str = ""  # the engine host's hostname: the node's name in every representation
    engine_id: str = ""
    node_id: str = ""  # Swarm's id of this node; empty outside a Swarm
    swarm_state: str = ""  # Swarm's LocalNodeState: inactive, pending, active, error, locked
    manager: bool = False  # a Swarm manager (it can read the node and task lists)


@dataclass(frozen=True)
class SwarmNode:
    id: str
    hostname: str
    role: str  # manager | worker
    availability: str  # active | pause | drain
    state: str  # ready | down | unknown | disconnected


@dataclass(frozen=True)
class ConfigRecord:
    """A Swarm config (fleet mode keeps its fleet-wide locks as configs: service/fleet/locks.py)."""

    id: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


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
    image: str = ""
    created_at: str | None = None
    network: str = ""


@dataclass(frozen=True)
class MountSpec:
    """One mount to create: `volume` (source = an existing volume's name), `bind` (source = a
    checked host path) or `tmpfs` (no source)."""

    type: str
    target: str
    source: str | None = None
    read_only: bool = False
    no_copy: bool = False
    propagation: str | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class ContainerSpec:
    """What to create. Hardening (never privileged, no devices, no-new-privileges, a PIDs limit)
    is not asked for here: every implementation applies it to every container."""

    name: str
    image: str
    command: tuple[str, ...] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[MountSpec, ...] = ()
    network: str = "none"  # a network name, or "container:ID" to join a sharing group's namespace
    ipc: str | None = None  # None (private), "shareable", or "container:ID"
    pid: str | None = None  # None (private) or "container:ID"
    volumes_from: tuple[str, ...] = ()  # "ID:rw" or "ID:ro"
    restart: str = "no"  # the engine's restart policy: no | on-failure | unless-stopped | always


@dataclass(frozen=True)
class ContainerState:
    """What `docker inspect` says of a container's last run."""

    status: str
    started_at: str  # RFC 3339; "" if it never started
    error: str  # why the engine could not start it the last time it tried; "" if none


@dataclass(frozen=True)
class PathStat:
    """What the engine says of a path inside a container (`docker cp`'s stat)."""

    name: str
    size: int
    mode: int  # Go's os.FileMode bits: type in the high bits, permissions in the low 9
    mtime: str
    link_target: str = ""

    @property
    def is_dir(self) -> bool:
        return bool(self.mode & (1 << 31))

    @property
    def is_regular(self) -> bool:
        go_mode_type = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)
        return not self.mode & go_mode_type


class Archive(Protocol):
    """A tar stream read from the engine: iterate for bytes, always close."""

    stat: PathStat

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class EngineEvent:
    """One change the engine reports for a volume or a container (`docker events`)."""

    type: str  # "volume" or "container"
    action: str  # create, destroy, start, die, rename, ... (the engine's words)
    id: str  # a volume's name, a container's id
    at: int  # the engine's clock, in nanoseconds since the epoch
    name: str = ""  # a container's name (after the change, for a rename)


@dataclass(frozen=True)
class PruneReport:
    volumes_deleted: tuple[str, ...]
    space_reclaimed: int


class Engine(Protocol):
    def info(self) -> EngineInfo:
        """Version, data root and node identity of the engine; also the readiness probe."""

    def list_nodes(self) -> list[SwarmNode]:
        """The Swarm's nodes; only a manager (`info().manager`) can answer, others raise EngineFailure."""

    def create_config(self, name: str, data: bytes, labels: Mapping[str, str]) -> str:
        """A Swarm config, in Swarm's replicated store; its id. Raises Conflict when one of that
        name exists; only a manager can (others raise EngineFailure)."""

    def inspect_config(self, name: str) -> ConfigRecord:
        """Raises NotFound."""

    def remove_config(self, id_: str) -> None:
        """By id (a config made again under the same name has another). Raises NotFound."""

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

    def list_containers(
        self, volume: str | None = None, labels: Sequence[str] = (), name: str | None = None
    ) -> list[ContainerRecord]:
        """All containers, running or not, with their mounts, in one call; only those that mount
        `volume`, carry every label filter, and are called exactly `name`, when given."""

    def image_present(self, ref: str) -> bool:
        """Whether the engine holds this image."""

    def pull_image(self, ref: str) -> None:
        """Raises NotFound when no registry has it, EngineUnavailable when none answers."""

    def create_container(self, spec: ContainerSpec) -> str:
        """The new container's id. Raises Conflict (name taken), NotFound (image or volume),
        EngineRejected (a configuration the engine refuses)."""

    def start_container(self, id_or_name: str) -> None:
        """Raises NotFound, EngineRejected (e.g. the command does not exist in the image)."""

    def container_state(self, id_or_name: str) -> ContainerState:
        """Raises NotFound."""

    def container_starts(self, labels: Sequence[str]) -> Iterator[str]:
        """The ids of containers carrying every label filter, as they start, from the moment of the
        call on; blocks between events; ends (raising EngineUnavailable) when the engine goes away."""

    def events(self, since: int, until: int | None = None) -> Iterator[EngineEvent]:
        """Volume and container events at or after `since` (ns), in the engine's order: with
        `until`, those up to it (the engine keeps only its latest few hundred), then the iterator
        ends; without, the kept ones, then each as it happens, blocking between them, until the
        engine goes away (EngineUnavailable)."""

    def clock(self) -> int:
        """The engine's clock now, in nanoseconds since the epoch."""

    def stop_container(self, id_or_name: str, timeout: int = 5) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds. Raises NotFound."""

    def rename_container(self, id_or_name: str, new_name: str) -> None:
        """Raises NotFound, Conflict (name taken)."""

    def remove_container(self, id_or_name: str) -> None:
        """Stop and remove; its volumes stay (dockvol removes volumes itself). Raises NotFound."""

    def pause_container(self, id_or_name: str) -> None:
        """Raises NotFound, Conflict (not running)."""

    def unpause_container(self, id_or_name: str) -> None:
        """Raises NotFound, Conflict (not paused)."""

    def import_image(self, ref: str, rootfs_tar: bytes, labels: Mapping[str, str]) -> None:
        """`docker import`: an image from a root filesystem tar."""

    def get_archive(self, id_or_name: str, path: str) -> Archive:
        """A tar of `path` in a (created, not necessarily started) container; `DIR/.` gives the
        directory's content under `.`. Raises NotFound when the path does not exist."""

    def put_archive(self, id_or_name: str, path: str, data: IO[bytes] | Iterable[bytes] | bytes) -> None:
        """Extract a tar (plain or gzip) into the existing directory `path`. Raises NotFound."""


def labels_match(labels: Mapping[str, str], filters: Sequence[str]) -> bool:
    """The engine's label filter: `k` needs the key, `k=v` the key with that value."""
    for f in filters:
        key, sep, value = f.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def api_version(text: str) -> tuple[int, ...]:
    """An engine API version ("1.41") as a tuple that compares in order."""
    return tuple(int(part) for part in text.split("."))
