"""Hostile HTTP input costs nothing, under gunicorn with its default workers (loopback only).

- Slow clients: 256 connections trickling their headers and 64 trickling their bodies do not slow
  the others; headers must arrive within keepalive (5 s), bodies at BODY_MIN_RATE after
  BODY_GRACE, or the connection is cut (408). A body at a modest honest rate is not cut.
- Deep or odd JSON: past the parser's limits, or deeper than MAX_JSON_DEPTH, is a 400 problem.
- Chunked bodies over a cap are 413, as with a Content-Length (JSON and archive imports).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import threading
import time

import pytest
import requests

from service.http.limits import BODY_GRACE, BODY_MIN_RATE, MAX_JSON_DEPTH
from tests.support import TEST_LABEL, engine_host, tar_of, unique

from .conftest import ADMIN, READER, WRITER

PROBLEM = "application/problem+json"
JSON = {**WRITER, "Content-Type": "application/json"}
KEEPALIVE = 5  # deploy/gunicorn.conf.py
TRICKLERS = 256
SLOW_BODIES = 64
ATTACK_SECONDS = BODY_GRACE + 6
NORMAL_BUDGET = 30  # seconds the normal requests may take in all, so a starved server fails fast


# --- slow clients ---------------------------------------------------------------------------


class Trickle:
    """Connections that send a request one byte at a time, every `every` seconds each; one the
    server closes is opened again, so the pressure stays on."""

    def __init__(self, port: int, head: bytes, count: int, every: float = 2.0) -> None:
        self.port, self.head, self.count, self.every = port, head, count, every
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
                try:
                    s.send(self.head[sent % len(self.head) : sent % len(self.head) + 1] or b"a")
                    try:
                        data = s.recv(4096)
                    except BlockingIOError:
                        continue
                    if data:
                        self.answers.append(data)
                    raise ConnectionError
                except OSError:  # the server closed it
                    s.close()
                    self.socks[i] = self._open()
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
            s.close()


def p(values: list[float], q: int) -> float:
    """The q-th percentile (nearest rank); a request that failed counts as infinitely slow."""
    ordered = sorted(values) or [float("inf")]
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def test_trickling_headers_and_bodies_do_not_starve_normal_requests(service):
    port = service.port
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
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
    health: list[float] = []
    volumes: list[float] = []
    failed: list[str] = []

    def timed(into: list[float], url: str, headers: dict[str, str]) -> None:
        t = time.perf_counter()
        try:
            r = requests.get(url, headers=headers, timeout=5)
        except requests.RequestException as exc:
            failed.append(type(exc).__name__)
            into.append(float("inf"))
            return
        into.append(time.perf_counter() - t)
        if r.status_code != 200:
            failed.append(str(r.status_code))

    with Trickle(port, head, TRICKLERS) as trickle:
        time.sleep(2)  # every trickler has its connection open and part of its headers sent
        while len(health) < 100 and time.monotonic() - started < NORMAL_BUDGET:
            timed(health, service.url("/healthz"), {})
            timed(volumes, service.url("/api/v1/volumes?page_size=5"), READER)
        # Keep the slow bodies going past the grace period: a byte every 2 s is far below the rate.
        cut: dict[int, tuple[bytes, float]] = {}
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
        closed = trickle.reopened
    for s in slow_bodies:
        s.close()
    figures = (
        f"with {TRICKLERS} trickling header connections and {SLOW_BODIES} slow bodies: "
        f"{len(health)} GET /healthz p50 {p(health, 50) * 1000:.0f} ms p99 {p(health, 99) * 1000:.0f} ms; "
        f"{len(volumes)} GET /api/v1/volumes p50 {p(volumes, 50) * 1000:.0f} ms "
        f"p99 {p(volumes, 99) * 1000:.0f} ms; failed {len(failed)} {sorted(set(failed))}; "
        f"header connections closed by the server {closed}; slow bodies cut {len(cut)}"
    )
    print("\n" + figures)
    assert not failed and len(health) == 100, figures
    assert p(health, 99) < 1.0 and p(volumes, 99) < 1.0, figures
    assert len(cut) == SLOW_BODIES, figures
    statuses = {line.upper() for line, _ in cut.values()}
    assert statuses == {b"HTTP/1.1 408 REQUEST TIMEOUT"}, statuses
    assert max(at for _, at in cut.values()) < ATTACK_SECONDS + 8, figures
    assert closed >= TRICKLERS, "trickled headers are cut (they must arrive within keepalive)"


def closed_after(s: socket.socket, limit: float, trickle: bytes = b"") -> float:
    """Seconds until the server closes `s` (inf past `limit`), sending a byte of `trickle` every 0.5 s."""
    started = time.monotonic()
    s.settimeout(0.5)
    sent = 0
    while time.monotonic() - started < limit:
        try:
            if s.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        except OSError:
            return time.monotonic() - started
        if trickle:
            try:
                s.send(trickle[sent : sent + 1] or b"a")
            except OSError:
                return time.monotonic() - started
            sent += 1
    return float("inf")


def test_headers_must_arrive_within_keepalive(service):
    connections = [socket.create_connection(("127.0.0.1", service.port), timeout=5) for _ in range(2)]
    idle, trickling = connections
    results: dict[str, float] = {}
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
    threads = [
        threading.Thread(target=lambda: results.__setitem__("idle", closed_after(idle, KEEPALIVE + 5))),
        threading.Thread(target=lambda: results.__setitem__("trickling", closed_after(trickling, KEEPALIVE + 5, head))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in connections:
        s.close()
    print(f"\nclosed by the server after: idle {results['idle']:.1f} s, trickling headers {results['trickling']:.1f} s")
    assert all(KEEPALIVE - 1 < at < KEEPALIVE + 2 for at in results.values()), results


def test_a_slow_body_cut_while_still_sending_reads_its_408(service):
    """The client keeps sending after the server gave up on its body (as curl does while it uploads):
    the server half-closes and reads what still comes for a while (the lingering close), so the
    client reads its 408 and then an orderly end, never a reset that can destroy the answer."""
    head = (
        f"POST /api/v1/volumes HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {WRITER['Authorization']}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"
    ).encode()
    seen: list[tuple[bytes, str]] = []

    def client() -> None:
        with socket.create_connection(("127.0.0.1", service.port), timeout=5) as s:
            s.sendall(head)
            s.settimeout(0.25)
            answer, ending = b"", "no answer"
            started = time.monotonic()
            try:
                while b"\r\n" not in answer and time.monotonic() - started < BODY_GRACE + 10:
                    s.sendall(b" " * 128)  # about 500 bytes a second: far below the minimum rate
                    try:
                        answer += s.recv(4096)
                    except TimeoutError:
                        pass
                for _ in range(4):  # still sending, a second after the answer
                    s.sendall(b" " * 128)
                    time.sleep(0.25)
                s.settimeout(10)
                while data := s.recv(4096):
                    answer += data
                ending = "closed"
            except OSError as exc:
                ending = type(exc).__name__
            seen.append((answer.split(b"\r\n", 1)[0], ending))

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [(b"HTTP/1.1 408 REQUEST TIMEOUT", "closed")] * 16, sorted(set(seen))


def paced_request(port: int, head: bytes, body: bytes, rate: float, piece: int = 4096) -> tuple[int, float]:
    """Send `head`, then `body` at about `rate` bytes a second; the status and the seconds it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(head)
        try:
            for i in range(0, len(body), piece):
                s.sendall(body[i : i + piece])
                time.sleep(max(0.0, started + (i + piece) / rate - time.monotonic()))
        except OSError:  # the server stopped reading: its answer may be there
            pass
        answer = b""
        while b"\r\n" not in answer:
            try:
                data = s.recv(4096)
            except OSError:
                break
            if not data:
                break
            answer += data
    status = re.match(rb"HTTP/1\.1 (\d{3})", answer)
    return (int(status.group(1)) if status else 0), time.monotonic() - started


