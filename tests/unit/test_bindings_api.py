"""/api/v1/bindings over the Flask test client and the in-memory engine: the HTTP mapping only
(status, problem type, headers, the document). The rules these routes reach are tested where they
live, in tests/unit/usecases/test_bindings.py."""

from __future__ import annotations

import pytest

from service.domain import labels as label
from service.errors import EngineFailure, EngineRejected

PROBLEM = "application/problem+json"


def bind(client, headers, **body):
    body.setdefault("name", "b2")
    body.setdefault("image", "busybox:stable")
    body.setdefault("network", "none")
    return client.post("/api/v1/bindings", json=body, headers=headers)


def anonymous_volumes(engine):
    return {n for n, v in engine.volumes.items() if v.labels.get(label.ANONYMOUS) == "true"}


def nothing_made(engine, root):
    return engine.containers == {} and engine.volumes == {} and list(root.iterdir()) == []


def problem(r, status):
    """The answer is a problem document of that status."""
    assert r.status_code == status, r.get_json()
    assert r.content_type == PROBLEM and r.get_json()["status"] == status
    return r.get_json()


@pytest.fixture
def site(client, as_writer):
    assert client.post("/api/v1/volumes", json={"name": "site-data"}, headers=as_writer).status_code == 201
    return "site-data"


class TestCreate:
    def test_answers_201_with_location_etag_and_the_document_of_every_kind_of_mount(
        self, client, as_writer, engine, bind_root, site
    ):
        r = bind(
            client,
            as_writer,
            command=["sleep", "3600"],
            environment={"TZ": "UTC"},
            restart="on-failure",
            mounts=[
                {"type": "volume", "target": "/data"},
                {"type": "volume", "source": site, "target": "/srv", "read_only": True},
                {"type": "bind", "source": f"{bind_root}/b2", "target": "/www"},
                {"type": "tmpfs", "target": "/tmp", "size_bytes": 67108864},
            ],
        )
        assert r.status_code == 201, r.get_json()
        assert r.headers["Location"] == "/api/v1/bindings/b2"
        assert r.headers["ETag"]
        body = r.get_json()
        assert (body["state"], body["image"], body["network"], body["managed"], body["restart"]) == (
            "running",
            "busybox:stable",
            "none",
            True,
            "on-failure",
        )
        assert (body["command"], body["environment"]) == (["sleep", "3600"], {"TZ": "UTC"})
        mounts = {m["target"]: m for m in body["mounts"]}
        (anon,) = anonymous_volumes(engine)
        assert mounts["/data"] == {
            "type": "volume",
            "name": anon,
            "source": engine.volumes[anon].mountpoint,
            "target": "/data",
            "read_only": False,
            "driver": "local",
        }
        assert (mounts["/srv"]["name"], mounts["/srv"]["read_only"]) == (site, True)
        assert (mounts["/www"]["type"], mounts["/www"]["source"]) == ("bind", str(bind_root / "b2"))
        assert mounts["/tmp"]["type"] == "tmpfs"

    def test_a_body_with_only_a_name_and_an_image_takes_the_schemas_defaults(self, client, as_writer):
        r = client.post("/api/v1/bindings", json={"name": "dflt", "image": "busybox:stable"}, headers=as_writer)
        assert r.status_code == 201
        body = r.get_json()
        assert (body["restart"], body["command"], body["environment"], body["labels"], body["mounts"]) == (
            "unless-stopped",
            None,
            {},
            {},
            [],
        )

    def test_an_unknown_restart_policy_is_422_and_makes_nothing(self, client, as_writer, engine, bind_root):
        assert "restart" in problem(bind(client, as_writer, restart="sometimes"), 422)["errors"]
        assert nothing_made(engine, bind_root)

    def test_a_mount_the_use_case_refuses_is_422_naming_the_field(self, client, as_writer):
        r = bind(
            client,
            as_writer,
            mounts=[{"type": "volume", "target": "/a"}, {"type": "volume", "source": "nope-vol", "target": "/b"}],
        )
        assert "mounts.1.source" in problem(r, 422)["errors"]

    def test_a_taken_name_is_409(self, client, as_writer):
        bind(client, as_writer)
        assert "exists already" in problem(bind(client, as_writer), 409)["detail"]

    def test_a_container_the_engine_refuses_is_422(self, client, as_writer, engine, monkeypatch):
        def refuse(*a, **k):
            raise EngineRejected("the engine refused this configuration")

        monkeypatch.setattr(engine, "start_container", refuse)
        problem(bind(client, as_writer), 422)

    def test_an_engine_failure_is_502(self, client, as_writer, engine, monkeypatch):
        def fail(*a, **k):
            raise EngineFailure("the engine refused the request")

        monkeypatch.setattr(engine, "start_container", fail)
        problem(bind(client, as_writer), 502)


