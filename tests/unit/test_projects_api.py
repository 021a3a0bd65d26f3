"""Projects over HTTP: the mapping of a quota refusal, GET /projects, a move by the operator, and
what each project's watcher hears. The rules themselves are tested in usecases/test_projects.py."""

from __future__ import annotations

import json
import time

import pytest

from service import times
from service.app import create_app
from service.config import ProjectConfig, Settings
from service.http import events as events_module
from tests.contract.engine_contract import make_tar

from .conftest import bearer
from .test_events import Stream

TOKENS = {
    "a": {"scopes": ["write"], "project": "a"},
    "a-admin": {"scopes": ["admin"], "project": "a"},
    "b": {"scopes": ["write"], "project": "b"},
    "op": {"scopes": ["admin"], "project": "*"},
}


@pytest.fixture
def settings(bind_root):
    projects = {"a": ProjectConfig({"volumes": 2, "bindings": 4}), "b": ProjectConfig({"bytes": 10})}
    return Settings(tokens=TOKENS, bind_roots=(str(bind_root),), projects=projects, docker_host="unix:///x.sock")


@pytest.fixture
def client(engine, settings):
    return create_app(settings, engine=engine).test_client()


def post(client, token, path, body=None):
    return client.post(path, data=json.dumps(body or {}), headers={**bearer(token), "Content-Type": "application/json"})


def test_a_create_past_a_quota_is_403_quota_exceeded_with_its_numbers(client, engine):
    for name in ("v1", "v2"):
        assert post(client, "a", "/api/v1/volumes", {"name": name}).status_code == 201
    refused = post(client, "a", "/api/v1/volumes", {"name": "v3"})
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    body = refused.json
    assert body["type"].endswith("quota-exceeded")
    assert (body["quota"], body["limit"], body["used"]) == ("volumes", 2, 2)
    assert "v3" not in engine.volumes


def test_an_import_past_the_bytes_quota_is_403_quota_exceeded_and_usage_shows_the_bytes(client, engine):
    assert post(client, "b", "/api/v1/volumes", {"name": "vb"}).status_code == 201
    archive = make_tar([("f", "file", b"x" * 11, 0o644)])
    headers = {**bearer("op"), "Content-Type": "application/x-tar"}
    refused = client.put("/api/v1/volumes/vb/archive", data=archive, headers=headers)
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    body = refused.json
    assert body["type"].endswith("quota-exceeded")
    assert (body["quota"], body["limit"], body["used"]) == ("bytes", 10, 0)
    archive = make_tar([("f", "file", b"x" * 10, 0o644)])
    assert client.put("/api/v1/volumes/vb/archive", data=archive, headers=headers).status_code == 200
    assert client.get("/api/v1/projects/b", headers=bearer("b")).json["usage"]["bytes"] == 10


def test_representations_show_their_project(client):
    post(client, "a", "/api/v1/volumes", {"name": "mine"})
    assert client.get("/api/v1/volumes/mine", headers=bearer("a")).json["project"] == "a"
    listed = client.get("/api/v1/volumes?project=a", headers=bearer("op")).json
    assert [(v["name"], v["project"]) for v in listed] == [("mine", "a")]
    assert client.get("/api/v1/volumes?project=b", headers=bearer("op")).json == []


def test_projects_list_shows_a_token_its_own_and_the_operator_all(client):
    post(client, "a", "/api/v1/volumes", {"name": "mine"})
    post(client, "a", "/api/v1/bindings", {"name": "app", "image": "busybox:stable", "network": "none"})
    own = client.get("/api/v1/projects", headers=bearer("a")).json
    measured_at = own[0]["usage"].pop("bytes_measured_at")
    assert times.nanoseconds(measured_at) <= times.nanoseconds(times.now())
    assert own == [
        {
            "name": "a",
            "quota": {"volumes": 2, "bindings": 4},
            "usage": {
                "volumes": 1,
                "bindings": 1,
                "sharing_groups": 0,
                "backups": 0,
                "bytes": 0,
            },
        }
    ]
    assert [p["name"] for p in client.get("/api/v1/projects", headers=bearer("op")).json] == ["a", "b", "default"]
    theirs = client.get("/api/v1/projects/b", headers={**bearer("a"), "X-Request-ID": "r"})
    missing = client.get("/api/v1/projects/zz", headers={**bearer("a"), "X-Request-ID": "r"})
    assert theirs.status_code == 404 and theirs.get_data() == missing.get_data().replace(b"zz", b"b")


def test_only_the_operators_admin_token_moves_a_volume_to_another_project(client, engine):
    assert post(client, "a", "/api/v1/volumes", {"name": "vol"}).status_code == 201
    for token in ("a", "a-admin"):
        refused = post(client, token, "/api/v1/volumes/vol/rename", {"name": "moved", "project": "b"})
        assert refused.status_code == 403
    assert list(engine.volumes) == ["vol"]
    moved = post(client, "op", "/api/v1/volumes/vol/rename", {"name": "moved", "project": "b"})
    assert moved.status_code == 200 and moved.json["project"] == "b"
    assert client.get("/api/v1/volumes/moved", headers=bearer("b")).status_code == 200
    assert client.get("/api/v1/volumes/moved", headers=bearer("a")).status_code == 404


def test_each_projects_watcher_hears_its_own_changes_only(client, engine, monkeypatch):
    monkeypatch.setattr(events_module, "HEARTBEAT", 0.1)
    view = client.application.extensions["dockvol"].view
    view.start_in_background()
    deadline = time.monotonic() + 5
    while not view.stats()["primed"] and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        watchers = {token: Stream(client, bearer(token)) for token in ("a", "b", "op")}
        post(client, "b", "/api/v1/volumes", {"name": "theirs"})
        post(client, "a", "/api/v1/volumes", {"name": "mine"})
        heard_a = watchers["a"].next()
        assert (heard_a["data"]["name"], heard_a["data"]["project"]) == ("mine", "a")
        assert watchers["b"].next()["data"]["name"] == "theirs"
        assert [watchers["op"].next()["data"]["name"] for _ in range(2)] == ["theirs", "mine"]
        # resuming from where it stood before both: its own again, and nothing of b's
        resumed = Stream(client, {**bearer("a"), "Last-Event-ID": watchers["a"].position})
        assert resumed.next()["data"]["name"] == "mine"
        post(client, "b", "/api/v1/volumes", {"name": "theirs2"})
        post(client, "a", "/api/v1/volumes", {"name": "mine2"})
        assert resumed.next()["data"]["name"] == "mine2"
        for w in [*watchers.values(), resumed]:
            w.close()
    finally:
        view.stop()
        engine.down = True
        view._thread.join(5)


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/v1/volumes", {"name": "made"}),
        ("/api/v1/bindings", {"name": "made", "image": "busybox:stable", "network": "none"}),
        ("/api/v1/sharing-groups", {"name": "made"}),
    ],
)
def test_a_create_names_its_project_the_operators_lands_there_others_are_403(client, engine, path, body):
    refused = post(client, "a", path, {**body, "project": "b"})
    assert refused.status_code == 403 and refused.json["type"].endswith("forbidden")
    unknown = post(client, "op", path, {**body, "project": "zz"})
    assert unknown.status_code == 422 and unknown.json["errors"] == {"project": ["project zz is not configured"]}
    assert engine.volumes == {} and engine.containers == {}
    made = post(client, "op", path, {**body, "project": "b"})
    assert made.status_code == 201 and made.json["project"] == "b"
    assert client.get(made.headers["Location"], headers=bearer("b")).status_code == 200
    assert client.get(made.headers["Location"], headers=bearer("a")).status_code == 404