def chunked(body: bytes, size: int = 8192) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size))
    return out + b"0\r\n\r\n"


def test_bodies_at_a_modest_rate_are_read_whole(service, sdk):
    """Ten times the minimum rate, for longer than the grace: an archive import (Content-Length)
    and a chunked JSON body both arrive whole."""
    volume, created = unique("paced"), unique("paced")
    r = requests.post(
        service.url("/api/v1/volumes"), json={"name": volume, "labels": {TEST_LABEL: "sec"}}, headers=JSON
    )
    assert r.status_code == 201, r.text
    rate = BODY_MIN_RATE * 10
    size = int(rate * (BODY_GRACE + 4))
    content = b"x" * (size - 3 * 512)
    archive = tar_of({"big": content})
    import_head = (
        f"PUT /api/v1/volumes/{volume}/archive HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {ADMIN['Authorization']}\r\nContent-Type: application/x-tar\r\n"
        f"Content-Length: {len(archive)}\r\nConnection: close\r\n\r\n"
    ).encode()
    document = json.dumps({"name": created, "labels": {TEST_LABEL: "sec"}}).encode()
    document += b" " * (size - len(document))  # whitespace after the document is JSON too
    json_head = (
        f"POST /api/v1/volumes HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {WRITER['Authorization']}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    results: dict[str, tuple[int, float]] = {}
    sends = {"import": (import_head, archive), "chunked json": (json_head, chunked(document))}
    threads = [
        threading.Thread(target=lambda k=k, h=h, b=b: results.__setitem__(k, paced_request(service.port, h, b, rate)))
        for k, (h, b) in sends.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    figures = f"bodies of about {size} bytes at {rate} bytes/s: " + ", ".join(
        f"{k} -> {status} after {seconds:.1f} s" for k, (status, seconds) in results.items()
    )
    print("\n" + figures)
    assert (results["import"][0], results["chunked json"][0]) == (200, 201), figures
    usage = requests.get(service.url(f"/api/v1/volumes/{volume}/usage"), headers=READER, timeout=30).json()
    assert (usage["files"], usage["bytes"]) == (1, len(content)), usage
    for name in (volume, created):
        requests.delete(service.url(f"/api/v1/volumes/{name}"), headers=WRITER, timeout=30)


def test_a_replacement_worker_is_patched_before_ssl_loads(start_service, bind_root):
    """gevent must patch ssl before anything imports it: hooks that run in the master (child_exit
    sweeps a dead worker's helpers) must not load the app, or every worker forked after the
    first death keeps unpatched, blocking TLS in urllib3."""
    from tests.e2e.conftest import service_env

    svc = start_service(service_env(engine_host(), DOCKVOL_WORKERS="1"))
    for _ in range(2):
        with open(f"/proc/{svc.proc.pid}/task/{svc.proc.pid}/children") as f:
            (worker,) = [int(p) for p in f.read().split()]
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(f"/proc/{svc.proc.pid}/task/{svc.proc.pid}/children") as f:
                now = [int(p) for p in f.read().split()]
            if now and now != [worker]:
                break
            time.sleep(0.2)
        assert requests.get(svc.url("/api/v1/volumes?page_size=1"), headers=READER, timeout=10).status_code == 200
    log = svc.log_path.read_text()
    assert "MonkeyPatchWarning" not in log, log[log.find("MonkeyPatchWarning") - 200 :][:1500]


# --- hostile JSON ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"labels": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        b"[" * 200_000,
        b'{"labels": ' + b'{"a":' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1) + b"}",
        b'{"name": ' + b"9" * 5000 + b"}",
        b'{"name": "\xff\xfe"}',
        b'{"name": "surrogate", "labels": {"k": "\\ud800"}}',
    ],
    ids=["1000-deep", "200000-deep", "past-the-depth-limit", "5000-digits", "invalid-utf8", "lone-surrogate"],
)
def test_json_past_the_parsers_limits_is_400(service, body):
    r = requests.post(service.url("/api/v1/volumes"), data=body, headers=JSON, timeout=30)
    assert r.status_code == 400 and r.headers["Content-Type"] == PROBLEM, r.text[:300]
    assert requests.get(service.url("/healthz"), timeout=10).status_code == 200