class TestPolicy:
    @pytest.mark.parametrize("source, status", [("relative/dir", 422), ("/x\u0000y", 422), ("/etc", 403)])
    def test_a_refused_bind_source_is_a_problem_and_makes_nothing(
        self, client, as_writer, engine, bind_root, source, status
    ):
        r = bind(
            client,
            as_writer,
            mounts=[{"type": "volume", "target": "/data"}, {"type": "bind", "source": source, "target": "/www"}],
        )
        problem(r, status)
        assert nothing_made(engine, bind_root)

    @pytest.mark.parametrize(
        "body, field",
        [
            ({"privileged": True}, "privileged"),
            ({"cap_add": ["SYS_ADMIN"]}, "cap_add"),
            ({"mounts": [{"type": "volume", "target": "data"}]}, "mounts.0.target"),
            ({"mounts": [{"type": "volume", "target": "/"}]}, "mounts.0.target"),
            ({"mounts": [{"type": "volume", "target": "/a/../b"}]}, "mounts.0.target"),
            ({"mounts": [{"type": "volume", "target": "/a/"}]}, "mounts.0.target"),
            ({"mounts": [{"type": "volume", "target": "/a"}, {"type": "tmpfs", "target": "/a"}]}, "mounts"),
            (
                {"mounts": [{"type": "bind", "source": "/x", "target": "/a", "propagation": "rshared"}]},
                "mounts.0.propagation",
            ),
            ({"mounts": [{"type": "bind", "source": "/x", "target": "/a", "no_copy": True}]}, "mounts.0.no_copy"),
            ({"mounts": [{"type": "tmpfs", "source": "/x", "target": "/a"}]}, "mounts.0.source"),
            ({"mounts": [{"type": "bind", "target": "/a"}]}, "mounts.0.source"),
            ({"mounts": [{"type": "npipe", "target": "/a"}]}, "mounts.0.type"),
            ({"mounts": [{"type": "volume", "source": "../x", "target": "/a"}]}, "mounts.0.source"),
            ({"image": "UPPER:case"}, "image"),
            ({"environment": {"1BAD": "x"}}, "environment"),
            ({"command": []}, "command"),
            ({"name": "-x"}, "name"),
            ({"sharing_mode": "rwx"}, "sharing_mode"),
        ],
    )
    def test_bad_bodies_are_422_and_make_nothing(self, client, as_writer, engine, bind_root, body, field):
        r = bind(client, as_writer, **body)
        assert r.status_code == 422, r.get_json()
        assert any(k == field or k.startswith(field + ".") for k in r.get_json()["errors"]), r.get_json()
        assert nothing_made(engine, bind_root)


class TestReadAndList:
    @pytest.fixture
    def hosts(self, client, as_writer, engine, site):
        bind(
            client,
            as_writer,
            name="web",
            labels={"tier": "front"},
            mounts=[{"type": "volume", "source": site, "target": "/srv"}],
        )
        bind(client, as_writer, name="idle", start=False)
        engine.add_container("foreign", {site: "/x"})
        engine.add_container("helper", {}, labels={label.MANAGED: "true", label.ROLE: "helper"})

    def names(self, client, headers, query=""):
        r = client.get(f"/api/v1/bindings{query}", headers=headers)
        assert r.status_code == 200, r.get_json()
        return [b["name"] for b in r.get_json()]

    @pytest.mark.parametrize(
        "query, expected",
        [
            ("", ["foreign", "idle", "web"]),
            ("?volume=site-data", ["foreign", "web"]),
            ("?state=running", ["web"]),
            ("?label=tier=front", ["web"]),
            ("?sharing_group=nogroup", []),
        ],
    )
    def test_filters(self, client, as_reader, hosts, query, expected):
        assert self.names(client, as_reader, query) == expected

    def test_listing_costs_one_engine_call_whatever_the_host_holds(self, client, as_reader, engine, hosts):
        for i in range(200):
            engine.add_container(f"extra{i}", {"site-data": f"/m{i}"})
        engine.calls.clear()
        assert len(self.names(client, as_reader, "?page_size=1000")) == 203
        assert sum(engine.calls.values()) == 1


