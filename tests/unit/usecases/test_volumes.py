"""Volumes (service/domain/volumes.py), called directly: create, delete and prune, and what each
refusal leaves alone (docs/design.md section 3)."""

from __future__ import annotations

import threading

import pytest

from service.domain import labels as label
from service.domain.versions import IfMatch
from service.domain.volumes import VolumeQuery
from service.errors import Conflict, Forbidden, InvalidInput, NotFound, PreconditionFailed

from ..engine_state import snapshot
from .conftest import leftovers

BIND_LIKE = {"type": "none", "o": "bind"}


class TestCreate:
    def test_a_new_volume_is_managed_named_and_labelled(self, volumes, engine):
        made = volumes.create("site", "local", {}, {"team": "web"})
        assert (made.name, made.managed, made.anonymous, made.in_use) == ("site", True, False, False)
        assert made.labels == {"team": "web"}
        record = engine.volumes["site"].labels
        assert (record[label.MANAGED], record[label.ANONYMOUS], record["team"]) == ("true", "false", "web")
        assert made.identity == record[label.CREATE_ID]
        assert volumes.get("site") == made

    def test_without_a_name_the_engine_picks_one_and_it_is_anonymous(self, volumes, engine):
        made = volumes.create(None, "local", {}, {})
        assert made.anonymous and list(engine.volumes) == [made.name]

    def test_an_existing_dockvol_volume_is_a_conflict_and_left_untouched(self, volumes, engine, tmp_path):
        volumes.create("dup", "local", {}, {"v": "1"})
        before = snapshot(engine, tmp_path)
        with pytest.raises(Conflict, match="dup exists already"):
            volumes.create("dup", "local", {}, {"v": "2"})
        assert snapshot(engine, tmp_path) == before
        assert volumes.get("dup").labels == {"v": "1"}

    def test_of_concurrent_creates_of_one_name_exactly_one_makes_it(self, volumes, engine):
        outcomes = []

        def create():
            try:
                outcomes.append(volumes.create("race", "local", {}, {}).identity)
            except Conflict:
                outcomes.append("conflict")

        threads = [threading.Thread(target=create) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert (
            sorted(outcomes, key=lambda o: o == "conflict")
            == [engine.volumes["race"].labels[label.CREATE_ID]] + ["conflict"] * 11
        )
        assert leftovers(engine) == []

    def test_a_volume_dockvol_did_not_make_is_a_conflict_too_though_the_engine_returns_it(
        self, volumes, engine, tmp_path
    ):
        engine.create_volume("theirs", "local", {}, {"owner": "them"})
        before = snapshot(engine, tmp_path)
        with pytest.raises(Conflict):
            volumes.create("theirs", "local", {}, {"owner": "us"})
        assert snapshot(engine, tmp_path) == before
        assert not volumes.get("theirs").managed

    def test_a_driver_that_is_not_enabled_is_invalid_and_makes_nothing(self, volumes, engine, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(InvalidInput) as refused:
            volumes.create("nfs", "nfs-plugin", {}, {})
        assert "driver" in refused.value.extra["errors"]
        assert snapshot(engine, tmp_path) == before

    @pytest.mark.parametrize(
        "opts, error",
        [
            ({"size": "1G"}, InvalidInput),
            ({"type": "nfs", "o": "addr=10.0.0.1", "device": ":/x"}, Forbidden),
            ({"type": "tmpfs", "o": "bind", "device": "/"}, Forbidden),
            ({"type": "none", "o": "bind"}, Forbidden),  # a bind with no device
            ({"type": "none", "o": "rbind,ro", "device": "/etc"}, Forbidden),
        ],
    )
    def test_local_options_beyond_a_tmpfs_or_a_bind_in_a_root_are_refused(self, volumes, engine, tmp_path, opts, error):
        before = snapshot(engine, tmp_path)
        with pytest.raises(error):
            volumes.create("odd", "local", opts, {})
        assert snapshot(engine, tmp_path) == before

    def test_a_tmpfs_is_allowed(self, volumes, engine):
        volumes.create("scratch", "local", {"type": "tmpfs", "device": "tmpfs", "o": "size=64m"}, {})
        assert engine.volumes["scratch"].driver_opts["type"] == "tmpfs"

    def test_a_bind_device_inside_a_root_is_made_and_resolved(self, volumes, engine, bind_root):
        (bind_root / "real").mkdir()
        (bind_root / "alias").symlink_to(bind_root / "real")
        volumes.create("bound", "local", {**BIND_LIKE, "device": f"{bind_root}/alias/site"}, {})
        assert (bind_root / "real" / "site").is_dir()
        assert engine.volumes["bound"].driver_opts["device"] == str(bind_root / "real" / "site")

    def test_a_bind_device_outside_the_roots_is_forbidden_and_makes_no_directory(self, volumes, engine, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden, match="bind root"):
            volumes.create("bound", "local", {**BIND_LIKE, "device": str(tmp_path / "elsewhere" / "x")}, {})
        assert snapshot(engine, tmp_path) == before
        assert not (tmp_path / "elsewhere").exists()

    def test_a_bind_device_inside_another_ones_is_forbidden(self, volumes, engine, bind_root, tmp_path):
        volumes.create("outer", "local", {**BIND_LIKE, "device": str(bind_root / "outer")}, {})
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden, match="volume outer"):
            volumes.create("inner", "local", {**BIND_LIKE, "device": str(bind_root / "outer" / "in")}, {})
        assert snapshot(engine, tmp_path) == before


class TestDelete:
    def test_an_unused_volume_goes_and_no_lock_stays(self, volumes, engine):
        volumes.create("gone", "local", {}, {})
        volumes.delete("gone")
        assert "gone" not in engine.volumes
        assert leftovers(engine) == []
        with pytest.raises(NotFound):
            volumes.get("gone")

    def test_a_volume_in_use_is_a_conflict_naming_its_users_and_nothing_goes(self, volumes, engine, tmp_path):
        volumes.create("busy", "local", {}, {})
        volumes.create("bystander", "local", {}, {})
        engine.add_container("web", {"busy": "/data"}, labels={label.MANAGED: "true", label.BINDING: "web"})
        engine.add_container("backup", {"busy": "/b"}, read_only=True)
        before = snapshot(engine, tmp_path)
        with pytest.raises(Conflict, match="in use by backup, web") as refused:
            volumes.delete("busy")
        used_by = refused.value.extra["used_by"]
        assert [(u.container, u.binding, u.target, u.read_only) for u in used_by] == [
            ("backup", None, "/b", True),
            ("web", "web", "/data", False),
        ]
        assert snapshot(engine, tmp_path) == before

    def test_a_volume_dockvol_did_not_make_is_forbidden_and_stays(self, volumes, engine, tmp_path):
        engine.create_volume("theirs", "local", {}, {})
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden, match="not created by dockvol"):
            volumes.delete("theirs")
        assert snapshot(engine, tmp_path) == before

    def test_a_failed_precondition_deletes_nothing(self, volumes, engine, tmp_path):
        volumes.create("guarded", "local", {}, {})
        before = snapshot(engine, tmp_path)

        stale = IfMatch(frozenset({"a-version-read-before"}))

        with pytest.raises(PreconditionFailed):
            volumes.delete("guarded", stale)
        assert snapshot(engine, tmp_path) == before

    def test_the_version_read_or_any_version_lets_it_go_and_a_weak_empty_if_match_does_not(self, volumes, engine):
        read = volumes.create("kept", "local", {}, {}).version
        assert volumes.get("kept").version == read  # the same volume, the same version
        with pytest.raises(PreconditionFailed):
            volumes.delete("kept", IfMatch())  # an If-Match that named no version
        volumes.delete("kept", IfMatch(frozenset({"other", read})))
        volumes.create("any", "local", {}, {})
        volumes.delete("any", IfMatch(any=True))
        assert "kept" not in engine.volumes and "any" not in engine.volumes

    def test_a_missing_volume_is_not_found(self, volumes, engine, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(NotFound, match="ghost"):
            volumes.delete("ghost")
        assert snapshot(engine, tmp_path) == before

    def test_a_user_that_comes_between_the_look_and_the_removal_makes_it_a_conflict(self, volumes, engine, monkeypatch):
        volumes.create("raced", "local", {}, {})
        real_remove = engine.remove_volume

        def someone_mounts_it_first(name):
            engine.add_container("sneaky", {name: "/x"})
            real_remove(name)

        monkeypatch.setattr(engine, "remove_volume", someone_mounts_it_first)
        with pytest.raises(Conflict, match="in use by sneaky"):
            volumes.delete("raced")
        assert "raced" in engine.volumes


class TestListAndGet:
    def test_a_volume_being_filled_is_neither_listed_nor_shown(self, volumes, engine):
        volumes.create("whole", "local", {}, {})
        volumes.create("half", "local", {}, {}, marks={label.FILLING: "op1", label.OP: "op1"})
        engine.add_container("dockvol-lock-x", labels={label.MANAGED: "true", label.ROLE: "lock", label.OP: "op1"})
        assert [v.name for v in volumes.list(VolumeQuery())] == ["whole"]
        with pytest.raises(NotFound, match="being filled"):
            volumes.get("half")

    def test_a_filled_volume_whose_operation_ended_is_shown(self, volumes):
        volumes.create("done", "local", {}, {}, marks={label.FILLING: "op2", label.OP: "op2"})
        assert [v.name for v in volumes.list(VolumeQuery())] == ["done"]
        assert volumes.get("done").name == "done"


class TestPrune:
    @pytest.fixture
    def host(self, volumes, engine):
        anonymous = volumes.create(None, "local", {}, {"env": "dev"}).name
        used = volumes.create(None, "local", {}, {}).name
        volumes.create("named", "local", {}, {"env": "dev"})
        engine.create_volume("foreign", "local", {}, {"env": "dev"})
        engine.add_container("user", {used: "/d"})
        engine.set_size(anonymous, 100)
        return anonymous, used

    def test_a_dry_run_changes_nothing_and_names_what_a_prune_removes(self, volumes, engine, tmp_path, host):
        anonymous, _ = host
        before = snapshot(engine, tmp_path)
        planned = volumes.prune(dry_run=True, include_named=False, labels=[])
        assert snapshot(engine, tmp_path) == before
        assert (planned.volumes_deleted, planned.space_reclaimed) == ([anonymous], 100)
        done = volumes.prune(dry_run=False, include_named=False, labels=[])
        assert (done.volumes_deleted, done.space_reclaimed) == ([anonymous], 100)
        assert set(engine.volumes) == set(before.volumes) - {anonymous}

    def test_named_volumes_go_only_when_asked_and_never_foreign_or_used_ones(self, volumes, engine, host):
        anonymous, used = host
        done = volumes.prune(dry_run=False, include_named=True, labels=["env=dev"])
        assert done.volumes_deleted == sorted([anonymous, "named"])
        assert set(engine.volumes) == {used, "foreign"}
