"""The service starts while the engine is down, answers 503 in time, and recovers by itself."""

from __future__ import annotations

import os
import socket
import threading
import time

import requests

from tests.support import engine_host

from .conftest import READER, service_env


def test_503_while_the_engine_is_away_then_recovery_without_restart(start_service, tmp_path):
    link = tmp_path / "engine.sock"  # absent for now: nothing listens there
    svc = start_service(service_env(f"unix://{link}", DOCKVOL_ENGINE_TIMEOUT="3"))
    for path in ("/readyz", "/api/v1/volumes"):
        started = time.monotonic()
        r = requests.get(svc.url(path), headers=READER, timeout=30)
        assert r.status_code == 503, r.text
        assert int(r.headers["Retry-After"]) > 0
        assert r.headers["Content-Type"] == "application/problem+json"
        assert time.monotonic() - started < 3
    assert requests.get(svc.url("/healthz"), timeout=10).status_code == 200

    os.symlink(engine_host().removeprefix("unix://"), link)  # the engine "comes back"
    for _ in range(2):  # both workers recover
        assert requests.get(svc.url("/readyz"), timeout=30).status_code == 200
        assert requests.get(svc.url("/api/v1/volumes?page_size=1"), headers=READER, timeout=30).status_code == 200


def test_an_engine_that_does_not_answer_is_503_within_the_timeout(start_service, tmp_path):
    path = tmp_path / "silent.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_hold():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept_and_hold, daemon=True).start()
    try:
        svc = start_service(service_env(f"unix://{path}", DOCKVOL_ENGINE_TIMEOUT="2"))
        started = time.monotonic()
        r = requests.get(svc.url("/api/v1/volumes"), headers=READER, timeout=30)
        elapsed = time.monotonic() - started
        assert r.status_code == 503
        assert "Retry-After" in r.headers
        assert elapsed < 2 + 1.5, elapsed
    finally:
        stop.set()
        for s in held:
            s.close()
        server.close()
