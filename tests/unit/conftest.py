"""Unit tier: the app and the use cases against the in-memory engine; no engine, no network."""

from __future__ import annotations

import pytest

from service.app import create_app
from service.config import Settings
from service.engine.memory import InMemoryEngine

TOKENS = {"reader": ["read"], "writer": ["write"], "admin": ["admin"]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def engine():
    return InMemoryEngine()


@pytest.fixture
def bind_root(tmp_path):
    root = tmp_path / "roots" / "data"
    root.mkdir(parents=True)
    return root


@pytest.fixture
def settings(bind_root):
    return Settings(tokens=TOKENS, bind_roots=(str(bind_root),), docker_host="unix:///run/test-engine.sock")


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
