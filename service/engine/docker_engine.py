"""The real engine: the port over the docker SDK's low-level client.

This is the only module that imports `docker`. SDK objects become our records here,
and every SDK or transport failure becomes one of dockvol's errors.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Protocol

import docker
import docker.errors
import requests
import requests.exceptions
from docker.types import Mount

from .. import times
from ..errors import Conflict, EngineFailure, EngineRejected, EngineUnavailable, NotFound
from ..json_types import JSON
from .port import (
    ConfigRecord,
    ContainerRecord,
    ContainerSpec,
    ContainerState,
    EngineEvent,
    EngineInfo,
    MountRecord,
    PathStat,
    PruneReport,
    SwarmNode,
    VolumeRecord,
    api_version,
)

log = logging.getLogger(__name__)
# Connections kept to the engine: a gevent worker runs many requests at once, and a pool smaller
# than that opens and drops a connection per call over it (with a warning each time).
POOL_SIZE = 64

# From API 1.42 the engine's prune removes only anonymous volumes unless told `all`.
PRUNE_ALL_SINCE = (1, 42)
# Every container dockvol creates gets these, whatever it asked for.
PIDS_LIMIT = 512
SECURITY_OPT = ["no-new-privileges"]
ARCHIVE_CHUNK = 1 << 20


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn whatever the SDK raises into dockvol's errors; engine text stays in the log."""
    try:
        yield
    except docker.errors.NotFound as exc:
        raise NotFound("not found in the engine") from exc
    except docker.errors.APIError as exc:
        if exc.status_code == 409:
            raise Conflict("the engine reports a conflict") from exc
        if exc.status_code == 400:
            log.warning("engine refused: %s", exc)
            raise EngineRejected("the engine refused this configuration") from exc
        log.warning("engine error: %s", exc)
        raise EngineFailure("the engine refused the request") from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        log.warning("engine unreachable: %s", exc)
        raise EngineUnavailable("the engine is unreachable or did not answer in time") from exc
    except docker.errors.DockerException as exc:
        # Raised by the SDK itself, e.g. when the version negotiation cannot reach the engine.
        log.warning("engine unreachable: %s", exc)
        raise EngineUnavailable("the engine is unreachable or did not answer in time") from exc


