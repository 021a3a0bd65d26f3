"""Shared pieces of the benchmark scripts: a gunicorn to measure, timing, and a memory sampler.

Benchmarks print numbers; they assert nothing about speed (machines here are shared and noisy:
read medians and ratios, and compare with the raw engine measured in the same run).
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import threading
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOKEN = "bench-admin"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
IMAGE = os.environ.get("DOCKVOL_TEST_IMAGE", "busybox:stable")
LABEL = "dockvol-bench"


def engine_host() -> str:
    host = os.environ.get("DOCKVOL_TEST_DOCKER_HOST")
    if not host:
        sys.exit("DOCKVOL_TEST_DOCKER_HOST is not set: run benchmarks through `make bench`")
    return host


class Gunicorn:
    def __init__(self, workers: int = 2, threads: int = 8, **env: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        environment = {
            **os.environ,
            "DOCKER_HOST": engine_host(),
            "DOCKVOL_TOKENS": json.dumps({TOKEN: ["admin"]}),
            "DOCKVOL_WORKERS": str(workers),
            "DOCKVOL_THREADS": str(threads),
            "DOCKVOL_DEFAULT_NETWORK": "none",
            "DOCKVOL_ALLOWED_NETWORKS": '["none"]',
            "DOCKVOL_PULL": "never",
            **env,
        }
        gunicorn = pathlib.Path(sys.executable).parent / "gunicorn"
        self.proc = subprocess.Popen(
            [
                str(gunicorn),
                "-c",
                "deploy/gunicorn.conf.py",
                "-b",
                f"127.0.0.1:{self.port}",
                "--access-logfile",
                "/dev/null",
                "service.app:create_app()",
            ],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(300):
            try:
                if requests.get(self.base + "/readyz", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not become ready")

    def url(self, path: str) -> str:
        return self.base + path

    def workers(self) -> list[int]:
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return [int(p) for p in f.read().split()]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRss:
    """Samples a process's resident memory every 10 ms while in use; `.growth` is peak - start."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = rss_bytes(pid)
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.start


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def median(values) -> float:
    return statistics.median(values)


def p99(values) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-|-".join("-" * w for w in widths))
    return "\n".join(lines)
