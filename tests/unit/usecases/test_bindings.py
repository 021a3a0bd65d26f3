"""Bindings (service/domain/bindings.py), called directly: create, replace, delete, start and
stop, the policies they apply, and what each refusal or failure leaves alone (docs/design.md
sections 4 and 6)."""

from __future__ import annotations

import dataclasses
import os

import pytest

from service.domain import labels as label
from service.domain.bindings import BindingQuery
from service.domain.versions import IfMatch
from service.errors import (
    Conflict,
    EngineFailure,
    EngineRejected,
    Forbidden,
    InvalidInput,
    NotFound,
    PreconditionFailed,
)

from ..engine_state import snapshot
from .conftest import MISSING_COMMAND, bind, leftovers, spec, volume


def anonymous(engine):
    return {n for n, v in engine.volumes.items() if v.labels.get(label.ANONYMOUS) == "true"}


def refusing_bindings(engine, monkeypatch):
    """The engine refuses to create a binding's container; dockvol's own (locks) it still makes."""
    real_create = engine.create_container

    def refuse(s):
        if s.labels.get(label.ROLE) == "binding":
            raise EngineRejected("the engine refused this configuration")
        return real_create(s)

    monkeypatch.setattr(engine, "create_container", refuse)


@pytest.fixture
def site(volumes):
    return volumes.create("site", "local", {}, {}).name


