"""Sharing groups (service/domain/sharing.py), called directly: the infrastructure container,
members joining it, and deletes, plain and cascading (docs/design.md section 5)."""

from __future__ import annotations

import pytest

from service.domain import labels as label
from service.domain.bindings import BindingQuery
from service.domain.sharing import WAIT
from service.domain.versions import IfMatch
from service.errors import Conflict, EngineRejected, Forbidden, InvalidInput, NotFound, PreconditionFailed

from ..engine_state import snapshot
from .conftest import bind, leftovers, spec, volume


def member(name, group="infracon", mode="rw", **fields):
    fields.setdefault("network", None)
    return spec(name, sharing_group=group, sharing_mode=mode, **fields)


@pytest.fixture
def infracon(groups, bind_root):
    return groups.create("infracon", [bind(bind_root / "infracon", "/data/web/html")], ["network", "ipc"])


class TestCreate:
    def test_starts_an_infrastructure_container_holding_the_mounts(self, groups, engine, infracon, bind_root):
        assert (infracon.name, infracon.share, infracon.members) == ("infracon", ("ipc", "network"), ())
        assert infracon.infra.state == "running"
        assert engine.containers[infracon.infra.id].labels[label.ROLE] == "infra"
        assert infracon.mounts[0].source == str(bind_root / "infracon")
        spec_ = engine.specs[infracon.infra.id]
        assert (spec_.command, spec_.ipc, spec_.restart, spec_.image) == (
            WAIT,
            "shareable",
            "unless-stopped",
            "busybox:stable",  # DOCKVOL_INFRA_IMAGE's default
        )
        assert leftovers(engine) == []

    def test_a_taken_name_is_a_conflict_and_what_holds_it_stays(self, groups, bindings, engine, tmp_path, bind_root):
        bindings.create(spec("taken"))
        before = snapshot(engine, tmp_path)
        with pytest.raises(Conflict, match="taken exists already"):
            groups.create("taken", [volume("/v"), bind(bind_root / "g", "/b")], ["network"])
        assert snapshot(engine, tmp_path) == before

    def test_a_bind_source_outside_the_roots_is_forbidden_and_makes_nothing(self, groups, engine, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden):
            groups.create("g", [volume("/v"), bind(tmp_path / "elsewhere", "/b")], ["network"])
        assert snapshot(engine, tmp_path) == before

    def test_an_engine_that_refuses_to_start_it_takes_back_everything(
        self, groups, engine, bind_root, tmp_path, monkeypatch
    ):
        def refuse(*a, **k):
            raise EngineRejected("the engine refused this configuration")

        monkeypatch.setattr(engine, "start_container", refuse)
        before = snapshot(engine, tmp_path)
        with pytest.raises(EngineRejected):
            groups.create("g", [volume("/v"), bind(bind_root / "g" / "deep", "/b")], ["network"])
        assert snapshot(engine, tmp_path) == before

    def test_a_network_the_policy_refuses_makes_nothing(self, wire, engine, tmp_path):
        groups = wire(default_network="bridge", allowed_networks=("none",)).sharing_groups
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden, match="network bridge"):
            groups.create("g", [volume("/v")], ["network"])
        assert snapshot(engine, tmp_path) == before