class DockerEngine:
    """Creates its client on first use, so the app starts while the engine is down."""

    def __init__(self, base_url: str | None = None, timeout: float = 10.0) -> None:
        self._base_url = base_url
        self._timeout = timeout
        self._client: docker.APIClient | None = None
        self._lock = threading.Lock()
        self._failed_at = float("-inf")

    @property
    def _api(self) -> docker.APIClient:
        if self._client is None:
            asked = time.monotonic()
            with self._lock, _translated():
                if self._client is None and self._failed_at >= asked:
                    # Someone else's attempt failed while we waited: do not wait a second timeout.
                    raise EngineUnavailable("the engine is unreachable or did not answer in time")
                if self._client is None:
                    kwargs = docker.utils.kwargs_from_env()
                    if self._base_url:
                        kwargs["base_url"] = self._base_url
                    try:
                        client = docker.APIClient(
                            version="auto", timeout=self._timeout, max_pool_size=POOL_SIZE, **kwargs
                        )
                    except Exception:
                        self._failed_at = time.monotonic()
                        raise
                    # Proxy settings from the environment do not apply to the engine socket, and
                    # reading them costs about a millisecond on every call.
                    client.trust_env = False
                    self._client = client
        return self._client

    def info(self) -> EngineInfo:
        with _translated():
            api = self._api
            data = api.info()
        swarm = data.get("Swarm") or {}
        return EngineInfo(
            api.api_version,
            data.get("ServerVersion", ""),
            data.get("DockerRootDir", ""),
            name=data.get("Name", ""),
            engine_id=data.get("ID", ""),
            node_id=swarm.get("NodeID", ""),
            swarm_state=swarm.get("LocalNodeState", ""),
            manager=bool(swarm.get("ControlAvailable")),
        )

    def list_nodes(self) -> list[SwarmNode]:
        with _translated():
            data = self._api.nodes()
        return [
            SwarmNode(
                n.get("ID", ""),
                (n.get("Description") or {}).get("Hostname", ""),
                (n.get("Spec") or {}).get("Role", ""),
                (n.get("Spec") or {}).get("Availability", ""),
                (n.get("Status") or {}).get("State", ""),
            )
            for n in data or ()
        ]

    def create_config(self, name: str, data: bytes, labels: Mapping[str, str]) -> str:
        with _translated():
            made = self._api.create_config(name, data, dict(labels))
        return str(made.get("ID", ""))

    def inspect_config(self, name: str) -> ConfigRecord:
        with _translated():
            data = self._api.inspect_config(name)
        spec = data.get("Spec") or {}
        return ConfigRecord(data.get("ID", ""), spec.get("Name", ""), spec.get("Labels") or {})

    def remove_config(self, id_: str) -> None:
        with _translated():
            self._api.remove_config(id_)

    def list_volumes(self, labels: Sequence[str] = (), driver: str | None = None) -> list[VolumeRecord]:
        filters: dict[str, object] = {}
        if labels:
            filters["label"] = list(labels)
        if driver:
            filters["driver"] = driver
        with _translated():
            data = self._api.volumes(filters=filters or None)
        return [_volume(v) for v in data.get("Volumes") or ()]

    def inspect_volume(self, name: str) -> VolumeRecord:
        with _translated():
            return _volume(self._api.inspect_volume(name))

    def create_volume(
        self, name: str | None, driver: str, driver_opts: Mapping[str, str], labels: Mapping[str, str]
    ) -> VolumeRecord:
        with _translated():
            data = self._api.create_volume(name, driver, dict(driver_opts), dict(labels))
        return _volume(data)

    def remove_volume(self, name: str) -> None:
        with _translated():
            self._api.remove_volume(name, force=False)

    def prune_volumes(self, labels: Sequence[str]) -> PruneReport:
        filters: dict[str, object] = {"label": list(labels)}
        with _translated():
            api = self._api
            if api_version(api.api_version) >= PRUNE_ALL_SINCE:
                filters["all"] = True
            data = api.prune_volumes(filters=filters)
        return PruneReport(tuple(data.get("VolumesDeleted") or ()), int(data.get("SpaceReclaimed") or 0))

    def volume_sizes(self) -> dict[str, int]:
        with _translated():
            data = self._api.df()
        return {v["Name"]: int((v.get("UsageData") or {}).get("Size", -1)) for v in data.get("Volumes") or ()}

    def list_containers(
        self, volume: str | None = None, labels: Sequence[str] = (), name: str | None = None
    ) -> list[ContainerRecord]:
        filters: dict[str, object] = {}
        if volume:
            filters["volume"] = volume
        if labels:
            filters["label"] = list(labels)
        if name:
            filters["name"] = "^/" + name.replace(".", r"\.") + "$"  # the engine matches a regexp
        with _translated():
            data = self._api.containers(all=True, filters=filters or None)
        found = [_container(c) for c in data]
        return [c for c in found if c.name == name] if name else found

    def image_present(self, ref: str) -> bool:
        try:
            with _translated():
                self._api.inspect_image(ref)
            return True
        except NotFound:
            return False

    def pull_image(self, ref: str) -> None:
        repository, tag = docker.utils.parse_repository_tag(ref)
        try:
            with _translated():
                self._api.pull(repository, tag=tag or "latest")
        except (EngineFailure, EngineRejected) as exc:  # the engine answered; no registry did
            raise NotFound(f"image {ref} could not be pulled") from exc

    def create_container(self, spec: ContainerSpec) -> str:
        if spec.network == "host" or "host" in (spec.ipc, spec.pid):
            raise EngineRejected("host namespaces are never used")
        mounts = [
            Mount(
                m.target,
                m.source,
                type=m.type,
                read_only=m.read_only,
                no_copy=m.no_copy,
                propagation=m.propagation if m.type == "bind" else None,
                tmpfs_size=m.size_bytes if m.type == "tmpfs" else None,
            )
            for m in spec.mounts
        ]
        with _translated():
            api = self._api
            host_config = api.create_host_config(
                mounts=mounts,
                network_mode=spec.network,
                ipc_mode=spec.ipc,
                pid_mode=spec.pid,
                volumes_from=list(spec.volumes_from) or None,
                restart_policy={"Name": spec.restart} if spec.restart != "no" else None,
                privileged=False,
                security_opt=SECURITY_OPT,
                pids_limit=PIDS_LIMIT,
            )
            created = api.create_container(
                spec.image,
                list(spec.command) if spec.command is not None else None,
                name=spec.name,
                environment=dict(spec.environment),
                labels=dict(spec.labels),
                host_config=host_config,
            )
        container_id: str = created["Id"]
        return container_id

    def pause_container(self, id_or_name: str) -> None:
        with _translated():
            self._api.pause(id_or_name)

    def unpause_container(self, id_or_name: str) -> None:
        with _translated():
            self._api.unpause(id_or_name)

    def import_image(self, ref: str, rootfs_tar: bytes, labels: Mapping[str, str]) -> None:
        repository, tag = docker.utils.parse_repository_tag(ref)
        changes = [f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in labels.items()]
        with _translated():
            self._api.import_image_from_data(rootfs_tar, repository=repository, tag=tag, changes=changes)

    def get_archive(self, id_or_name: str, path: str) -> _Archive:
        with _translated():
            api = self._api
            # The SDK's own get_archive hides the response; we need it to close the stream early.
            response = api._get(
                api._url("/containers/{0}/archive", id_or_name),
                params={"path": path},
                stream=True,
                headers={"Accept-Encoding": "identity"},
            )
            try:
                api._raise_for_status(response)
            except Exception:
                response.close()
                raise
        return _Archive(response)

    def put_archive(self, id_or_name: str, path: str, data: IO[bytes] | Iterable[bytes] | bytes) -> None:
        with _translated():
            self._api.put_archive(id_or_name, path, data)

    def start_container(self, id_or_name: str) -> None:
        with _translated():
            self._api.start(id_or_name)

    def container_state(self, id_or_name: str) -> ContainerState:
        with _translated():
            state = self._api.inspect_container(id_or_name).get("State") or {}
        started = state.get("StartedAt") or ""
        return ContainerState(
            state.get("Status") or "unknown", "" if started.startswith("0001-") else started, state.get("Error") or ""
        )

    def container_starts(self, labels: Sequence[str]) -> Iterator[str]:
        filters = {"type": "container", "event": "start", "label": list(labels)}
        with _translated():
            stream = self._api.events(filters=filters, decode=True)  # subscribed from here on
        return _ids(stream)

    def events(self, since: int, until: int | None = None) -> Iterator[EngineEvent]:
        with _translated():
            stream = self._api.events(
                since=_seconds(since),
                until=None if until is None else _seconds(until),
                filters={"type": ["volume", "container"]},
                decode=True,
            )
        return _events(stream, until is None)

    def clock(self) -> int:
        with _translated():
            now = self._api.info().get("SystemTime", "")
        return _nanoseconds(now)

    def stop_container(self, id_or_name: str, timeout: int = 5) -> None:
        with _translated():
            self._api.stop(id_or_name, timeout=timeout)
            # Under load an engine may answer before it records the exit; wait until it has.
            self._api.wait(id_or_name, timeout=timeout + self._timeout, condition="not-running")

    def rename_container(self, id_or_name: str, new_name: str) -> None:
        with _translated():
            self._api.rename(id_or_name, new_name)

    def remove_container(self, id_or_name: str) -> None:
        with _translated():
            self._api.remove_container(id_or_name, force=True, v=False)