class TestCreate:
    def test_makes_and_starts_the_container_with_its_mounts(self, bindings, engine, bind_root, site):
        made = bindings.create(
            spec(mounts=(volume("/data"), volume("/srv", site, read_only=True), bind(bind_root / "www", "/www")))
        )
        assert (made.name, made.state, made.managed, made.restart) == ("app", "running", True, "unless-stopped")
        (anon,) = anonymous(engine)
        assert engine.volumes[anon].labels[label.BINDING] == "app"
        assert {m.target: (m.name or m.source) for m in made.mounts} == {
            "/data": anon,
            "/srv": site,
            "/www": str(bind_root / "www"),
        }
        assert (bind_root / "www").is_dir()
        assert leftovers(engine) == []

    def test_start_false_leaves_it_created(self, bindings):
        assert bindings.create(spec(start=False)).state == "created"

    @pytest.mark.parametrize("restart", ["no", "on-failure", "unless-stopped", "always"])
    def test_the_restart_policy_reaches_the_engine(self, bindings, engine, restart):
        made = bindings.create(spec(restart=restart))
        assert made.restart == engine.specs[made.id].restart == restart

    def test_with_no_network_named_the_default_one_applies(self, wire, engine):
        made = wire(default_network="bridge").bindings.create(spec(network=None))
        assert made.network == engine.specs[made.id].network == "bridge"

    def test_a_bind_source_reaches_the_engine_resolved_and_rprivate(self, bindings, engine, bind_root):
        (bind_root / "real").mkdir()
        os.symlink(bind_root / "real", bind_root / "alias")
        made = bindings.create(spec(mounts=(bind(f"{bind_root}/alias/", "/www"),)))
        (mount,) = engine.specs[made.id].mounts
        assert (mount.source, mount.propagation) == (str(bind_root / "real"), "rprivate")

    def test_an_image_that_is_not_allowed_is_forbidden_and_makes_nothing(self, wire, engine, bind_root, tmp_path):
        bindings = wire(allowed_images=("busybox:*",)).bindings
        engine.images.add("alpine:3")
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden, match="image alpine:3"):
            bindings.create(spec(image="alpine:3", mounts=(volume("/data"), bind(bind_root / "new", "/www"))))
        assert snapshot(engine, tmp_path) == before
        assert not (bind_root / "new").exists()

    @pytest.mark.parametrize("network", ["host", "container:abc", "macvlan0"])
    def test_a_network_outside_the_policy_is_forbidden_and_makes_nothing(
        self, bindings, engine, bind_root, tmp_path, network
    ):
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden, match="network"):
            bindings.create(spec(network=network, mounts=(volume("/data"), bind(bind_root / "new", "/www"))))
        assert snapshot(engine, tmp_path) == before

    def test_an_image_missing_with_pull_never_is_invalid_and_makes_nothing(self, wire, engine, bind_root, tmp_path):
        bindings = wire(pull="never").bindings
        before = snapshot(engine, tmp_path)
        with pytest.raises(InvalidInput) as refused:
            bindings.create(spec(image="nginx:1.27", mounts=(volume("/data"), bind(bind_root / "new", "/www"))))
        assert "image" in refused.value.extra["errors"]
        assert engine.calls["pull_image"] == 0
        assert snapshot(engine, tmp_path) == before

    def test_an_image_that_cannot_be_pulled_is_invalid_and_makes_nothing(self, bindings, engine, bind_root, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(InvalidInput) as refused:
            bindings.create(spec(image="nginx:1.27", mounts=(volume("/data"), bind(bind_root / "new", "/www"))))
        assert "image" in refused.value.extra["errors"]
        assert engine.calls["pull_image"] == 1
        assert snapshot(engine, tmp_path) == before

    def test_a_network_the_engine_lacks_is_invalid_and_makes_nothing(self, bindings, engine, tmp_path, monkeypatch):
        real_create = engine.create_container

        def no_such_network(s):
            if s.labels.get(label.ROLE) == "lock":
                return real_create(s)
            raise NotFound("not found in the engine")

        monkeypatch.setattr(engine, "create_container", no_such_network)
        before = snapshot(engine, tmp_path)
        with pytest.raises(InvalidInput) as refused:
            bindings.create(spec(mounts=(volume("/data"),)))
        assert "network" in refused.value.extra["errors"]
        assert snapshot(engine, tmp_path) == before

    def test_a_taken_name_is_a_conflict_and_the_existing_container_stays_as_it_is(
        self, bindings, engine, bind_root, tmp_path
    ):
        bindings.create(spec(mounts=(volume("/data"),)))
        before = snapshot(engine, tmp_path)
        with pytest.raises(Conflict, match="app exists already"):
            bindings.create(spec(image="busybox:other", mounts=(volume("/x"), bind(bind_root / "new", "/www"))))
        assert snapshot(engine, tmp_path) == before

    def test_a_missing_named_volume_is_invalid_and_makes_nothing(self, bindings, engine, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(InvalidInput) as refused:
            bindings.create(spec(mounts=(volume("/a"), volume("/b", "nope"))))
        assert "mounts.1.source" in refused.value.extra["errors"]
        assert snapshot(engine, tmp_path) == before

    def test_a_target_twice_is_invalid_and_makes_nothing(self, bindings, engine, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(InvalidInput, match="already mounted"):
            bindings.create(spec(mounts=(volume("/a"), volume("/a"))))
        assert snapshot(engine, tmp_path) == before

    @pytest.mark.parametrize("where", ["outside", "sibling", "system", "symlink-out"])
    def test_a_bind_source_outside_the_roots_is_refused_with_nothing_made(
        self, bindings, engine, bind_root, tmp_path, where
    ):
        (tmp_path / "secret").mkdir()
        os.symlink(tmp_path / "secret", bind_root / "escape")
        source = {
            "outside": tmp_path / "elsewhere" / "x",
            "sibling": f"{bind_root}2/x",
            "system": "/etc/dockvol-test",
            "symlink-out": bind_root / "escape" / "sub",
        }[where]
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden):
            bindings.create(spec(mounts=(volume("/data"), bind(source, "/www"))))
        assert snapshot(engine, tmp_path) == before

    def test_the_engines_socket_and_data_root_are_forbidden_inside_a_root(self, wire, engine, tmp_path):
        engine.data_root = str(tmp_path / "engine-root")
        bindings = wire(bind_roots=(str(tmp_path),), docker_host=f"unix://{tmp_path}/engine.sock").bindings
        before = snapshot(engine, tmp_path)
        for source in (tmp_path / "engine.sock", tmp_path / "engine-root" / "volumes" / "x" / "_data"):
            with pytest.raises(Forbidden):
                bindings.create(spec(mounts=(bind(source, "/w"),)))
        assert snapshot(engine, tmp_path) == before

    def test_bind_checks_ask_the_engine_for_its_data_root_once(self, bindings, engine, bind_root):
        for i in range(3):
            bindings.create(spec(f"many{i}", mounts=tuple(bind(bind_root / f"b{i}-{j}", f"/w{j}") for j in range(3))))
        assert engine.calls["info"] == 1

    def test_an_engine_that_refuses_to_create_it_takes_back_everything(
        self, bindings, engine, bind_root, tmp_path, monkeypatch
    ):
        refusing_bindings(engine, monkeypatch)
        before = snapshot(engine, tmp_path)
        with pytest.raises(EngineRejected):
            bindings.create(spec(mounts=(volume("/data"), bind(bind_root / "new" / "deep", "/www"))))
        assert snapshot(engine, tmp_path) == before

    def test_an_engine_failure_takes_back_everything(self, bindings, engine, bind_root, tmp_path, monkeypatch):
        def fail(*a, **k):
            raise EngineFailure("the engine refused the request")

        monkeypatch.setattr(engine, "start_container", fail)
        before = snapshot(engine, tmp_path)
        with pytest.raises(EngineFailure):
            bindings.create(spec(mounts=(volume("/data"), bind(bind_root / "new", "/www"))))
        assert snapshot(engine, tmp_path) == before


class TestNestedBindSources:
    """A read-write bind source may not hold, or lie inside, another container's source
    (docs/design.md section 4); read-only ones may nest."""

    def test_a_source_inside_a_writable_source_is_forbidden_and_nothing_else_changes(
        self, bindings, engine, bind_root, tmp_path
    ):
        bindings.create(spec("outer", mounts=(bind(bind_root / "shared", "/w"),)))
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden, match="container outer"):
            bindings.create(spec("inner", mounts=(volume("/data"), bind(bind_root / "shared" / "sub", "/w"))))
        assert snapshot(engine, tmp_path) == before
        assert bindings.create(spec("same", mounts=(bind(bind_root / "shared", "/w"),))).state == "running"

    def test_a_writable_source_inside_a_read_only_one_is_fine(self, bindings, bind_root):
        bindings.create(spec("ro", mounts=(bind(bind_root / "ro", "/w", read_only=True),)))
        assert bindings.create(spec("in-ro", mounts=(bind(bind_root / "ro" / "sub", "/w"),))).state == "running"

    def test_a_writable_source_above_an_existing_source_is_forbidden_naming_it(
        self, bindings, engine, bind_root, tmp_path
    ):
        bindings.create(spec("child", mounts=(bind(bind_root / "p" / "child", "/w", read_only=True),)))
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden, match=f"{bind_root}/p/child"):
            bindings.create(spec("parent", mounts=(bind(bind_root / "p", "/w"),)))
        assert snapshot(engine, tmp_path) == before
        assert bindings.create(spec("ro-parent", mounts=(bind(bind_root / "p", "/w", read_only=True),))).managed

    def test_two_sources_of_one_request_may_not_nest_under_a_writable_one(self, bindings, engine, bind_root, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden):
            bindings.create(
                spec(mounts=(bind(bind_root / "n", "/a"), bind(bind_root / "n" / "inner", "/b", read_only=True)))
            )
        assert snapshot(engine, tmp_path) == before

    def test_bind_like_volumes_count_as_writable_sources(self, bindings, volumes, engine, bind_root, tmp_path):
        bindings.create(spec("holder", mounts=(bind(bind_root / "q", "/w"),)))
        bind_like = {"type": "none", "o": "bind"}
        with pytest.raises(Forbidden):
            volumes.create("disguised", "local", {**bind_like, "device": f"{bind_root}/q/dev"}, {})
        assert "disguised" not in engine.volumes and not (bind_root / "q" / "dev").exists()
        volumes.create("dev", "local", {**bind_like, "device": f"{bind_root}/r/dev"}, {})
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden, match="volume dev"):
            bindings.create(spec("above", mounts=(bind(bind_root / "r", "/w"),)))
        with pytest.raises(Forbidden):  # the device is writable through any container that mounts it
            bindings.create(spec("inside", mounts=(bind(bind_root / "r" / "dev" / "x", "/w", read_only=True),)))
        assert snapshot(engine, tmp_path) == before

    def test_dockvols_own_container_mounting_a_bind_root_does_not_block_sources_under_it(
        self, bindings, engine, bind_root
    ):
        made = bindings.create(spec("writer-above", mounts=(bind(bind_root / "outer", "/all"),)))
        inner = (bind(bind_root / "outer" / "inner", "/www"),)
        with pytest.raises(Forbidden, match="writer-above"):
            bindings.create(spec("inner1", mounts=inner))
        above = engine.containers[made.id]
        engine.containers[made.id] = dataclasses.replace(above, labels={**above.labels, label.ROLE: label.SERVICE_ROLE})
        assert bindings.create(spec("inner2", mounts=inner)).state == "running"

    def test_an_engine_that_refuses_to_start_it_takes_back_everything(
        self, bindings, engine, bind_root, tmp_path, refuses_missing_commands
    ):
        before = snapshot(engine, tmp_path)
        with pytest.raises(EngineRejected):
            bindings.create(
                spec(command=MISSING_COMMAND, mounts=(volume("/data"), bind(bind_root / "new" / "deep", "/www")))
            )
        assert snapshot(engine, tmp_path) == before


