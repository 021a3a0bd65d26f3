"""/api/v1/bindings over the Flask test client and the in-memory engine."""

from __future__ import annotations

import os

import pytest

from service.domain import labels as label
from service.errors import EngineFailure, EngineRejected

from .engine_state import snapshot

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


def refusing_the_binding(engine, monkeypatch, call):
    """The engine refuses `call` (create_container or start_container) for the binding's new
    container only: the operation's locks are made, and an old container starts again."""
    real = getattr(engine, call)
    old = set(engine.containers)

    def refuse(arg, *a, **k):
        if call == "create_container" and arg.labels.get(label.ROLE) != "binding":
            return real(arg, *a, **k)
        if call == "start_container" and arg in old:
            return real(arg, *a, **k)
        raise EngineRejected("the engine refused this configuration")

    monkeypatch.setattr(engine, call, refuse)


@pytest.fixture
def site(client, as_writer):
    assert client.post("/api/v1/volumes", json={"name": "site-data"}, headers=as_writer).status_code == 201
    return "site-data"


class TestCreate:
    def test_every_kind_of_mount(self, client, as_writer, engine, bind_root, site):
        r = bind(
            client,
            as_writer,
            command=["sleep", "3600"],
            environment={"TZ": "UTC"},
            mounts=[
                {"type": "volume", "target": "/data"},
                {"type": "volume", "source": site, "target": "/srv", "read_only": True},
                {"type": "bind", "source": f"{bind_root}/b2", "target": "/www"},
                {"type": "tmpfs", "target": "/tmp", "size_bytes": 67108864},
            ],
        )
        assert r.status_code == 201, r.get_json()
        assert r.headers["Location"] == "/api/v1/bindings/b2"
        body = r.get_json()
        assert (body["state"], body["image"], body["network"], body["managed"]) == (
            "running",
            "busybox:stable",
            "none",
            True,
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
        assert (bind_root / "b2").is_dir()
        assert engine.volumes[anon].labels[label.BINDING] == "b2"
        (spec,) = engine.specs.values()
        assert {m.target: m.propagation for m in spec.mounts}["/www"] == "rprivate"

    @pytest.mark.parametrize(
        "restart, expected",
        [(None, "unless-stopped"), ("no", "no"), ("on-failure", "on-failure"), ("always", "always")],
    )
    def test_the_restart_policy_reaches_the_engine_and_is_shown(self, client, as_writer, engine, restart, expected):
        body = {} if restart is None else {"restart": restart}
        r = bind(client, as_writer, **body)
        assert r.status_code == 201 and r.get_json()["restart"] == expected
        (spec,) = engine.specs.values()
        assert spec.restart == expected

    def test_an_unknown_restart_policy_is_422_and_makes_nothing(self, client, as_writer, engine, bind_root):
        r = bind(client, as_writer, restart="sometimes")
        assert r.status_code == 422 and "restart" in r.get_json()["errors"]
        assert nothing_made(engine, bind_root)

    def test_start_false_leaves_it_created(self, client, as_writer):
        assert bind(client, as_writer, start=False).get_json()["state"] == "created"

    def test_the_default_network_applies(self, client, as_writer):
        r = client.post("/api/v1/bindings", json={"name": "dflt", "image": "busybox:stable"}, headers=as_writer)
        assert r.status_code == 201
        assert r.get_json()["network"] == "bridge"

    def test_a_missing_named_volume_is_422_and_nothing_is_made(self, client, as_writer, engine, bind_root):
        r = bind(
            client,
            as_writer,
            mounts=[{"type": "volume", "target": "/a"}, {"type": "volume", "source": "nope-vol", "target": "/b"}],
        )
        assert r.status_code == 422
        assert "mounts.1.source" in r.get_json()["errors"]
        assert nothing_made(engine, bind_root)

    def test_a_taken_name_is_409_and_nothing_more_is_made(self, client, as_writer, engine, bind_root, tmp_path):
        bind(client, as_writer)
        before = snapshot(engine, tmp_path)
        r = bind(
            client,
            as_writer,
            mounts=[{"type": "volume", "target": "/x"}, {"type": "bind", "source": f"{bind_root}/new", "target": "/w"}],
        )
        assert r.status_code == 409
        assert snapshot(engine, tmp_path) == before

    @pytest.mark.parametrize("fail", ["create_container", "start_container"])
    def test_a_failure_takes_back_everything_it_made(self, client, as_writer, engine, bind_root, monkeypatch, fail):
        refusing_the_binding(engine, monkeypatch, fail)
        r = bind(
            client,
            as_writer,
            mounts=[
                {"type": "volume", "target": "/data"},
                {"type": "bind", "source": f"{bind_root}/new/deep", "target": "/www"},
            ],
        )
        assert r.status_code == 422
        assert nothing_made(engine, bind_root)

    def test_an_engine_failure_is_502_and_takes_back_everything(
        self, client, as_writer, engine, bind_root, monkeypatch
    ):
        def fail(*a, **k):
            raise EngineFailure("the engine refused the request")

        monkeypatch.setattr(engine, "start_container", fail)
        assert bind(client, as_writer, mounts=[{"type": "volume", "target": "/data"}]).status_code == 502
        assert nothing_made(engine, bind_root)


class TestPolicy:
    @pytest.mark.parametrize(
        "source, status",
        [
            ("relative/dir", 422),
            ("/roots/../etc", 422),
            ("/x\u0000y", 422),
            ("/" + "a" * 300, 422),
            ("/etc", 403),
            ("/proc/self", 403),
            ("/", 403),
            ("/run/test-engine.sock", 403),
            ("/var/lib/docker", 403),
            ("/var/lib/docker/volumes/x/_data", 403),
        ],
    )
    def test_refused_bind_sources_make_nothing(self, client, as_writer, engine, bind_root, source, status):
        r = bind(
            client,
            as_writer,
            mounts=[{"type": "volume", "target": "/data"}, {"type": "bind", "source": source, "target": "/www"}],
        )
        assert r.status_code == status, r.get_json()
        assert r.content_type == PROBLEM
        assert nothing_made(engine, bind_root)

    def test_a_sibling_sharing_the_root_prefix_is_refused(self, client, as_writer, engine, bind_root):
        sibling = f"{bind_root}2"
        r = bind(client, as_writer, mounts=[{"type": "bind", "source": f"{sibling}/x", "target": "/www"}])
        assert r.status_code == 403
        assert not os.path.exists(sibling)
        assert nothing_made(engine, bind_root)

    def test_a_symlink_leaving_the_root_is_refused(self, client, as_writer, engine, bind_root, tmp_path):
        (tmp_path / "secret").mkdir()
        os.symlink(tmp_path / "secret", bind_root / "escape")
        r = bind(client, as_writer, mounts=[{"type": "bind", "source": f"{bind_root}/escape/sub", "target": "/www"}])
        assert r.status_code == 403
        assert not (tmp_path / "secret" / "sub").exists()
        assert engine.containers == {} and engine.volumes == {}

    def test_the_resolved_path_is_what_the_engine_gets(self, client, as_writer, engine, bind_root):
        (bind_root / "real").mkdir()
        os.symlink(bind_root / "real", bind_root / "alias")
        assert (
            bind(
                client, as_writer, mounts=[{"type": "bind", "source": f"{bind_root}/alias/", "target": "/www"}]
            ).status_code
            == 201
        )
        (spec,) = engine.specs.values()
        assert spec.mounts[0].source == str(bind_root / "real")

    def test_a_source_inside_another_read_write_bind_source_is_refused(self, client, as_writer, engine, bind_root):
        assert (
            bind(
                client,
                as_writer,
                name="outer",
                mounts=[{"type": "bind", "source": f"{bind_root}/shared", "target": "/w"}],
            ).status_code
            == 201
        )
        before = snapshot(engine, bind_root)
        r = bind(
            client,
            as_writer,
            name="inner",
            mounts=[{"type": "bind", "source": f"{bind_root}/shared/sub", "target": "/w"}],
        )
        assert r.status_code == 403
        assert not (bind_root / "shared" / "sub").exists()
        assert snapshot(engine, bind_root) == before
        same = bind(
            client, as_writer, name="same", mounts=[{"type": "bind", "source": f"{bind_root}/shared", "target": "/w"}]
        )
        assert same.status_code == 201

    def test_a_read_write_source_inside_a_read_only_one_is_fine(self, client, as_writer, bind_root):
        bind(
            client,
            as_writer,
            name="ro",
            mounts=[{"type": "bind", "source": f"{bind_root}/ro", "target": "/w", "read_only": True}],
        )
        r = bind(
            client, as_writer, name="in-ro", mounts=[{"type": "bind", "source": f"{bind_root}/ro/sub", "target": "/w"}]
        )
        assert r.status_code == 201

    def test_a_read_write_source_above_an_existing_source_is_refused(self, client, as_writer, engine, bind_root):
        child = bind(
            client,
            as_writer,
            name="child",
            mounts=[{"type": "bind", "source": f"{bind_root}/p/child", "target": "/w", "read_only": True}],
        )
        assert child.status_code == 201
        before = snapshot(engine, bind_root)
        r = bind(
            client, as_writer, name="parent", mounts=[{"type": "bind", "source": f"{bind_root}/p", "target": "/w"}]
        )
        assert r.status_code == 403
        assert f"{bind_root}/p/child" in r.get_json()["detail"]
        assert snapshot(engine, bind_root) == before
        ro_parent = bind(
            client,
            as_writer,
            name="ro-parent",
            mounts=[{"type": "bind", "source": f"{bind_root}/p", "target": "/w", "read_only": True}],
        )
        assert ro_parent.status_code == 201

    def test_two_sources_of_one_request_may_not_nest_under_a_writable_one(self, client, as_writer, engine, bind_root):
        r = bind(
            client,
            as_writer,
            mounts=[
                {"type": "bind", "source": f"{bind_root}/n", "target": "/a"},
                {"type": "bind", "source": f"{bind_root}/n/inner", "target": "/b", "read_only": True},
            ],
        )
        assert r.status_code == 403
        assert nothing_made(engine, bind_root)

    def test_bind_like_volumes_count_as_read_write_sources(self, client, as_writer, engine, bind_root):
        assert (
            bind(
                client, as_writer, name="holder", mounts=[{"type": "bind", "source": f"{bind_root}/q", "target": "/w"}]
            ).status_code
            == 201
        )
        disguised = {"type": "none", "o": "bind", "device": f"{bind_root}/q/dev"}
        r = client.post("/api/v1/volumes", json={"name": "disguised", "driver_opts": disguised}, headers=as_writer)
        assert r.status_code == 403
        assert "disguised" not in engine.volumes and not (bind_root / "q" / "dev").exists()
        device = {"type": "none", "o": "bind", "device": f"{bind_root}/r/dev"}
        assert (
            client.post("/api/v1/volumes", json={"name": "dev", "driver_opts": device}, headers=as_writer).status_code
            == 201
        )
        before = snapshot(engine, bind_root)
        above = bind(
            client, as_writer, name="above", mounts=[{"type": "bind", "source": f"{bind_root}/r", "target": "/w"}]
        )
        assert above.status_code == 403
        assert "volume dev" in above.get_json()["detail"]
        inside = bind(
            client,
            as_writer,
            name="inside",
            mounts=[{"type": "bind", "source": f"{bind_root}/r/dev/x", "target": "/w", "read_only": True}],
        )
        assert inside.status_code == 403  # the device is writable through any container that mounts it
        assert snapshot(engine, bind_root) == before

    def test_start_walks_the_source_again_and_refuses_a_swapped_one(
        self, client, as_writer, engine, bind_root, tmp_path
    ):
        made = bind(
            client,
            as_writer,
            name="swap",
            start=False,
            mounts=[{"type": "bind", "source": f"{bind_root}/s/d", "target": "/w"}],
        )
        assert made.status_code == 201
        (bind_root / "s" / "d").rename(bind_root / "s" / "d.old")
        os.symlink("/", bind_root / "s" / "d")
        before = snapshot(engine, tmp_path)
        r = client.post("/api/v1/bindings/swap/start", headers=as_writer)
        assert r.status_code == 403
        assert f"{bind_root}/s/d is a symbolic link" in r.get_json()["detail"]
        assert client.get("/api/v1/bindings/swap", headers=as_writer).get_json()["state"] == "created"
        assert snapshot(engine, tmp_path) == before

    def test_start_refuses_a_source_whose_parent_became_writable_by_others(self, client, as_writer, engine, bind_root):
        assert (
            bind(
                client,
                as_writer,
                name="perm",
                start=False,
                mounts=[{"type": "bind", "source": f"{bind_root}/t/d", "target": "/w"}],
            ).status_code
            == 201
        )
        os.chmod(bind_root / "t", 0o777)
        before = snapshot(engine, bind_root)
        r = client.post("/api/v1/bindings/perm/start", headers=as_writer)
        assert r.status_code == 403
        assert f"{bind_root}/t is writable by group or others" in r.get_json()["detail"]
        assert snapshot(engine, bind_root) == before

    @pytest.mark.parametrize("network", ["host", "container:abc", "macvlan0"])
    def test_networks_outside_the_policy_are_refused(self, client, as_writer, engine, bind_root, network):
        mounts = [{"type": "volume", "target": "/data"}, {"type": "bind", "source": f"{bind_root}/n", "target": "/w"}]
        assert bind(client, as_writer, network=network, mounts=mounts).status_code == 403
        assert nothing_made(engine, bind_root)

    def test_images_are_checked_against_the_allowed_globs(self, engine, bind_root, tmp_path):
        from service.app import create_app
        from service.config import Settings

        app = create_app(
            Settings(tokens={"w": ["write"]}, allowed_images=("busybox:*",), allowed_networks=("none",)),
            engine=engine,
        )
        c = app.test_client()
        h = {"Authorization": "Bearer w"}
        engine.images.add("alpine:3")
        before = snapshot(engine, tmp_path)
        mounts = [{"type": "volume", "target": "/data"}, {"type": "volume", "target": "/cache"}]
        assert bind(c, h, image="alpine:3", mounts=mounts).status_code == 403
        assert snapshot(engine, tmp_path) == before
        assert bind(c, h, image="busybox:stable").status_code == 201
        assert [c.labels[label.ROLE] for c in engine.containers.values()] == ["binding"]

    def test_a_missing_image_that_cannot_be_pulled_is_422(self, client, as_writer, engine, bind_root):
        mounts = [{"type": "volume", "target": "/data"}, {"type": "bind", "source": f"{bind_root}/i", "target": "/w"}]
        r = bind(client, as_writer, image="nginx:1.27", mounts=mounts)
        assert r.status_code == 422
        assert "image" in r.get_json()["errors"]
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
            ("?state=created", ["foreign", "idle"]),
            ("?label=tier=front", ["web"]),
            ("?sharing_group=nogroup", []),
        ],
    )
    def test_filters(self, client, as_reader, hosts, query, expected):
        assert self.names(client, as_reader, query) == expected

    def test_foreign_containers_are_shown_without_their_environment(self, client, as_reader, hosts):
        body = client.get("/api/v1/bindings/foreign", headers=as_reader).get_json()
        assert (body["managed"], body["environment"]) == (False, None)

    def test_dockvol_helpers_are_not_bindings(self, client, as_reader, hosts):
        assert client.get("/api/v1/bindings/helper", headers=as_reader).status_code == 404

    def test_listing_costs_one_engine_call_whatever_the_host_holds(self, client, as_reader, engine, hosts):
        for i in range(200):
            engine.add_container(f"extra{i}", {"site-data": f"/m{i}"})
        engine.calls.clear()
        assert len(self.names(client, as_reader, "?page_size=1000")) == 203
        assert sum(engine.calls.values()) == 1

    def test_a_volume_a_binding_uses_cannot_be_deleted(self, client, as_writer, engine, tmp_path, hosts):
        before = snapshot(engine, tmp_path)
        r = client.delete("/api/v1/volumes/site-data", headers=as_writer)
        assert r.status_code == 409
        use = {"container": "web", "node": "node-1", "binding": "web", "target": "/srv", "read_only": False}
        assert use in r.get_json()["used_by"]
        assert snapshot(engine, tmp_path) == before

    @pytest.mark.parametrize(
        "call",
        [
            ("put", "/api/v1/bindings/foreign"),
            ("delete", "/api/v1/bindings/foreign"),
            ("post", "/api/v1/bindings/foreign/start"),
            ("post", "/api/v1/bindings/foreign/stop"),
        ],
    )
    def test_foreign_containers_are_read_only(self, client, as_writer, engine, tmp_path, hosts, call):
        method, path = call
        kwargs = {"json": {"image": "busybox:stable", "network": "none"}} if method == "put" else {}
        before = snapshot(engine, tmp_path)
        r = getattr(client, method)(path, headers=as_writer, **kwargs)
        assert r.status_code == 403
        assert snapshot(engine, tmp_path) == before


