"""Unit tier: the app and the use cases against the in-memory engine; no engine, no network."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.app import create_app
from service.config import Settings
from service.domain.backups.restic import Repository, Restic
from service.engine.port import SwarmNode
from tests.fakes.memory import InMemoryEngine

from .fleet_transport import NODES, SECRET, Wsgi

# The operator's tokens (project `*`: every project, and what dockvol did not create); tests of
# projects (test_projects*.py) add tokens of their own.
TOKENS = {
    "reader": {"scopes": ["read"], "project": "*"},
    "writer": {"scopes": ["write"], "project": "*"},
    "admin": {"scopes": ["admin"], "project": "*"},
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def restic_templates() -> dict[bytes, Path]:
    return {}


@pytest.fixture(autouse=True)
def quick_restic_init(monkeypatch, tmp_path_factory, restic_templates):
    """`restic init` calibrates its key derivation (about 3 s here, five times a later call), so a
    test's repository is a copy of one real init per password. A test copies each template once:
    its second repository with the same password is a real init, so no two in one test share an id
    (restic's cache is keyed by it). Local repositories only."""
    real = Restic.init
    copied: set[bytes] = set()

    def init(self: Restic, repo: Repository) -> None:
        password = Path(repo.password_file).read_bytes()
        if password in copied or not repo.location.startswith("/"):  # an S3 one is made where it lies
            return real(self, repo)
        copied.add(password)
        if password not in restic_templates:
            template = tmp_path_factory.mktemp("restic-template") / "repo"
            real(self, Repository(str(template), repo.password_file))
            restic_templates[password] = template
        shutil.copytree(restic_templates[password], repo.location, dirs_exist_ok=True)

    monkeypatch.setattr(Restic, "init", init)


@pytest.fixture
def engine():
    return InMemoryEngine()


@pytest.fixture
def bind_root(tmp_path):
    root = tmp_path / "roots" / "data"
    root.mkdir(parents=True)
    return root


@pytest.fixture
def settings(bind_root, tmp_path):
    return Settings(
        tokens=TOKENS,
        bind_roots=(str(bind_root),),
        docker_host="unix:///run/test-engine.sock",
        state_dir=str(tmp_path / "state"),
    )


@pytest.fixture
def app(engine, settings):
    return create_app(settings, engine=engine)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def as_reader():
    return bearer("reader")


@pytest.fixture
def as_writer():
    return bearer("writer")


@pytest.fixture
def as_admin():
    return bearer("admin")


@pytest.fixture
def fleet(tmp_path):
    wsgi = Wsgi()
    engines = {}
    for i, name in enumerate(NODES):
        engine = InMemoryEngine(name=name)
        engines[name] = engine
        settings = Settings(tokens=TOKENS, fleet="swarm", fleet_secret=SECRET, engine_timeout=2.0)
        wsgi.apps[f"10.0.0.{i + 1}:8080"] = create_app(settings, engine=engine, peers=(wsgi.resolve, wsgi))
    engines["n1"].swarm_nodes = [
        SwarmNode(f"id-{n}", n, "manager" if n == "n1" else "worker", "active", "ready") for n in NODES
    ]

    class Fleet:
        pass

    f = Fleet()
    f.wsgi, f.engines = wsgi, engines
    f.client = {n: wsgi.apps[f"10.0.0.{i + 1}:8080"].test_client() for i, n in enumerate(NODES)}
    f.address = {n: f"10.0.0.{i + 1}:8080" for i, n in enumerate(NODES)}
    return f
