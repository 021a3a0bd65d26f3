"""End-to-end tier: dockvol under gunicorn, driven over HTTP on loopback, against the private engine."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import docker
import pytest
import requests

from tests.support import TEST_LABEL, cmdline, engine_host

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The operator's tokens (project `*`); tests of projects (test_projects.py) add their own.
TOKENS = {
    "e2e-reader": {"scopes": ["read"], "project": "*"},
    "e2e-writer": {"scopes": ["write"], "project": "*"},
    "e2e-admin": {"scopes": ["admin"], "project": "*"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


APP = "service.app:create_app()"


class Service:
    """One gunicorn running the app (`app`: gunicorn's name for it); `stop()` ends it."""

    def __init__(self, env: dict[str, str], log_path: pathlib.Path, port: int | None = None, app: str = APP) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        gunicorn = pathlib.Path(sys.executable).parent / "gunicorn"
        self.log = log_path.open("wb")
        # Its metrics, the ring of answered writes and its state dir live beside its log, in
        # pytest's temporary directory, so a killed service leaves nothing behind on the machine.
        metrics = log_path.parent / "metrics"
        metrics.mkdir()
        self.proc = subprocess.Popen(
            [
                str(gunicorn),
                "-c",
                "deploy/gunicorn.conf.py",
                "-b",
                f"127.0.0.1:{self.port}",
                app,
            ],
            cwd=ROOT,
            # Its state dir too, unless the test shares one: never the host's default.
            env={
                **os.environ,
                "PROMETHEUS_MULTIPROC_DIR": str(metrics),
                "DOCKVOL_STATE_DIR": str(log_path.parent / "state"),
                **env,
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a test can kill master and workers at once
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/healthz", timeout=5).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or too busy to answer
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not start:\n{log_path.read_text()[-3000:]}")

    def url(self, path: str) -> str:
        return self.base + path

    def kill(self) -> None:
        """SIGKILL the whole process group, as an OOM kill or a power cut would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def kill_workers(self) -> None:
        """SIGKILL gunicorn's workers alone, as an OOM kill of one process would: the master lives
        on and starts new ones. Returns once the killed ones are gone."""
        master = self.proc.pid
        with open(f"/proc/{master}/task/{master}/children") as f:
            children = [int(pid) for pid in f.read().split()]
        workers = [pid for pid in children if b"gunicorn" in cmdline(pid)]  # not a child_exit hook's process
        assert workers, f"gunicorn {master} has no workers"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(cmdline(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def service_env(docker_host: str, **extra: str) -> dict[str, str]:
    return {
        "DOCKER_HOST": docker_host,
        "DOCKVOL_TOKENS": json.dumps(TOKENS),
        "DOCKVOL_WORKERS": "2",
        "DOCKVOL_DEFAULT_NETWORK": "none",
        "DOCKVOL_ALLOWED_NETWORKS": '["none"]',
        "DOCKVOL_PULL": "never",
        **extra,
    }


@pytest.fixture(scope="session")
def bind_root(tmp_path_factory):
    """The one directory under which this session's service admits bind sources."""
    return tmp_path_factory.mktemp("bindroot").resolve()


@pytest.fixture(scope="session")
def backup_root(tmp_path_factory):
    """The one directory under which this session's services admit backup repositories."""
    return tmp_path_factory.mktemp("backuproot").resolve()


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory):
    """The session service's state dir (repositories, backup runs, restores)."""
    return tmp_path_factory.mktemp("state").resolve()


def backup_env(backup_root, state_dir) -> dict[str, str]:
    return {"DOCKVOL_BACKUP_ROOTS": json.dumps([str(backup_root)]), "DOCKVOL_STATE_DIR": str(state_dir)}


def _stop_all(services: list[Service]) -> None:
    for svc in services:  # all at once: each waits for its requests and workers to end
        svc.proc.terminate()
    for svc in services:
        svc.stop()


def _starter(tmp_path_factory, started: list[Service]):
    def start(env: dict[str, str], port: int | None = None, app: str = APP) -> Service:
        svc = Service(env, tmp_path_factory.mktemp("gunicorn") / "log", port, app)
        started.append(svc)
        return svc

    return start


@pytest.fixture(scope="session")
def start_session_service(tmp_path_factory):
    """Start services that module- and session-wide fixtures share; all stop at the session's end."""
    started: list[Service] = []
    yield _starter(tmp_path_factory, started)
    _stop_all(started)


@pytest.fixture
def start_service(tmp_path_factory):
    """Start extra services with their own environment; they stop when the test ends. Each worker
    of a running service follows every engine event, so services left running until the session's
    end made every later test's events cost more CPU the longer the session ran."""
    started: list[Service] = []
    yield _starter(tmp_path_factory, started)
    _stop_all(started)


@pytest.fixture(scope="session")
def service(start_session_service, bind_root, backup_root, state_dir):
    return start_session_service(
        service_env(
            engine_host(), DOCKVOL_BIND_ROOTS=json.dumps([str(bind_root)]), **backup_env(backup_root, state_dir)
        )
    )


@pytest.fixture(scope="session")
def sdk():
    client = docker.DockerClient(base_url=engine_host(), version="auto", timeout=30)
    yield client
    # One listing, no inspect per container: one removed meanwhile (by a service still finishing)
    # would fail the inspect.
    for c in client.api.containers(all=True):
        # The tests' containers, and dockvol's own helpers, locks and stood-aside containers that a
        # service stopped (or killed) at the session's end had no time to finish with.
        name, labels = c["Names"][0].lstrip("/"), c.get("Labels") or {}
        own = labels.get("dockvol.role") in ("helper", "lock") or name.startswith("dockvol-aside-")
        if name.startswith("dvtest-") or TEST_LABEL in labels or own:
            try:
                client.api.remove_container(c["Id"], force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:  # 409: a stopping service is removing it too
                if exc.status_code != 409:
                    raise
    for v in client.volumes.list():
        labels = v.attrs.get("Labels") or {}
        owner = labels.get("dockvol.binding", "") + labels.get("dockvol.group", "")
        if TEST_LABEL in labels or owner.startswith("dvtest-") or "dockvol.filling" in labels:
            try:
                v.remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:  # in use by a container of another test session
                if exc.status_code != 409:
                    raise
    client.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


READER, WRITER, ADMIN = auth("e2e-reader"), auth("e2e-writer"), auth("e2e-admin")