class TestReplace:
    @pytest.fixture
    def app(self, bindings, bind_root, site):
        return bindings.create(
            spec(mounts=(volume("/data"), volume("/cache"), volume("/srv", site), bind(bind_root / "app", "/www")))
        )

    def test_named_anonymous_and_host_data_are_carried_over(self, bindings, engine, app, bind_root, site):
        engine.images.add("busybox:v2")
        old = {m.target: m.name for m in app.mounts}
        new = bindings.replace(
            "app",
            spec(
                image="busybox:v2",
                mounts=(volume("/data"), volume("/new"), volume("/srv", site), bind(bind_root / "app", "/www")),
            ),
        )
        mounts = {m.target: m.name for m in new.mounts}
        assert (new.image, new.state) == ("busybox:v2", "running") and new.id != app.id
        assert mounts["/data"] == old["/data"] and mounts["/srv"] == site
        assert mounts["/new"] not in old.values()
        assert old["/cache"] in engine.volumes  # no longer mounted, never deleted
        assert [c.name for c in engine.containers.values()] == ["app"]

    def test_a_stopped_binding_stays_stopped_unless_told(self, bindings, app):
        bindings.stop("app")
        assert bindings.replace("app", spec()).state == "created"
        assert bindings.replace("app", spec(start=True)).state == "running"

    def test_an_engine_that_refuses_to_start_the_new_one_leaves_the_old_binding_as_it_was(
        self, bindings, engine, app, bind_root, tmp_path, refuses_missing_commands
    ):
        before = snapshot(engine, tmp_path)
        with pytest.raises(EngineRejected):
            bindings.replace(
                "app",
                spec(command=MISSING_COMMAND, mounts=(volume("/other"), bind(bind_root / "more", "/more"))),
            )
        assert snapshot(engine, tmp_path) == before
        kept = bindings.get("app")
        assert (kept.id, kept.state) == (app.id, "running")

    def test_a_stopped_binding_whose_replace_fails_stays_stopped(
        self, bindings, engine, app, tmp_path, refuses_missing_commands
    ):
        bindings.stop("app")
        before = snapshot(engine, tmp_path)
        with pytest.raises(EngineRejected):
            bindings.replace("app", spec(command=MISSING_COMMAND, start=True))
        assert snapshot(engine, tmp_path) == before
        assert before.container("app")["state"] == "exited"

    def test_an_engine_that_refuses_the_new_container_leaves_the_old_one(
        self, bindings, engine, app, tmp_path, monkeypatch
    ):
        refusing_bindings(engine, monkeypatch)
        before = snapshot(engine, tmp_path)
        with pytest.raises(EngineRejected):
            bindings.replace("app", spec(mounts=(volume("/other"),)))
        assert snapshot(engine, tmp_path) == before

    def test_an_image_that_is_not_allowed_is_forbidden_and_the_old_binding_stays(self, wire, engine, app, tmp_path):
        strict = wire(allowed_images=("busybox:stable",)).bindings
        engine.images.add("alpine:3")
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden):
            strict.replace("app", spec(image="alpine:3"))
        assert snapshot(engine, tmp_path) == before

    def test_a_failed_precondition_changes_nothing(self, bindings, engine, app, tmp_path):
        before = snapshot(engine, tmp_path)

        stale = IfMatch(frozenset({"a-version-read-before"}))

        with pytest.raises(PreconditionFailed):
            bindings.replace("app", spec(image="busybox:stable", mounts=(volume("/x"),)), stale)
        assert snapshot(engine, tmp_path) == before

    def test_a_container_dockvol_did_not_make_is_forbidden_and_stays(self, bindings, engine, site, tmp_path):
        engine.add_container("foreign", {site: "/x"})
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden, match="not created by dockvol"):
            bindings.replace("foreign", spec("foreign"))
        with pytest.raises(Forbidden):
            bindings.delete("foreign", True)
        with pytest.raises(Forbidden):
            bindings.stop("foreign")
        with pytest.raises(Forbidden):
            bindings.start("foreign")
        assert snapshot(engine, tmp_path) == before

    def test_a_missing_binding_is_not_found(self, bindings, engine, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(NotFound):
            bindings.replace("ghost", spec("ghost"))
        assert snapshot(engine, tmp_path) == before


class TestDeleteStartStop:
    @pytest.fixture
    def app(self, bindings, site):
        return bindings.create(spec(mounts=(volume("/data"), volume("/srv", site))))

    def test_delete_keeps_every_volume_by_default(self, bindings, engine, app):
        volumes = set(engine.volumes)
        bindings.delete("app", False)
        assert engine.containers == {} and set(engine.volumes) == volumes

    def test_delete_removes_its_own_anonymous_volumes_when_asked_never_named_ones(self, bindings, engine, app, site):
        bindings.delete("app", True)
        assert set(engine.volumes) == {site}

    def test_an_anonymous_volume_someone_else_mounts_now_is_kept(self, bindings, engine, app, site):
        (anon,) = anonymous(engine)
        engine.add_container("borrower", {anon: "/b"})
        bindings.delete("app", True)
        assert set(engine.volumes) == {site, anon}
        assert [c.name for c in engine.containers.values()] == ["borrower"]

    def test_a_failed_precondition_deletes_nothing(self, bindings, engine, app, tmp_path):
        before = snapshot(engine, tmp_path)

        stale = IfMatch(frozenset({"a-version-read-before"}))

        with pytest.raises(PreconditionFailed):
            bindings.delete("app", True, stale)
        assert snapshot(engine, tmp_path) == before

    def test_stop_then_start(self, bindings, app):
        assert bindings.stop("app").state == "exited"
        assert bindings.start("app").state == "running"

    def test_start_walks_the_bind_source_again_and_refuses_a_swapped_one(self, bindings, engine, bind_root, tmp_path):
        bindings.create(spec("swap", start=False, mounts=(bind(bind_root / "s" / "d", "/w"),)))
        (bind_root / "s" / "d").rename(bind_root / "s" / "d.old")
        os.symlink("/", bind_root / "s" / "d")
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden, match="is a symbolic link"):
            bindings.start("swap")
        assert snapshot(engine, tmp_path) == before
        assert engine.calls["start_container"] == 0

    def test_start_refuses_a_source_whose_parent_became_writable_by_others(self, bindings, engine, bind_root, tmp_path):
        bindings.create(spec("perm", start=False, mounts=(bind(bind_root / "t" / "d", "/w"),)))
        os.chmod(bind_root / "t", 0o777)
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden, match=f"{bind_root}/t is writable by group or others"):
            bindings.start("perm")
        assert snapshot(engine, tmp_path) == before


