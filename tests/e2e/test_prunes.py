"""Prunes, dockvol's own and those made on the engine directly, reach reads and watchers.

Engine 20.10 records a volume prune as one `prune` event with no `destroy` per volume; a system
prune is a container prune and a volume prune (each one event, the containers' destroys beside
it). Each case is checked as a client sees it: GET of each object, the list, and `/events`."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import uuid

import pytest
import requests

from tests.support import IMAGE, TEST_LABEL, engine_host, read_soon

from .conftest import ADMIN, READER

SOON = 5.0  # seconds a change made directly may take to reach reads (the event stream's pace)


class Watcher:
    """One `/events` stream read on a thread; `until(kind, resource, name)` waits for one event."""

    def __init__(self, service, query: str) -> None:
        self.response = requests.get(service.url(f"/api/v1/events{query}"), headers=READER, stream=True, timeout=60)
        assert self.response.status_code == 200
        self.events: queue.Queue[tuple[str, str, str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        kind = ""
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    data = json.loads(line.removeprefix("data: "))
                    self.events.put((kind, data.get("resource", ""), data.get("name", "")))
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed by the test (urllib3 drops the socket under the reader)

    def until(self, *wanted: tuple[str, str, str]) -> None:
        missing = set(wanted)
        seen = []
        while missing:
            try:
                event = self.events.get(timeout=SOON)
            except queue.Empty:
                pytest.fail(f"no {sorted(missing)} on the stream within {SOON} s; saw {seen}")
            seen.append(event)
            missing.discard(event)

    def close(self) -> None:
        self.response.close()


def docker_cli(*args: str) -> None:
    subprocess.run(["docker", "-H", engine_host(), *args], check=True, capture_output=True, timeout=60)


def volume_prune(run: str, sdk) -> None:
    filters = {"label": [f"run={run}"]}
    if tuple(int(p) for p in sdk.api.api_version.split(".")) >= (1, 42):
        filters["all"] = ["true"]  # from API 1.42 a prune spares named volumes unless told
    sdk.api.prune_volumes(filters=filters)


PRUNES = {
    "volume prune (the engine's API)": lambda run, sdk: volume_prune(run, sdk),
    "container prune (docker CLI)": lambda run, sdk: docker_cli(
        "container", "prune", "-f", "--filter", f"label=run={run}"
    ),
    "system prune (docker CLI)": lambda run, sdk: docker_cli(
        "system", "prune", "-f", "--volumes", "--filter", f"label=run={run}"
    ),
}


def make_world(service, run: str) -> tuple[list[str], str]:
    """Two unused volumes and one stopped binding, all labelled `run`."""
    labels = {TEST_LABEL: "1", "run": run}
    volumes = []
    for _ in range(2):
        made = requests.post(service.url("/api/v1/volumes"), json={"labels": labels}, headers=ADMIN, timeout=30)
        assert made.status_code == 201, made.text
        volumes.append(made.json()["name"])
    binding = f"dvtest-pruned-{run}"
    body = {"name": binding, "image": IMAGE, "command": ["true"], "network": "none", "start": False, "labels": labels}
    made = requests.post(service.url("/api/v1/bindings"), json=body, headers=ADMIN, timeout=60)
    assert made.status_code == 201, made.text
    return volumes, binding


def test_dockvols_own_prune_is_seen_by_the_next_read_and_by_watchers(service, sdk):
    run = uuid.uuid4().hex[:10]
    watcher = Watcher(service, f"?resource=volume&label=run={run}")
    volumes, binding = make_world(service, run)
    watcher.until(*(("created", "volume", v) for v in volumes))
    body = {"include_named": True, "labels": [f"run={run}"]}
    pruned = requests.post(service.url("/api/v1/volumes/prune"), json=body, headers=ADMIN, timeout=30)
    assert sorted(pruned.json()["volumes_deleted"]) == sorted(volumes), pruned.text
    for v in volumes:  # at once: the prune was answered
        assert requests.get(service.url(f"/api/v1/volumes/{v}"), headers=READER, timeout=30).status_code == 404
    listed = requests.get(service.url(f"/api/v1/volumes?label=run={run}"), headers=READER, timeout=30).json()
    assert listed == []
    watcher.until(*(("deleted", "volume", v) for v in volumes))
    watcher.close()
    assert requests.delete(service.url(f"/api/v1/bindings/{binding}"), headers=ADMIN, timeout=60).status_code == 204


@pytest.mark.parametrize("prune", list(PRUNES))
def test_a_prune_made_on_the_engine_directly_reaches_reads_and_watchers(service, sdk, prune):
    run = uuid.uuid4().hex[:10]
    watcher = Watcher(service, f"?label=run={run}")
    volumes, binding = make_world(service, run)
    watcher.until(("created", "binding", binding), *(("created", "volume", v) for v in volumes))
    PRUNES[prune](run, sdk)
    left_volumes = {v.name for v in sdk.volumes.list(filters={"label": f"run={run}"})}
    left_containers = {c.name for c in sdk.containers.list(all=True, filters={"label": f"run={run}"})}
    gone = [("volume", v) for v in volumes if v not in left_volumes]
    gone += [("binding", binding)] if binding not in left_containers else []
    assert gone, "the prune removed nothing: the test proves nothing"
    for resource, name in gone:
        path = f"/api/v1/{resource}s/{name}"
        got = read_soon(
            lambda p=path: requests.get(service.url(p), headers=READER, timeout=30),
            lambda r: r.ok is False,
            within=SOON,
        )
        assert got.status_code == 404, (resource, name, got.text)
    listed = requests.get(service.url(f"/api/v1/volumes?label=run={run}"), headers=READER, timeout=30).json()
    assert {v["name"] for v in listed} == left_volumes
    watcher.until(*(("deleted", resource, name) for resource, name in gone))
    watcher.close()
    for v in left_volumes:
        requests.delete(service.url(f"/api/v1/volumes/{v}"), headers=ADMIN, timeout=30)
    if binding in left_containers:
        requests.delete(service.url(f"/api/v1/bindings/{binding}"), headers=ADMIN, timeout=60)