class _Stream(Protocol):
    """The SDK's decoded event stream (its CancellableStream)."""

    def __iter__(self) -> Iterator[JSON]: ...

    def close(self) -> None: ...


def _events(stream: _Stream, endless: bool) -> Iterator[EngineEvent]:
    try:
        with _translated():
            for e in stream:
                actor = e.get("Actor") or {}
                attributes = actor.get("Attributes") or {}
                yield EngineEvent(
                    e.get("Type", ""),
                    e.get("Action", ""),
                    actor.get("ID", ""),
                    int(e.get("timeNano", 0)),
                    attributes.get("name", "") if e.get("Type") == "container" else "",
                )
        if endless:
            raise EngineUnavailable("the engine's event stream ended")
    finally:
        stream.close()


def _seconds(ns: int) -> str:
    """The engine's time parameters: seconds, with nanoseconds after the point."""
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def _nanoseconds(rfc3339: str) -> int:
    """The engine's SystemTime (RFC 3339, up to nanoseconds) as nanoseconds since the epoch."""
    try:
        return times.nanoseconds(rfc3339)
    except ValueError:
        raise EngineFailure(f"the engine's clock reads {rfc3339!r}") from None


def _created(rfc3339: str | None) -> str | None:
    """A volume's creation time (RFC 3339 in the engine host's zone) in UTC; a driver's that is
    not RFC 3339 is not shown."""
    try:
        return times.utc(rfc3339) if rfc3339 else None
    except ValueError:
        return None


