"""Bearer tokens, scopes, and that a refused request never reaches the engine."""

from __future__ import annotations

import hashlib
import json

import pytest

from service.app import create_app
from service.config import Settings

from .conftest import bearer


def test_no_token_is_401_with_www_authenticate(client, engine):
    r = client.get("/api/v1/volumes")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.content_type == "application/problem+json"
    assert sum(engine.calls.values()) == 0


@pytest.mark.parametrize("header", ["Bearer nope", "Basic cmVhZGVyOg==", "Bearer", "reader", "Bearer  "])
def test_a_wrong_or_malformed_token_is_401(client, engine, header):
    r = client.get("/api/v1/volumes", headers={"Authorization": header})
    assert r.status_code == 401
    assert "nope" not in r.get_data(as_text=True)
    assert sum(engine.calls.values()) == 0


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("post", "/api/v1/volumes", {"name": "x1"}),
        ("delete", "/api/v1/volumes/x1", None),
        ("post", "/api/v1/volumes/prune", {}),
    ],
)
def test_a_reader_cannot_write_and_the_engine_is_not_called(client, engine, method, path, body):
    r = getattr(client, method)(path, json=body, headers=bearer("reader"))
    assert r.status_code == 403
    assert "write" in r.get_json()["detail"] or "admin" in r.get_json()["detail"]
    assert sum(engine.calls.values()) == 0


def test_scope_is_checked_before_the_body(client, engine):
    r = client.post("/api/v1/volumes", json={"privileged": True}, headers=bearer("reader"))
    assert r.status_code == 403


def test_higher_scopes_include_lower_ones(client):
    assert client.get("/api/v1/volumes", headers=bearer("admin")).status_code == 200
    assert client.post("/api/v1/volumes", json={"name": "byadmin"}, headers=bearer("admin")).status_code == 201
    assert client.post("/api/v1/volumes/prune", json={}, headers=bearer("writer")).status_code == 403


def test_health_endpoints_are_open(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_tokens_file_holds_sha256_digests(tmp_path, engine):
    path = tmp_path / "tokens.json"
    digest = hashlib.sha256(b"s3cret-token").hexdigest()
    path.write_text(json.dumps([{"name": "ops", "sha256": digest, "scopes": ["read"]}]))
    app = create_app(Settings(tokens_file=str(path)), engine=engine)
    c = app.test_client()
    assert c.get("/api/v1/volumes", headers=bearer("s3cret-token")).status_code == 200
    assert c.get("/api/v1/volumes", headers=bearer(digest)).status_code == 401


@pytest.mark.parametrize(
    "content",
    [
        '[{"name": "x", "sha256": "abc", "scopes": ["read"]}]',
        '[{"name": "x", "sha256": "' + "0" * 64 + '", "scopes": ["root"]}]',
        "not json",
        '[{"name": "x"}]',
    ],
)
def test_a_bad_tokens_file_stops_the_start(tmp_path, engine, content):
    from service.config import ConfigError

    path = tmp_path / "tokens.json"
    path.write_text(content)
    with pytest.raises(ConfigError):
        create_app(Settings(tokens_file=str(path)), engine=engine)


def test_with_no_tokens_every_call_is_401(engine):
    c = create_app(Settings(), engine=engine).test_client()
    assert c.get("/api/v1/volumes", headers=bearer("anything")).status_code == 401


def test_auth_disabled_lets_everyone_in(engine):
    c = create_app(Settings(auth_disabled=True), engine=engine).test_client()
    assert c.post("/api/v1/volumes/prune", json={}).status_code == 200