# --- chunked bodies over a cap --------------------------------------------------------------


def test_a_chunked_json_body_over_the_cap_is_413_like_one_with_a_length(service):
    big = b'{"name": "' + b"a" * (50 * 1024 * 1024) + b'"}'

    def chunks():
        for i in range(0, len(big), 1 << 20):
            yield big[i : i + (1 << 20)]

    with_length = requests.post(service.url("/api/v1/volumes"), data=big, headers=JSON, timeout=60)
    in_chunks = requests.post(service.url("/api/v1/volumes"), data=chunks(), headers=JSON, timeout=60)
    print(f"\n50 MB JSON body: with Content-Length {with_length.status_code}, chunked {in_chunks.status_code}")
    assert (with_length.status_code, in_chunks.status_code) == (413, 413), in_chunks.text[:300]
    assert in_chunks.headers["Content-Type"] == PROBLEM
    assert requests.get(service.url("/api/v1/volumes?page_size=1"), headers=READER, timeout=10).status_code == 200


def test_a_chunked_archive_over_the_import_cap_is_413(start_service, sdk):
    from tests.e2e.conftest import service_env

    cap = 1_000_000
    svc = start_service(service_env(engine_host(), DOCKVOL_MAX_IMPORT_BYTES=str(cap)))
    name = unique("capped")
    r = requests.post(svc.url("/api/v1/volumes"), json={"name": name, "labels": {TEST_LABEL: "sec"}}, headers=JSON)
    assert r.status_code == 201, r.text
    archive = tar_of({"big": b"x" * (3 * cap)})
    headers = {**ADMIN, "Content-Type": "application/x-tar"}
    url = svc.url(f"/api/v1/volumes/{name}/archive")
    with_length = requests.put(url, data=archive, headers=headers, timeout=60)
    pieces = [archive[i : i + 65536] for i in range(0, len(archive), 65536)]
    in_chunks = requests.put(url, data=iter(pieces), headers=headers, timeout=60)
    statuses = (with_length.status_code, in_chunks.status_code)
    print(f"\n3 MB archive over a 1 MB cap: with Content-Length {statuses[0]}, chunked {statuses[1]}")
    assert statuses == (413, 413), in_chunks.text[:300]
    assert in_chunks.headers["Content-Type"] == PROBLEM
    usage = requests.get(svc.url(f"/api/v1/volumes/{name}/usage"), headers=READER, timeout=30).json()
    assert usage["files"] == 0, usage  # nothing of it reached the volume
    requests.delete(svc.url(f"/api/v1/volumes/{name}"), headers=WRITER, timeout=30)