def _ids(stream: _Stream) -> Iterator[str]:
    try:
        with _translated():
            for event in stream:
                yield event.get("id") or event.get("Actor", {}).get("ID", "")
        raise EngineUnavailable("the engine's event stream ended")
    finally:
        stream.close()


class _Archive:
    def __init__(self, response: requests.Response) -> None:
        self._response = response
        stat = json.loads(base64.b64decode(response.headers.get("X-Docker-Container-Path-Stat", "e30=")))
        self.stat = PathStat(
            stat.get("name", ""),
            int(stat.get("size", 0)),
            int(stat.get("mode", 0)),
            stat.get("mtime", ""),
            stat.get("linkTarget", ""),
        )

    def __iter__(self) -> Iterator[bytes]:
        # read(n) gathers the engine's small HTTP chunks into large ones: fewer, bigger socket writes.
        with _translated():
            while chunk := self._response.raw.read(ARCHIVE_CHUNK, decode_content=False):
                yield chunk

    def close(self) -> None:
        self._response.close()


def _volume(data: JSON) -> VolumeRecord:
    return VolumeRecord(
        name=data["Name"],
        driver=data.get("Driver") or "local",
        mountpoint=data.get("Mountpoint") or "",
        scope=data.get("Scope") or "local",
        created_at=_created(data.get("CreatedAt")),
        labels=dict(data.get("Labels") or {}),
        driver_opts=dict(data.get("Options") or {}),
    )


def _container(data: JSON) -> ContainerRecord:
    names = data.get("Names") or [data["Id"]]
    created = data.get("Created")
    return ContainerRecord(
        id=data["Id"],
        name=names[0].lstrip("/"),
        state=data.get("State") or "unknown",
        image=data.get("Image") or "",
        created_at=times.text(int(created) * 1_000_000_000) if created else None,
        network=(data.get("HostConfig") or {}).get("NetworkMode") or "",
        labels=dict(data.get("Labels") or {}),
        mounts=tuple(
            MountRecord(
                type=m.get("Type", ""),
                target=m.get("Destination", ""),
                name=m.get("Name") or None,
                source=m.get("Source") or None,
                read_only=not m.get("RW", True),
                driver=m.get("Driver") or None,
            )
            for m in data.get("Mounts") or ()
        ),
    )
