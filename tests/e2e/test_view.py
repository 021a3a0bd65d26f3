"""Reads come from each worker's event-fed view of the engine (service/engine/viewed.py), and no
read is ever older than a write answered before it: checked through fresh connections, so the
write and the read land on either of two workers."""

from __future__ import annotations

import json
import time

import requests

from tests.support import IMAGE, TEST_LABEL, engine_host, unique

from .conftest import ADMIN, READER, WRITER, service_env
from .test_operations import access_pids, sample

PAIRS = 500


def test_500_writes_each_read_back_at_once_from_either_worker_are_never_stale(start_service, bind_root):
    svc = start_service(
        service_env(engine_host(), DOCKVOL_WORKERS="2", DOCKVOL_BIND_ROOTS=json.dumps([str(bind_root)]))
    )
    before = requests.get(svc.url("/metrics"), timeout=30).text
    stale: list[str] = []
    prefix = unique("stale")
    for i in range(PAIRS // 2):  # each round: create then get, delete then get
        name = f"{prefix}-{i}"
        body = {"name": name, "labels": {TEST_LABEL: "1", "round": str(i)}}
        assert requests.post(svc.url("/api/v1/volumes"), json=body, headers=WRITER, timeout=30).status_code == 201
        got = requests.get(svc.url(f"/api/v1/volumes/{name}"), headers=READER, timeout=30)
        if got.status_code != 200 or got.json()["labels"].get("round") != str(i):
            stale.append(f"create {name}: {got.status_code}")
        assert requests.delete(svc.url(f"/api/v1/volumes/{name}"), headers=WRITER, timeout=30).status_code == 204
        got = requests.get(svc.url(f"/api/v1/volumes/{name}"), headers=READER, timeout=30)
        if got.status_code != 404:
            stale.append(f"delete {name}: {got.status_code}")
    assert stale == [], stale[:10]
    assert len(access_pids(svc, f"/api/v1/volumes/{prefix}-0")) >= 1
    pids = set().union(*(access_pids(svc, f"/api/v1/volumes/{prefix}-{i}") for i in range(PAIRS // 2)))
    assert len(pids) == 2, f"the reads all went to one worker: {pids}"
    after = requests.get(svc.url("/metrics"), timeout=30).text
    from_view = sample(after, "dockvol_view_reads_total", source="view") - sample(
        before, "dockvol_view_reads_total", source="view"
    )
    from_engine = sample(after, "dockvol_view_reads_total", source="engine") - sample(
        before, "dockvol_view_reads_total", source="engine"
    )
    print(
        f"\n{PAIRS} write-then-read pairs: 0 stale;"
        f" reads from the view {from_view:.0f}, from the engine {from_engine:.0f}"
    )
    assert from_view > 10 * max(from_engine, 1), (from_view, from_engine)


def test_a_start_is_seen_by_the_next_read_and_a_stop_too(service):
    for _ in range(10):
        name = unique("startread")
        body = {
            "name": name,
            "image": IMAGE,
            "command": ["sleep", "3600"],
            "network": "none",
            "start": False,
            "labels": {TEST_LABEL: "1"},
        }
        assert requests.post(service.url("/api/v1/bindings"), json=body, headers=WRITER, timeout=60).status_code == 201
        assert requests.get(service.url(f"/api/v1/bindings/{name}"), headers=READER, timeout=30).json()["state"] == (
            "created"
        )
        assert requests.post(service.url(f"/api/v1/bindings/{name}/start"), headers=WRITER, timeout=60).ok
        assert requests.get(service.url(f"/api/v1/bindings/{name}"), headers=READER, timeout=30).json()["state"] == (
            "running"
        )
        assert requests.post(service.url(f"/api/v1/bindings/{name}/stop"), headers=WRITER, timeout=60).ok
        assert requests.get(service.url(f"/api/v1/bindings/{name}"), headers=READER, timeout=30).json()["state"] == (
            "exited"
        )
        assert requests.delete(service.url(f"/api/v1/bindings/{name}"), headers=WRITER, timeout=60).status_code == 204


def test_a_volume_made_with_the_engine_directly_reaches_reads_within_a_second(service, sdk):
    """No one answered `docker volume create` to a client of ours: reads (on either worker) show
    it once the event stream brings it (milliseconds), and its removal too."""
    waits: list[float] = []

    def within_a_second(what: str, check) -> None:
        started = time.monotonic()
        while not check():
            assert time.monotonic() - started < 1, f"{what}: not read a second after the engine did it"
            time.sleep(0.005)
        waits.append(time.monotonic() - started)

    def got(name: str) -> requests.Response:
        return requests.get(service.url(f"/api/v1/volumes/{name}"), headers=READER, timeout=30)

    def listed(name: str) -> set[str]:
        found = requests.get(service.url(f"/api/v1/volumes?label=direct={name}"), headers=ADMIN, timeout=30)
        return {v["name"] for v in found.json()}

    for _ in range(10):
        name = unique("direct")
        sdk.volumes.create(name, labels={TEST_LABEL: "1", "direct": name})
        within_a_second(f"create {name}", lambda: (r := got(name)).status_code == 200 and r.json()["managed"] is False)
        within_a_second(f"list {name}", lambda: name in listed(name))
        sdk.volumes.get(name).remove()
        within_a_second(f"remove {name}", lambda: got(name).status_code == 404)
        within_a_second(f"list without {name}", lambda: name not in listed(name))
    print(f"\nmade and removed with the engine directly, read through dockvol after at most {max(waits) * 1000:.0f} ms")