class TestMembers:
    def test_members_join_with_volumes_from_and_the_shared_namespaces(self, bindings, groups, engine, infracon):
        joined = f"container:{infracon.infra.id}"
        nginx = bindings.create(member("nginx"))
        made = bindings.create(member("tomcat", mode="ro"))
        assert (made.sharing_group, made.sharing_mode, made.network) == ("infracon", "ro", joined)
        assert [(m.target, m.read_only) for m in made.mounts] == [("/data/web/html", True)]
        spec_ = engine.specs[made.id]
        assert (spec_.volumes_from, spec_.ipc, spec_.pid) == ((f"{infracon.infra.id}:ro",), joined, None)
        assert engine.specs[nginx.id].volumes_from == (f"{infracon.infra.id}:rw",)
        assert groups.get("infracon").members == ("nginx", "tomcat")
        assert [b.name for b in bindings.list(BindingQuery(sharing_group="infracon"))] == ["nginx", "tomcat"]

    def test_a_stopped_infrastructure_container_is_started_first(self, bindings, groups, engine, infracon):
        engine.stop_container("infracon")
        bindings.create(member("nginx"))
        assert groups.get("infracon").infra.state == "running"

    def test_joining_a_missing_group_is_invalid_and_makes_nothing(self, bindings, engine, tmp_path, bind_root):
        before = snapshot(engine, tmp_path)
        with pytest.raises(InvalidInput) as refused:
            bindings.create(member("lonely", group="ghost", mounts=(volume("/v"), bind(bind_root / "x", "/x"))))
        assert "sharing_group" in refused.value.extra["errors"]
        assert snapshot(engine, tmp_path) == before

    def test_a_member_may_not_reuse_a_group_target(self, bindings, engine, infracon, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(InvalidInput) as refused:
            bindings.create(member("clash", mounts=(volume("/own"), volume("/data/web/html"))))
        assert "mounts.1.target" in refused.value.extra["errors"]
        assert snapshot(engine, tmp_path) == before

    def test_a_member_of_a_network_sharing_group_cannot_pick_a_network(self, bindings, engine, infracon, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(InvalidInput) as refused:
            bindings.create(member("picky", network="none", mounts=(volume("/own"),)))
        assert "network" in refused.value.extra["errors"]
        assert snapshot(engine, tmp_path) == before

    def test_the_infrastructure_container_is_not_a_binding(self, bindings, engine, infracon, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(NotFound):
            bindings.get("infracon")
        with pytest.raises(NotFound):
            bindings.delete("infracon", True)
        with pytest.raises(Conflict):
            bindings.create(spec("infracon"))
        assert snapshot(engine, tmp_path) == before


class TestDelete:
    @pytest.fixture
    def populated(self, bindings, groups, infracon, bind_root):
        """Two members of infracon (one with its own volume), a second group with a member, and a
        binding of no group, which a cascade of infracon must leave alone."""
        bindings.create(member("nginx", mounts=(volume("/own"),)))
        bindings.create(member("tomcat", mode="ro"))
        groups.create("second", [volume("/s")], ["network"])
        bindings.create(member("other", group="second"))
        bindings.create(spec("loner", mounts=(bind(bind_root / "loner", "/l"),)))

    def test_with_members_and_no_cascade_is_a_conflict_naming_them_and_removes_nothing(
        self, groups, engine, populated, tmp_path
    ):
        before = snapshot(engine, tmp_path)
        with pytest.raises(Conflict, match="nginx, tomcat") as refused:
            groups.delete("infracon", cascade=False)
        assert refused.value.extra["members"] == ["nginx", "tomcat"]
        assert snapshot(engine, tmp_path) == before

    def test_cascade_removes_the_members_then_the_group_and_nothing_else(
        self, groups, engine, populated, tmp_path, bind_root
    ):
        before = snapshot(engine, tmp_path)
        groups.delete("infracon", cascade=True)
        after = snapshot(engine, tmp_path)
        gone = {cid for cid, c in before.containers.items() if c["name"] in ("infracon", "nginx", "tomcat")}
        assert len(gone) == 3
        assert after.containers == {cid: c for cid, c in before.containers.items() if cid not in gone}
        assert (after.volumes, after.files, after.paths) == (before.volumes, before.files, before.paths)
        assert (bind_root / "infracon").is_dir()
        with pytest.raises(NotFound):
            groups.get("infracon")
        assert [g.name for g in groups.list()] == ["second"]

    def test_an_empty_group_goes_without_cascade(self, groups, engine, infracon):
        groups.delete("infracon", cascade=False)
        assert engine.containers == {}

    def test_a_failed_precondition_removes_nothing(self, groups, engine, populated, tmp_path):
        before = snapshot(engine, tmp_path)

        stale = IfMatch(frozenset({"a-version-read-before"}))

        with pytest.raises(PreconditionFailed):
            groups.delete("infracon", cascade=True, if_match=stale)
        assert snapshot(engine, tmp_path) == before

    def test_a_missing_group_is_not_found(self, groups, engine, populated, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(NotFound):
            groups.delete("ghost", cascade=True)
        assert snapshot(engine, tmp_path) == before

    def test_a_binding_named_like_no_group_is_not_a_group(self, groups, engine, populated, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(NotFound):
            groups.delete("loner", cascade=True)
        assert snapshot(engine, tmp_path) == before
