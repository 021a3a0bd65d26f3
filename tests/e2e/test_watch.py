"""GET /api/v1/events under gunicorn: curl -N consumes it, and a change reaches 50 watchers in
well under a second while a client that never reads is connected too."""

from __future__ import annotations

import socket
import statistics
import subprocess
import threading
import time

import requests

from tests.support import TEST_LABEL, unique

from .conftest import ADMIN, READER

WATCHERS = 50
CHANGES = 20


def test_curl_follows_the_stream(service):
    name = unique("curl")
    curl = subprocess.Popen(
        [
            "curl",
            "-sN",
            "--max-time",
            "30",
            "-H",
            f"Authorization: {READER['Authorization']}",
            service.url("/api/v1/events?resource=volume"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)  # connected
        body = {"name": name, "labels": {TEST_LABEL: "1"}}
        assert requests.post(service.url("/api/v1/volumes"), json=body, headers=ADMIN, timeout=30).status_code == 201
        event = None
        for line in curl.stdout:
            if line.startswith("event: "):
                event = line.split(": ", 1)[1].strip()
            if line.startswith("data: ") and f'"name": "{name}"' in line:
                break
        assert event == "created"
    finally:
        curl.kill()
        curl.wait()
        curl.stdout.close()
    requests.delete(service.url(f"/api/v1/volumes/{name}"), headers=ADMIN, timeout=30)


def test_changes_reach_50_watchers_within_a_second_beside_one_that_never_reads(service):
    prefix = unique("fan")
    stuck = socket.create_connection(("127.0.0.1", service.port))
    stuck.sendall(
        f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: {READER['Authorization']}\r\n\r\n".encode()
    )  # and never reads
    arrived: dict[int, dict[str, float]] = {i: {} for i in range(WATCHERS)}
    ready = threading.Barrier(WATCHERS + 1)

    def watch(i: int) -> None:
        with requests.get(
            service.url(f"/api/v1/events?resource=volume&label={TEST_LABEL}"), headers=READER, stream=True, timeout=60
        ) as r:
            ready.wait()
            for line in r.iter_lines(decode_unicode=True):
                if line.startswith("data: ") and f'"{prefix}-' in line:
                    name = line.split('"name": "', 1)[1].split('"', 1)[0]
                    arrived[i][name] = time.monotonic()
                    if len(arrived[i]) == CHANGES:
                        return

    threads = [threading.Thread(target=watch, args=(i,), daemon=True) for i in range(WATCHERS)]
    for t in threads:
        t.start()
    ready.wait(timeout=60)
    answered = {}
    for k in range(CHANGES):
        name = f"{prefix}-{k}"
        body = {"name": name, "labels": {TEST_LABEL: "1"}}
        assert requests.post(service.url("/api/v1/volumes"), json=body, headers=ADMIN, timeout=30).status_code == 201
        answered[name] = time.monotonic()
        time.sleep(0.05)
    for t in threads:
        t.join(30)
    stuck.close()
    delays = sorted(at - answered[name] for got in arrived.values() for name, at in got.items())
    assert len(delays) == WATCHERS * CHANGES, f"{len(delays)} of {WATCHERS * CHANGES} arrived"
    p99 = delays[int(len(delays) * 0.99) - 1]
    print(
        f"\n{CHANGES} changes to {WATCHERS} watchers (and one that never reads): after the 201, "
        f"median {statistics.median(delays) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
    )
    assert p99 < 1.0
    for k in range(CHANGES):
        requests.delete(service.url(f"/api/v1/volumes/{prefix}-{k}"), headers=ADMIN, timeout=30)
