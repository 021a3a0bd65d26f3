"""Where a volume's create and delete spend their time: each engine call they make, timed.

dockvol under gunicorn talks to the engine through a small proxy on a unix socket that notes each
request (method and path, names and ids folded) and the time from its last byte sent to the first
byte of its answer. The script then creates and deletes volumes over HTTP, one at a time, and
prints per step: calls per operation, the median time of one call, and its share of the
operation's median time; what is left is dockvol's own time (HTTP, auth, validation, JSON, the
view) and the proxy's (each worker's view answers the engine's events too: those calls count).
The raw engine's create + delete is timed through the same proxy, and without it. Calls per
operation a little under 1 are answers that came after the timed window closed.

    DOCKVOL_TEST_DOCKER_HOST=unix:///... python tests/benchmarks/bench_steps.py [--repeat 100]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import socket
import tempfile
import threading
import time
import uuid

import docker
import requests
from common import AUTH, Gunicorn, engine_host, median, table, timed

REQUEST = re.compile(rb"^(GET|HEAD|POST|PUT|DELETE) (\S+) HTTP/1\.[01]\r\n")
VERSION = re.compile(r"^/v[0-9.]+")
NAMED = re.compile(r"^/(volumes|containers|networks|configs)/(?!create$|prune$|json$)[^/]+")


def step(path: bytes) -> str:
    text, _, query = VERSION.sub("", path.decode("latin-1")).partition("?")
    keys = sorted({k.split("=")[0] for k in query.split("&") if k})
    return NAMED.sub(r"/\1/{name}", text) + (f"?{'&'.join(keys)}" if keys else "")


class TimingProxy:
    """A unix-socket proxy in front of the engine that times each request it passes on."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("unix://")
        self.path = os.path.join(tempfile.mkdtemp(prefix="dockvol-bench-"), "engine.sock")
        self.calls: list[tuple[str, float]] = []
        self.recording = False
        self._server = socket.socket(socket.AF_UNIX)
        self._server.bind(self.path)
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while True:
            client, _ = self._server.accept()
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(self.upstream)
            pending: collections.deque[tuple[str, float]] = collections.deque()
            threading.Thread(target=self._requests, args=(client, engine, pending), daemon=True).start()
            threading.Thread(target=self._answers, args=(engine, client, pending), daemon=True).start()

    def _requests(self, client: socket.socket, engine: socket.socket, pending) -> None:
        try:
            while chunk := client.recv(65536):
                engine.sendall(chunk)
                found = REQUEST.match(chunk)
                if found:
                    pending.append((f"{found[1].decode()} {step(found[2])}", time.perf_counter()))
                elif pending:  # its body: the clock starts at its last byte
                    pending[-1] = (pending[-1][0], time.perf_counter())
        except OSError:
            pass
        finally:
            engine.close()

    def _answers(self, engine: socket.socket, client: socket.socket, pending) -> None:
        try:
            while chunk := engine.recv(65536):
                if chunk.startswith(b"HTTP/1.") and pending:
                    name, sent = pending.popleft()
                    if self.recording:
                        self.calls.append((name, time.perf_counter() - sent))
                client.sendall(chunk)
        except OSError:
            pass
        finally:
            client.close()


def breakdown(title: str, proxy: TimingProxy, operation, repeat: int) -> None:
    proxy.calls.clear()
    proxy.recording = True
    totals = []
    for _ in range(repeat):
        started = time.perf_counter()
        operation()
        totals.append(time.perf_counter() - started)
    time.sleep(0.5)  # answers still on their way back
    proxy.recording = False
    by_step: dict[str, list[float]] = collections.defaultdict(list)
    for name, seconds in proxy.calls:
        by_step[name].append(seconds)
    whole = median(totals)
    rows = [["step (engine call)", "calls per op", "median ms", "ms per op", "share"]]
    engine_ms = 0.0
    for name, times in sorted(by_step.items(), key=lambda kv: -median(kv[1]) * len(kv[1])):
        per_op = median(times) * len(times) / repeat
        engine_ms += per_op
        rows.append([name, f"{len(times) / repeat:.2f}", f"{median(times) * 1e3:.1f}", f"{per_op * 1e3:.1f}", ""])
        rows[-1][4] = f"{per_op / whole:.0%}"
    rows.append(["the rest (not an engine call)", "", "", f"{(whole - engine_ms) * 1e3:.1f}", ""])
    rows[-1][4] = f"{max(whole - engine_ms, 0) / whole:.0%}"
    print(f"\n{title}: median {whole * 1e3:.1f} ms over {repeat}")
    print(table(rows))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()
    proxy = TimingProxy(engine_host())
    run = uuid.uuid4().hex[:8]
    service = Gunicorn(DOCKER_HOST=proxy.host)
    http = requests.Session()
    http.headers.update(AUTH)
    api = docker.APIClient(base_url=proxy.host, version="auto")
    try:

        def ours() -> None:
            name = f"bench-{run}-st-{uuid.uuid4().hex[:8]}"
            http.post(service.url("/api/v1/volumes"), json={"name": name}, timeout=60).raise_for_status()
            http.delete(service.url(f"/api/v1/volumes/{name}"), timeout=60).raise_for_status()

        def raw(client: docker.APIClient = api) -> None:
            name = f"bench-{run}-st-{uuid.uuid4().hex[:8]}"
            client.create_volume(name, labels={"dockvol.managed": "true"})
            client.inspect_volume(name)
            client.containers(all=True, filters={"volume": name})
            client.remove_volume(name)

        for _ in range(5):  # warm: connections, the view's first listing
            ours()
        breakdown("dockvol: POST then DELETE /volumes, each engine call", proxy, ours, args.repeat)
        service.stop()  # its views would answer the raw calls' events through the proxy too
        breakdown("raw engine (docker SDK): the same create and delete", proxy, raw, args.repeat)
        direct = docker.APIClient(base_url=engine_host(), version="auto")
        alone = median(timed(lambda: raw(direct), args.repeat))
        print(f"\nraw engine without the proxy: median {alone * 1e3:.1f} ms (the proxy's own cost is the difference)")
    finally:
        if service.proc.poll() is None:
            service.stop()


if __name__ == "__main__":
    main()