class TestReplace:
    @pytest.fixture
    def running(self, client, as_writer, site, bind_root):
        r = bind(
            client,
            as_writer,
            name="app",
            mounts=[
                {"type": "volume", "target": "/data"},
                {"type": "volume", "target": "/cache"},
                {"type": "volume", "source": site, "target": "/srv"},
                {"type": "bind", "source": f"{bind_root}/app", "target": "/www"},
            ],
        )
        return r.get_json()

    def put(self, client, headers, **body):
        body.setdefault("image", "busybox:stable")
        body.setdefault("network", "none")
        return client.put("/api/v1/bindings/app", json=body, headers=headers)

    def test_new_image_keeps_named_anonymous_and_host_data(self, client, as_writer, engine, running, bind_root, site):
        engine.images.add("busybox:v2")
        old = {m["target"]: m["name"] for m in running["mounts"]}
        r = self.put(
            client,
            as_writer,
            image="busybox:v2",
            mounts=[
                {"type": "volume", "target": "/data"},
                {"type": "volume", "target": "/new"},
                {"type": "volume", "source": site, "target": "/srv"},
                {"type": "bind", "source": f"{bind_root}/app", "target": "/www"},
            ],
        )
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        new = {m["target"]: m["name"] for m in body["mounts"]}
        assert (body["image"], body["state"]) == ("busybox:v2", "running")
        assert body["id"] != running["id"]
        assert new["/data"] == old["/data"]  # carried over
        assert new["/srv"] == site
        assert new["/new"] not in old.values()
        assert old["/cache"] in engine.volumes  # no longer mounted, never deleted
        assert [c.name for c in engine.containers.values()] == ["app"]

    def test_a_stopped_binding_stays_stopped_unless_told(self, client, as_writer, running):
        client.post("/api/v1/bindings/app/stop", headers=as_writer)
        assert self.put(client, as_writer).get_json()["state"] == "created"
        assert self.put(client, as_writer, start=True).get_json()["state"] == "running"

    @pytest.mark.parametrize("fail", ["create_container", "start_container"])
    def test_a_failed_replace_leaves_the_old_binding_as_it_was(
        self, client, as_writer, engine, running, bind_root, tmp_path, monkeypatch, fail
    ):
        before = snapshot(engine, tmp_path)
        refusing_the_binding(engine, monkeypatch, fail)
        r = self.put(
            client,
            as_writer,
            mounts=[
                {"type": "volume", "target": "/other"},
                {"type": "bind", "source": f"{bind_root}/more", "target": "/more"},
            ],
        )
        assert r.status_code == 422
        assert engine.calls["rename_container"] == 2  # it got as far as stepping the old one aside
        assert snapshot(engine, tmp_path) == before
        (c,) = engine.containers.values()
        assert (c.name, c.id, c.state) == ("app", running["id"], "running")

    def test_if_match_guards_the_replace(self, client, as_writer, as_reader, engine, tmp_path, running):
        etag = client.get("/api/v1/bindings/app", headers=as_reader).headers["ETag"]
        before = snapshot(engine, tmp_path)
        stale = self.put(client, {**as_writer, "If-Match": '"stale"'})
        assert stale.status_code == 412
        assert snapshot(engine, tmp_path) == before
        assert self.put(client, {**as_writer, "If-Match": etag}).status_code == 200

    def test_the_body_name_must_match(self, client, as_writer, engine, tmp_path, running):
        before = snapshot(engine, tmp_path)
        assert self.put(client, as_writer, name="other").status_code == 422
        assert snapshot(engine, tmp_path) == before

    def test_replacing_a_missing_binding_is_404(self, client, as_writer, engine, tmp_path, running):
        before = snapshot(engine, tmp_path)
        r = client.put("/api/v1/bindings/ghost", json={"image": "busybox:stable"}, headers=as_writer)
        assert r.status_code == 404
        assert snapshot(engine, tmp_path) == before


