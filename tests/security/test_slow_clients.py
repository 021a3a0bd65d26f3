"""Clients that trickle cannot starve the others: 256 connections sending their headers a byte
every 2 s and 64 sending their bodies as slowly, while normal requests keep their latency; the
slow bodies are cut with 408 once they fall below the minimum rate. Loopback only."""

from __future__ import annotations

import socket
import statistics
import threading
import time

import requests

from service.http.limits import BODY_GRACE

from .conftest import READER, WRITER

TRICKLERS = 256
SLOW_BODIES = 64
ATTACK_SECONDS = BODY_GRACE + 6


class Trickle:
    """Connections that send a request one byte at a time, every `every` seconds each."""

    def __init__(self, port: int, head: bytes, count: int, every: float = 2.0, reopen: bool = True) -> None:
        self.port, self.head, self.count, self.every, self.reopen = port, head, count, every, reopen
        self.stop = threading.Event()
        self.answers: list[bytes] = []
        self.reopened = 0
        self.socks = [self._open() for _ in range(count)]
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.setblocking(False)
        return s

    def _run(self) -> None:
        sent = 0
        while not self.stop.is_set():
            for i, s in enumerate(self.socks):
                if s is None:
                    continue
                try:
                    s.send(self.head[sent % len(self.head) : sent % len(self.head) + 1] or b"a")
                    try:
                        data = s.recv(4096)
                    except BlockingIOError:
                        continue
                    if data:
                        self.answers.append(data)
                    raise ConnectionError
                except OSError:  # the server closed it: keep the pressure on with a new one
                    s.close()
                    self.socks[i] = self._open() if self.reopen else None
                    self.reopened += 1
            sent += 1
            self.stop.wait(self.every)

    def __enter__(self) -> Trickle:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        for s in self.socks:
            if s is not None:
                s.close()


def timed(call) -> float:
    started = time.perf_counter()
    r = call()
    assert r.status_code == 200, r.status_code
    return time.perf_counter() - started


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def test_trickling_headers_and_bodies_do_not_starve_normal_requests(service):
    port = service.port
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    token = READER["Authorization"]
    body_head = (
        f"POST /api/v1/volumes HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {WRITER['Authorization']}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    slow_bodies = []
    for _ in range(SLOW_BODIES):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(body_head + b"{")
        slow_bodies.append(s)
    started = time.monotonic()
    health, volumes = [], []
    with Trickle(port, head, TRICKLERS) as trickle:
        time.sleep(2)  # every trickler has its connection open and part of its headers sent
        while len(health) < 100:
            health.append(timed(lambda: requests.get(service.url("/healthz"), timeout=10)))
            volumes.append(
                timed(
                    lambda: requests.get(
                        service.url("/api/v1/volumes?page_size=5"), headers={"Authorization": token}, timeout=10
                    )
                )
            )
        # Keep the slow bodies going past the grace period: a byte every 2 s is far below the rate.
        cut = {}
        while time.monotonic() - started < ATTACK_SECONDS + 10 and len(cut) < SLOW_BODIES:
            for i, s in enumerate(slow_bodies):
                if i in cut:
                    continue
                try:
                    s.sendall(b" ")
                    s.settimeout(0.01)
                    data = s.recv(4096)
                    cut[i] = (data.split(b"\r\n", 1)[0], time.monotonic() - started)
                except TimeoutError:
                    pass
                except OSError as exc:
                    cut[i] = (repr(exc).encode(), time.monotonic() - started)
            time.sleep(2)
        trickled = trickle.reopened
    for s in slow_bodies:
        s.close()
    figures = (
        f"with {TRICKLERS} trickling header connections and {SLOW_BODIES} slow bodies: "
        f"GET /healthz p50 {p(health, 50) * 1000:.0f} ms p99 {p(health, 99) * 1000:.0f} ms; "
        f"GET /api/v1/volumes p50 {p(volumes, 50) * 1000:.0f} ms p99 {p(volumes, 99) * 1000:.0f} ms; "
        f"header connections closed by the server {trickled}; slow bodies cut {len(cut)}"
    )
    print("\n" + figures)
    assert p(health, 99) < 1.0 and p(volumes, 99) < 1.0, figures
    assert len(cut) == SLOW_BODIES, figures
    statuses = {line.upper() for line, _ in cut.values()}
    assert statuses == {b"HTTP/1.1 408 REQUEST TIMEOUT"}, statuses
    assert max(at for _, at in cut.values()) < ATTACK_SECONDS + 8, figures
    assert trickled >= TRICKLERS, "idle header connections are closed (headers must arrive in time)"