class TestReplace:
    @pytest.fixture
    def running(self, client, as_writer):
        return bind(client, as_writer, name="app", mounts=[{"type": "volume", "target": "/data"}]).get_json()

    def put(self, client, headers, **body):
        body.setdefault("image", "busybox:stable")
        body.setdefault("network", "none")
        return client.put("/api/v1/bindings/app", json=body, headers=headers)

    def test_answers_200_with_the_new_document_and_its_etag(self, client, as_writer, engine, running):
        engine.images.add("busybox:v2")
        r = self.put(client, as_writer, image="busybox:v2", mounts=[{"type": "volume", "target": "/data"}])
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        assert (body["name"], body["image"], body["state"]) == ("app", "busybox:v2", "running")
        assert body["id"] != running["id"] and [m["target"] for m in body["mounts"]] == ["/data"]
        assert r.headers["ETag"] == client.get("/api/v1/bindings/app", headers=as_writer).headers["ETag"]

    def test_if_match_guards_the_replace(self, client, as_writer, as_reader, running):
        etag = client.get("/api/v1/bindings/app", headers=as_reader).headers["ETag"]
        problem(self.put(client, {**as_writer, "If-Match": '"stale"'}), 412)
        assert self.put(client, {**as_writer, "If-Match": etag}).status_code == 200

    def test_the_body_name_must_be_the_paths_and_nothing_changes_otherwise(self, client, as_writer, engine, running):
        engine.calls.clear()
        assert "name" in problem(self.put(client, as_writer, name="other"), 422)["errors"]
        assert client.get("/api/v1/bindings/app", headers=as_writer).get_json()["id"] == running["id"]
        assert not {"create_container", "rename_container", "remove_container"} & set(engine.calls)

    def test_replacing_a_missing_binding_is_404(self, client, as_writer, running):
        problem(client.put("/api/v1/bindings/ghost", json={"image": "busybox:stable"}, headers=as_writer), 404)


class TestDeleteStartStop:
    @pytest.fixture
    def app_binding(self, client, as_writer, site):
        return bind(
            client,
            as_writer,
            name="app",
            mounts=[{"type": "volume", "target": "/data"}, {"type": "volume", "source": site, "target": "/srv"}],
        ).get_json()

    @pytest.mark.parametrize("query, anonymous_kept", [("", True), ("?remove_anonymous_volumes=true", False)])
    def test_delete_answers_204_and_removes_anonymous_volumes_only_when_asked(
        self, client, as_writer, engine, app_binding, query, anonymous_kept
    ):
        (anon,) = anonymous_volumes(engine)
        r = client.delete(f"/api/v1/bindings/app{query}", headers=as_writer)
        assert (r.status_code, r.data) == (204, b"")
        assert engine.containers == {}
        assert (anon in engine.volumes) is anonymous_kept

    def test_stop_and_start(self, client, as_writer, app_binding):
        assert client.post("/api/v1/bindings/app/stop", headers=as_writer).get_json()["state"] == "exited"
        assert client.post("/api/v1/bindings/app/start", headers=as_writer).get_json()["state"] == "running"

    def test_a_reader_cannot_change_bindings(self, client, as_reader, engine, app_binding):
        engine.calls.clear()
        assert client.post("/api/v1/bindings/app/stop", headers=as_reader).status_code == 403
        assert client.delete("/api/v1/bindings/app", headers=as_reader).status_code == 403
        assert sum(engine.calls.values()) == 0
