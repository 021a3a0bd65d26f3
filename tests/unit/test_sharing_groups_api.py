"""/api/v1/sharing-groups, and bindings that join them, over the in-memory engine."""

from __future__ import annotations

import pytest

from service.domain import labels as label
from service.domain.sharing import WAIT
from service.errors import EngineRejected

from .engine_state import snapshot


def group(client, headers, **body):
    body.setdefault("name", "infracon")
    return client.post("/api/v1/sharing-groups", json=body, headers=headers)


def member(client, headers, name, mode="rw", **body):
    body = {"name": name, "image": "busybox:stable", "sharing_group": "infracon", "sharing_mode": mode, **body}
    return client.post("/api/v1/bindings", json=body, headers=headers)


def spec_of(engine, name):
    return next(engine.specs[c.id] for c in engine.containers.values() if c.name == name)


@pytest.fixture
def infracon(client, as_writer, bind_root):
    r = group(
        client,
        as_writer,
        mounts=[{"type": "bind", "source": f"{bind_root}/infracon", "target": "/data/web/html"}],
        share=["network", "ipc"],
    )
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_create_starts_an_infrastructure_container(infracon, engine, bind_root):
    assert infracon["infra"]["container"] == "infracon"
    assert infracon["infra"]["state"] == "running"
    assert infracon["share"] == ["ipc", "network"]
    assert infracon["members"] == []
    assert infracon["mounts"][0]["source"] == str(bind_root / "infracon")
    spec = spec_of(engine, "infracon")
    assert (spec.command, spec.restart, spec.ipc, spec.image) == (WAIT, "unless-stopped", "shareable", "busybox:stable")
    assert spec.labels[label.ROLE] == "infra"


def test_members_get_volumes_from_and_the_shared_namespaces(client, as_writer, engine, infracon):
    infra_id = infracon["infra"]["id"]
    assert member(client, as_writer, "nginx").status_code == 201
    r = member(client, as_writer, "tomcat", mode="ro")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert (body["sharing_group"], body["sharing_mode"], body["network"]) == ("infracon", "ro", f"container:{infra_id}")
    assert body["mounts"][0]["target"] == "/data/web/html" and body["mounts"][0]["read_only"] is True
    spec = spec_of(engine, "tomcat")
    assert (spec.volumes_from, spec.ipc, spec.pid) == ((f"{infra_id}:ro",), f"container:{infra_id}", None)
    assert spec_of(engine, "nginx").volumes_from == (f"{infra_id}:rw",)
    got = client.get("/api/v1/sharing-groups/infracon", headers=as_writer).get_json()
    assert got["members"] == ["nginx", "tomcat"]
    listed = client.get("/api/v1/bindings?sharing_group=infracon", headers=as_writer).get_json()
    assert [b["name"] for b in listed] == ["nginx", "tomcat"]


def test_a_member_may_not_reuse_a_group_target(client, as_writer, engine, infracon, tmp_path):
    before = snapshot(engine, tmp_path)
    r = member(client, as_writer, "clash", mounts=[{"type": "volume", "target": "/data/web/html"}])
    assert r.status_code == 422
    assert "mounts.0.target" in r.get_json()["errors"]
    assert snapshot(engine, tmp_path) == before


def test_a_member_of_a_network_sharing_group_cannot_pick_a_network(client, as_writer, engine, infracon, tmp_path):
    before = snapshot(engine, tmp_path)
    r = member(client, as_writer, "picky", network="none", mounts=[{"type": "volume", "target": "/own"}])
    assert r.status_code == 422
    assert "network" in r.get_json()["errors"]
    assert snapshot(engine, tmp_path) == before


def test_joining_a_missing_group_is_422(client, as_writer, engine, bind_root):
    r = member(
        client,
        as_writer,
        "lonely",
        mounts=[{"type": "volume", "target": "/own"}, {"type": "bind", "source": f"{bind_root}/l", "target": "/l"}],
    )
    assert r.status_code == 422
    assert "sharing_group" in r.get_json()["errors"]
    assert engine.containers == {} and engine.volumes == {} and list(bind_root.iterdir()) == []


