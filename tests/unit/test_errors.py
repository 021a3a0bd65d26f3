"""Every error is a problem document, and engine trouble maps to 502/503."""

from __future__ import annotations

import pytest

from service.errors import EngineFailure

PROBLEM = "application/problem+json"


def test_unknown_route_is_404_problem(client):
    r = client.get("/api/v1/nothing")
    assert r.status_code == 404
    assert r.content_type == PROBLEM
    body = r.get_json()
    assert {"type", "title", "status", "detail", "request_id"} <= set(body)
    assert body["status"] == 404


def test_wrong_method_is_405_with_allow(client, as_reader):
    r = client.put("/api/v1/volumes", json={}, headers=as_reader)
    assert r.status_code == 405
    assert r.content_type == PROBLEM
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_engine_down_is_503_with_retry_after(client, as_reader, engine):
    engine.down = True
    for path in ("/api/v1/volumes", "/api/v1/volumes/x1", "/readyz"):
        r = client.get(path, headers=as_reader)
        assert r.status_code == 503, path
        assert r.content_type == PROBLEM
        assert int(r.headers["Retry-After"]) > 0
    engine.down = False
    assert client.get("/readyz").status_code == 200


def test_other_engine_failures_are_502_without_engine_text(client, as_reader, engine, monkeypatch):
    def fail(*a, **k):
        raise EngineFailure("the engine refused the request")

    monkeypatch.setattr(engine, "list_volumes", fail)
    r = client.get("/api/v1/volumes", headers=as_reader)
    assert r.status_code == 502
    assert r.get_json()["detail"] == "the engine refused the request"


def test_an_unexpected_error_is_500_without_details(client, as_reader, engine, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("secret internals /var/lib/docker")

    monkeypatch.setattr(engine, "list_volumes", boom)
    r = client.get("/api/v1/volumes", headers=as_reader)
    assert r.status_code == 500
    text = r.get_data(as_text=True)
    assert "secret" not in text and "Traceback" not in text
    assert r.content_type == PROBLEM


def test_request_id_is_echoed_or_made(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    made = client.get("/healthz").headers["X-Request-ID"]
    assert len(made) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "bad id\x7f"}).headers["X-Request-ID"] != "bad id\x7f"


def test_problem_carries_the_request_id(client):
    r = client.get("/nothing", headers={"X-Request-ID": "trace-9"})
    assert r.get_json()["request_id"] == "trace-9"


@pytest.mark.parametrize("body", ["[]", '"x"', "1"])
def test_json_that_is_not_an_object_is_422(client, as_writer, engine, body):
    r = client.post("/api/v1/volumes", data=body, content_type="application/json", headers=as_writer)
    assert r.status_code == 422
    assert engine.volumes == {}


def test_every_422_for_the_callers_input_is_one_kind_of_problem_with_its_fields(client, as_admin, engine):
    """A body or query its schema refuses, and input a rule with context refuses (here a
    Last-Event-ID this service never gave), are the same problem to a client."""
    answers = [
        client.post("/api/v1/volumes", json={"name": "v1", "privileged": True}, headers=as_admin),
        client.get("/api/v1/volumes?page_size=0", headers=as_admin),
        client.get("/api/v1/events", headers={**as_admin, "Last-Event-ID": "x"}),
    ]
    for r in answers:
        body = r.get_json()
        assert (r.status_code, body["type"]) == (422, "urn:dockvol:problem:invalid-input"), body
        assert body["title"] == "Unprocessable Entity" and body["errors"], body


def test_volumes_prune_is_an_action_not_a_volume(client, as_writer, as_reader, engine):
    r = client.get("/api/v1/volumes/prune", headers=as_reader)
    assert r.status_code == 405
    assert "POST" in r.headers["Allow"] and "GET" not in r.headers["Allow"]
    r = client.post("/api/v1/volumes", json={"name": "prune"}, headers=as_writer)
    assert r.status_code == 422
    assert engine.volumes == {}


@pytest.mark.parametrize(
    "mount", [{"type": {}, "target": "/a"}, {"type": ["volume"], "target": "/a"}, "volume:/a", None]
)
def test_a_mount_of_the_wrong_shape_is_422_not_500(client, as_writer, engine, mount):
    r = client.post(
        "/api/v1/bindings", json={"name": "m1", "image": "busybox:stable", "mounts": [mount]}, headers=as_writer
    )
    assert r.status_code == 422
    assert engine.containers == {}


@pytest.mark.parametrize("body", [{"dry_run": 0}, {"dry_run": "true"}, {"include_named": 1}])
def test_json_flags_must_be_json_booleans(client, as_admin, engine, body):
    assert client.post("/api/v1/volumes/prune", json=body, headers=as_admin).status_code == 422


def test_tmpfs_size_must_be_a_json_integer(client, as_writer, engine):
    mount = {"type": "tmpfs", "target": "/t", "size_bytes": "65536"}
    r = client.post(
        "/api/v1/bindings", json={"name": "t1", "image": "busybox:stable", "mounts": [mount]}, headers=as_writer
    )
    assert r.status_code == 422
    assert "mounts.0.size_bytes" in r.get_json()["errors"]


def test_every_json_answer_is_written_one_way(client, as_writer):
    """A document built by hand, one a schema wrote and a problem: compact, ending in a newline."""
    made = client.post("/api/v1/volumes", json={"name": "written"}, headers=as_writer)
    listed = client.get("/api/v1/volumes", headers=as_writer)
    health = client.get("/healthz")
    refused = client.get("/api/v1/volumes/nothing-here", headers=as_writer)
    for r in (made, listed, health, refused):
        body = r.get_data(as_text=True)
        assert body.endswith("}\n") or body.endswith("]\n"), body
        assert '": ' not in body and '", "' not in body, body
