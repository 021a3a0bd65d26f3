"""Ctrl-C under `make run`: gunicorn with deploy/gunicorn.conf.py, on the in-memory engine, stops
quietly when its whole process group gets SIGINT, as a terminal sends it (the master and every
worker at once). Before, a gevent worker quit twice (its own SIGINT, then the master's SIGQUIT)
and printed the second quit's SystemExit as a traceback, which read like a crash."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
from flask import Flask

from service.app import create_app
from tests.fakes.memory import InMemoryEngine

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKERS = 3  # each worker raced its two quits: more workers, more chances to show it


def app_on_memory_engine() -> Flask:
    """What gunicorn runs here: dockvol's app on the in-memory engine."""
    return create_app(engine=InMemoryEngine())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def started(pid: int) -> bool:
    """The worker ran post_worker_init, whose first step sets SIGINT aside (Linux's SigIgn mask).
    Waited for at most a few seconds: past that the test goes on, and checks the outcome only."""
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    ignored = int(re.search(r"^SigIgn:\s*([0-9a-f]+)$", status, re.M).group(1), 16)
    return bool(ignored & (1 << (signal.SIGINT - 1)))


@pytest.mark.slow
def test_ctrl_c_stops_gunicorn_with_no_traceback(tmp_path):
    port = free_port()
    log = tmp_path / "gunicorn.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKVOL_", "DOCKER_"))}
    env |= {
        "DOCKVOL_AUTH_DISABLED": "true",  # logged once by each worker's app: how the test sees them up
        "DOCKVOL_LISTEN": f"127.0.0.1:{port}",
        "DOCKVOL_WORKERS": str(WORKERS),
        "DOCKER_HOST": f"unix://{tmp_path / 'no-engine.sock'}",  # only the cleanup after a worker asks
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    gunicorn = pathlib.Path(sys.executable).parent / "gunicorn"
    app = f"{__name__}:app_on_memory_engine()"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(gunicorn), "-c", "deploy/gunicorn.conf.py", app],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, as a terminal's foreground job
        )
    try:
        deadline = time.monotonic() + 60
        while len(set(re.findall(r'"AUTHENTICATION IS DISABLED.*?"pid": (\d+)', log.read_text()))) < WORKERS:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        workers = [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", log.read_text())]
        deadline = time.monotonic() + 5  # each worker's post_worker_init, which follows its app's loading
        while not all(map(started, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    said = log.read_text()
    assert said.count("Worker exiting") == WORKERS, said[-3000:]
    assert "Traceback" not in said and "SystemExit" not in said, said