class TestList:
    def test_hides_dockvols_own_containers_and_filters(self, bindings, engine, site):
        bindings.create(spec("web", labels={"tier": "front"}, mounts=(volume("/srv", site),)))
        bindings.create(spec("idle", start=False))
        engine.add_container("foreign", {site: "/x"})
        engine.add_container("helper", labels={label.MANAGED: "true", label.ROLE: "helper"})
        names = lambda **q: [b.name for b in bindings.list(BindingQuery(**q))]  # noqa: E731
        assert names() == ["foreign", "idle", "web"]
        assert names(volume=site) == ["foreign", "web"]
        assert names(state="running") == ["web"]
        assert names(state="created") == ["foreign", "idle"]
        assert names(labels=["tier=front"]) == ["web"]
        assert names(sharing_group="nogroup") == []
        with pytest.raises(NotFound):
            bindings.get("helper")

    def test_a_container_dockvol_did_not_make_is_shown_without_its_environment(self, bindings, engine):
        engine.add_container("foreign")
        shown = bindings.get("foreign")
        assert (shown.managed, shown.environment, shown.restart) == (False, None, None)

    def test_a_binding_mid_replace_is_shown_under_its_own_name_once(self, bindings, engine, site):
        made = bindings.create(spec("web"))
        record = engine.containers[made.id]
        engine.containers[made.id] = dataclasses.replace(record, name="dockvol-aside-op1-r")
        assert [(b.name, b.id) for b in bindings.list(BindingQuery())] == [("web", made.id)]
        assert bindings.get("web").id == made.id