class TestDeleteStartStop:
    @pytest.fixture
    def app_binding(self, client, as_writer, site):
        return bind(
            client,
            as_writer,
            name="app",
            mounts=[{"type": "volume", "target": "/data"}, {"type": "volume", "source": site, "target": "/srv"}],
        ).get_json()

    def test_delete_keeps_every_volume(self, client, as_writer, engine, app_binding, site):
        volumes = set(engine.volumes)
        assert client.delete("/api/v1/bindings/app", headers=as_writer).status_code == 204
        assert engine.containers == {}
        assert set(engine.volumes) == volumes

    def test_delete_can_remove_its_anonymous_volumes_but_never_named_ones(
        self, client, as_writer, engine, app_binding, site
    ):
        r = client.delete("/api/v1/bindings/app?remove_anonymous_volumes=true", headers=as_writer)
        assert r.status_code == 204
        assert set(engine.volumes) == {site}

    def test_stop_and_start(self, client, as_writer, app_binding):
        assert client.post("/api/v1/bindings/app/stop", headers=as_writer).get_json()["state"] == "exited"
        assert client.post("/api/v1/bindings/app/start", headers=as_writer).get_json()["state"] == "running"

    def test_a_reader_cannot_change_bindings(self, client, as_reader, engine, app_binding):
        engine.calls.clear()
        assert client.post("/api/v1/bindings/app/stop", headers=as_reader).status_code == 403
        assert client.delete("/api/v1/bindings/app", headers=as_reader).status_code == 403
        assert sum(engine.calls.values()) == 0