def test_a_stopped_infrastructure_container_is_started_first(client, as_writer, engine, infracon):
    engine.stop_container("infracon")
    assert member(client, as_writer, "nginx").status_code == 201
    assert client.get("/api/v1/sharing-groups/infracon", headers=as_writer).get_json()["infra"]["state"] == "running"


def test_the_infrastructure_container_is_not_a_binding(client, as_writer, engine, infracon, tmp_path):
    before = snapshot(engine, tmp_path)
    assert client.get("/api/v1/bindings/infracon", headers=as_writer).status_code == 404
    assert client.delete("/api/v1/bindings/infracon", headers=as_writer).status_code == 404
    assert (
        client.post(
            "/api/v1/bindings", json={"name": "infracon", "image": "busybox:stable"}, headers=as_writer
        ).status_code
        == 409
    )
    assert snapshot(engine, tmp_path) == before


def test_delete_with_members_is_409_and_removes_nothing(client, as_writer, engine, infracon, tmp_path):
    member(client, as_writer, "nginx", mounts=[{"type": "volume", "target": "/own"}])
    before = snapshot(engine, tmp_path)
    r = client.delete("/api/v1/sharing-groups/infracon", headers=as_writer)
    assert r.status_code == 409
    assert r.get_json()["members"] == ["nginx"]
    assert snapshot(engine, tmp_path) == before


def test_cascade_removes_members_and_infra_but_keeps_volumes(client, as_writer, engine, infracon, bind_root):
    member(client, as_writer, "nginx", mounts=[{"type": "volume", "target": "/own"}])
    volumes = set(engine.volumes)
    assert client.delete("/api/v1/sharing-groups/infracon?cascade=true", headers=as_writer).status_code == 204
    assert engine.containers == {}
    assert set(engine.volumes) == volumes and volumes
    assert (bind_root / "infracon").is_dir()


def test_list_and_missing(client, as_reader, as_writer, infracon):
    group(client, as_writer, name="second")
    assert [g["name"] for g in client.get("/api/v1/sharing-groups", headers=as_reader).get_json()] == [
        "infracon",
        "second",
    ]
    assert client.get("/api/v1/sharing-groups/ghost", headers=as_reader).status_code == 404
    assert client.delete("/api/v1/sharing-groups/ghost", headers=as_writer).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"share": ["uts"]},
        {"share": ["network", "network"]},
        {"name": "a"},
        {"mounts": [{"type": "bind", "source": "/etc", "target": "/x"}]},
        {"privileged": True},
    ],
)
def test_bad_groups_are_refused_and_make_nothing(client, as_writer, engine, tmp_path, body):
    before = snapshot(engine, tmp_path)
    r = group(client, as_writer, **body)
    assert r.status_code in (403, 422)
    assert snapshot(engine, tmp_path) == before


def test_a_failed_group_create_takes_back_everything(client, as_writer, engine, bind_root, monkeypatch):
    def refuse(*a, **k):
        raise EngineRejected("the engine refused this configuration")

    monkeypatch.setattr(engine, "start_container", refuse)
    r = group(
        client,
        as_writer,
        mounts=[{"type": "volume", "target": "/v"}, {"type": "bind", "source": f"{bind_root}/g", "target": "/b"}],
    )
    assert r.status_code == 422
    assert engine.containers == {} and engine.volumes == {} and list(bind_root.iterdir()) == []


def test_a_group_has_an_etag_and_delete_honours_if_match(client, as_writer, engine, infracon, tmp_path):
    etag = client.get("/api/v1/sharing-groups/infracon", headers=as_writer).headers["ETag"]
    before = snapshot(engine, tmp_path)
    stale = client.delete("/api/v1/sharing-groups/infracon", headers={**as_writer, "If-Match": '"stale"'})
    assert stale.status_code == 412
    assert snapshot(engine, tmp_path) == before
    assert client.delete("/api/v1/sharing-groups/infracon", headers={**as_writer, "If-Match": etag}).status_code == 204
