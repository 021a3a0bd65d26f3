"""Nodes, and the `node` every representation carries, with one engine (standalone)."""

from __future__ import annotations

import json

import pytest

from service.app import create_app
from tests.fakes.memory import InMemoryEngine


@pytest.fixture
def engine():
    return InMemoryEngine(name="host-a")


def test_one_engine_is_one_standalone_node(client, as_reader, engine):
    r = client.get("/api/v1/nodes", headers=as_reader)
    assert r.status_code == 200
    assert r.get_json() == [
        {
            "name": "host-a",
            "id": "memory-host-a",
            "role": "standalone",
            "availability": "active",
            "state": "ready",
            "dockvol": "up",
            "engine_version": "memory",
            "api_version": "1.41",
        }
    ]
    assert json.loads(r.headers["X-Pagination"])["total"] == 1


def test_nodes_need_a_token(client):
    assert client.get("/api/v1/nodes").status_code == 401


def test_every_representation_names_its_node(client, as_writer, bind_root):
    volume = client.post("/api/v1/volumes", json={"name": "v1"}, headers=as_writer)
    group = client.post(
        "/api/v1/sharing-groups",
        json={"name": "g1", "mounts": [{"type": "volume", "source": "v1", "target": "/shared"}]},
        headers=as_writer,
    )
    body = {"name": "b1", "image": "busybox:stable", "sharing_group": "g1"}
    binding = client.post("/api/v1/bindings", json=body, headers=as_writer)
    assert [r.status_code for r in (volume, group, binding)] == [201, 201, 201]
    assert volume.get_json()["node"] == group.get_json()["node"] == binding.get_json()["node"] == "host-a"
    for path in ("/api/v1/volumes", "/api/v1/bindings", "/api/v1/sharing-groups"):
        listed = client.get(path, headers=as_writer).get_json()
        assert listed and all(item["node"] == "host-a" for item in listed), (path, listed)
    shown = client.get("/api/v1/volumes/v1", headers=as_writer).get_json()
    assert shown["used_by"] and all(use["node"] == "host-a" for use in shown["used_by"]), shown


def test_the_node_is_asked_of_the_engine_once(client, as_reader, engine):
    client.post("/api/v1/volumes", json={"name": "v1"}, headers={"Authorization": "Bearer writer"})
    for _ in range(3):
        assert client.get("/api/v1/volumes/v1", headers=as_reader).get_json()["node"] == "host-a"
    engine.calls.clear()
    client.get("/api/v1/volumes", headers=as_reader)
    assert engine.calls.get("info", 0) == 0


def test_an_engine_down_when_first_asked_is_asked_again_later(settings, as_reader):
    engine = InMemoryEngine(name="late")
    client = create_app(settings, engine=engine).test_client()
    engine.down = True
    assert client.get("/api/v1/volumes", headers=as_reader).status_code == 503
    engine.down = False
    engine.create_volume("v1", "local", {}, {})
    assert client.get("/api/v1/volumes", headers=as_reader).get_json()[0]["node"] == "late"


def test_with_one_engine_node_names_this_node_or_finds_nothing(client, as_writer, as_reader):
    assert client.post("/api/v1/volumes", json={"name": "v1"}, headers=as_writer).status_code == 201
    assert client.get("/api/v1/volumes/v1?node=host-a", headers=as_reader).status_code == 200
    assert client.get("/api/v1/volumes/v1?node=elsewhere", headers=as_reader).status_code == 404
    assert [v["name"] for v in client.get("/api/v1/volumes?node=host-a", headers=as_reader).get_json()] == ["v1"]
    assert client.get("/api/v1/volumes?node=elsewhere", headers=as_reader).get_json() == []
    r = client.post("/api/v1/volumes", json={"name": "v2", "node": "elsewhere"}, headers=as_writer)
    assert r.status_code == 422 and "node" in r.get_json()["errors"]
    assert client.delete("/api/v1/volumes/v1?node=host-a", headers=as_writer).status_code == 204
    assert client.get("/api/v1/events?node=elsewhere", headers=as_reader).status_code == 404
    assert client.get("/api/v1/events?node=elsewhere").status_code == 401


def test_another_node_is_checked_after_the_token_and_the_query(client, as_reader):
    assert client.get("/api/v1/volumes/v1?node=elsewhere").status_code == 401
    assert client.post("/api/v1/volumes?node=elsewhere", json={"name": "v9"}).status_code == 401
    assert client.get("/api/v1/volumes?node=elsewhere&dangling=-3", headers=as_reader).status_code == 422