def test_a_network_the_engine_lacks_is_422_and_leaves_nothing(client, as_writer, engine, bind_root, monkeypatch):
    from service.errors import NotFound

    real_create = engine.create_container

    def no_such_network(spec):
        if spec.labels.get(label.ROLE) == "lock":
            return real_create(spec)
        raise NotFound("not found in the engine")

    monkeypatch.setattr(engine, "create_container", no_such_network)
    r = bind(client, as_writer, mounts=[{"type": "volume", "target": "/data"}])
    assert r.status_code == 422
    assert "network" in r.get_json()["errors"]
    assert nothing_made(engine, bind_root)


def test_bind_checks_ask_the_engine_for_its_data_root_once(client, as_writer, engine, bind_root):
    for i in range(3):
        mounts = [{"type": "bind", "source": f"{bind_root}/b{i}-{j}", "target": f"/w{j}"} for j in range(3)]
        assert bind(client, as_writer, name=f"many{i}", mounts=mounts).status_code == 201
    assert engine.calls["info"] == 1


def test_dockvols_own_container_mounting_a_bind_root_does_not_block_binds_under_it(
    client, as_writer, engine, bind_root
):
    import dataclasses

    outer = [{"type": "bind", "source": f"{bind_root}/outer", "target": "/all"}]
    assert bind(client, as_writer, name="writer-above", mounts=outer).status_code == 201
    inner = [{"type": "bind", "source": f"{bind_root}/outer/inner", "target": "/www"}]
    r = bind(client, as_writer, name="inner1", mounts=inner)
    assert r.status_code == 403 and "writer-above" in r.get_json()["detail"]
    (above,) = [c for c in engine.containers.values() if c.name == "writer-above"]
    engine.containers[above.id] = dataclasses.replace(above, labels={**above.labels, label.ROLE: label.SERVICE_ROLE})
    assert bind(client, as_writer, name="inner2", mounts=inner).status_code == 201
