"""Projects (service/domain/projects.py), through the use cases: what a project's caller sees and
makes, what another project's objects look like to it (missing), and quotas (docs/design.md,
"Projects")."""

from __future__ import annotations

import threading
import time

import pytest

from service.config import ProjectConfig
from service.domain import intents as intents_module
from service.domain import labels as label
from service.domain.bindings import BindingQuery
from service.domain.projects import acting_for
from service.domain.volumes import VolumeQuery
from service.errors import Conflict, DockvolError, Forbidden, InvalidInput, NotFound, QuotaExceeded

from ..engine_state import snapshot
from .conftest import bind, leftovers, spec, tar, volume


def refusal(call) -> tuple[type, str, dict]:
    """What a use case raises, as a client would see it: class, words, extra members."""
    with pytest.raises(DockvolError) as raised:
        call()
    return type(raised.value), raised.value.detail, raised.value.extra


@pytest.fixture
def roots(bind_root):
    for name in ("a", "b", "b2"):
        (bind_root / name).mkdir()
    return bind_root


@pytest.fixture
def uses(wire, roots):
    return wire(
        projects={
            "a": ProjectConfig({"volumes": 3, "bindings": 2, "sharing_groups": 1}, (str(roots / "a"),)),
            "b": ProjectConfig({}, (str(roots / "b"),)),
        }
    )


class TestLabelsAndRepresentations:
    def test_what_a_project_makes_carries_its_label_and_shows_it(self, uses, engine):
        with acting_for("a"):
            made = uses.volumes.create("va", "local", {}, {})
            b = uses.bindings.create(spec("ba", mounts=(volume("/anon"),)))
            g = uses.sharing_groups.create("ga", (), ["network"])
        assert (made.project, b.project, g.project) == ("a", "a", "a")
        anonymous = [v for v in engine.volumes.values() if v.labels.get(label.ANONYMOUS) == "true"]
        assert [v.labels[label.PROJECT] for v in anonymous] == ["a"]
        assert engine.volumes["va"].labels[label.PROJECT] == "a"

    def test_locks_and_helpers_carry_no_project_and_none_is_left(self, uses, engine):
        with acting_for("a"):
            uses.volumes.create("va", "local", {}, {})
            uses.volume_data.usage("va")
        assert leftovers(engine) == []

    def test_managed_objects_from_before_projects_are_defaults(self, uses, engine):
        engine.create_volume("old", "local", {}, {label.MANAGED: "true", label.ANONYMOUS: "false"})
        with acting_for("default"):
            assert uses.volumes.get("old").project == "default"
        with acting_for("a"):
            assert uses.volumes.list(VolumeQuery()) == []

    def test_objects_dockvol_did_not_make_are_seen_by_the_operator_only(self, uses, engine):
        engine.create_volume("theirs", "local", {}, {})
        with acting_for("default"):
            assert refusal(lambda: uses.volumes.get("theirs"))[0] is NotFound
        assert uses.volumes.get("theirs").project is None  # outside a request: `*`
        with acting_for("*"):
            assert [v.name for v in uses.volumes.list(VolumeQuery())] == ["theirs"]


class TestIsolation:
    @pytest.fixture
    def b_objects(self, uses):
        with acting_for("b"):
            uses.volumes.create("vb", "local", {}, {})
            uses.sharing_groups.create("gb", (), ["network"])
            uses.bindings.create(spec("bb", mounts=(volume("/d", "vb"),), sharing_group="gb", network=None))

    @pytest.mark.parametrize(
        "operation, name",
        [
            (lambda uses, n: uses.volumes.get(n), "vb"),
            (lambda uses, n: uses.volumes.delete(n), "vb"),
            (lambda uses, n: uses.bindings.get(n), "bb"),
            (lambda uses, n: uses.bindings.stop(n), "bb"),
            (lambda uses, n: uses.bindings.replace(n, spec(n)), "bb"),
            (lambda uses, n: uses.bindings.delete(n, True), "bb"),
            (lambda uses, n: uses.sharing_groups.get(n), "gb"),
            (lambda uses, n: uses.sharing_groups.delete(n, True), "gb"),
            (lambda uses, n: uses.volume_data.usage(n), "vb"),
            (lambda uses, n: uses.volume_data.export(n, "", False), "vb"),
            (lambda uses, n: uses.volume_data.import_(n, "", tar(("f", "file", b"x", 0o644))), "vb"),
            (lambda uses, n: uses.volume_data.files(n, ""), "vb"),
            (lambda uses, n: uses.volume_data.rename(n, "x"), "vb"),
            (lambda uses, n: uses.volume_data.clone(n, "x", {}, False), "vb"),
        ],
    )
    def test_another_projects_objects_answer_as_missing_ones(self, uses, b_objects, engine, tmp_path, operation, name):
        before = snapshot(engine, tmp_path)
        with acting_for("a"):
            theirs = refusal(lambda: operation(uses, name))
            missing = refusal(lambda: operation(uses, "nope"))
        assert str(theirs) == str(missing).replace("nope", name)
        assert snapshot(engine, tmp_path) == before
        assert leftovers(engine) == []

    def test_lists_show_the_callers_project_only(self, uses, b_objects):
        with acting_for("a"):
            uses.volumes.create("va", "local", {}, {})
            assert [v.name for v in uses.volumes.list(VolumeQuery())] == ["va"]
            assert uses.bindings.list(BindingQuery()) == []
            assert uses.sharing_groups.list() == []
        with acting_for("*"):
            assert [v.name for v in uses.volumes.list(VolumeQuery(project="b"))] == ["vb"]
            assert [b.name for b in uses.bindings.list(BindingQuery(project="a"))] == []
            assert [g.name for g in uses.sharing_groups.list("b")] == ["gb"]

    def test_a_name_taken_in_another_project_is_a_conflict_that_names_no_one(self, uses, b_objects):
        with acting_for("a"):
            assert refusal(lambda: uses.volumes.create("vb", "local", {}, {}))[:2] == (
                Conflict,
                "volume vb exists already",
            )
            taken = refusal(lambda: uses.bindings.create(spec("bb")))
            assert taken[:2] == (Conflict, "a container named bb exists already")
            assert refusal(lambda: uses.sharing_groups.create("gb", (), ["network"]))[:2] == (
                Conflict,
                "a container named gb exists already",
            )

    def test_a_binding_cannot_mount_or_join_another_projects_storage(self, uses, b_objects, engine, tmp_path):
        before = snapshot(engine, tmp_path)
        with acting_for("a"):
            for make, name in [
                (lambda n: uses.bindings.create(spec("x", mounts=(volume("/d", n),))), "vb"),
                (lambda n: uses.bindings.create(spec("x", sharing_group=n, network=None)), "gb"),
            ]:
                theirs, missing = refusal(lambda: make(name)), refusal(lambda: make("nope"))
                assert theirs[0] is InvalidInput
                assert str(theirs) == str(missing).replace("nope", name)
        assert snapshot(engine, tmp_path) == before

    def test_used_by_shows_no_other_projects_containers(self, uses, engine):
        with acting_for("a"):
            uses.volumes.create("shared", "local", {}, {})
        # a container of project b that mounts it (made before projects, or by hand with the label)
        with acting_for("*"):
            uses.bindings.create(spec("theirs", mounts=(volume("/d", "shared"),)))
        engine.containers = {
            k: type(c)(**{**c.__dict__, "labels": {**c.labels, label.PROJECT: "b"}}) if c.name == "theirs" else c
            for k, c in engine.containers.items()
        }
        with acting_for("a"):
            shown = uses.volumes.get("shared")
            assert shown.used_by == () and not shown.in_use
            refused = refusal(lambda: uses.volumes.delete("shared"))
            assert refused[0] is Conflict and "theirs" not in str(refused)

    def test_prune_removes_the_callers_unused_volumes_only(self, uses, engine):
        engine.create_volume("legacy", "local", {}, {label.MANAGED: "true", label.ANONYMOUS: "true"})
        for project in ("a", "b", "default"):
            with acting_for(project):
                uses.volumes.create(None, "local", {}, {"p": project})
        with acting_for("a"):
            assert len(uses.volumes.prune(False, False, []).volumes_deleted) == 1
        assert sorted(v.labels.get(label.PROJECT, "-") for v in engine.volumes.values()) == ["-", "b", "default"]
        with acting_for("default"):
            gone = uses.volumes.prune(False, False, []).volumes_deleted
        assert "legacy" in gone and len(gone) == 2
        assert [v.labels.get(label.PROJECT) for v in engine.volumes.values()] == ["b"]


class TestBindRoots:
    def test_a_project_binds_only_under_its_own_roots(self, uses, roots, engine, tmp_path):
        before = snapshot(engine, tmp_path)
        with acting_for("a"):
            for source in (roots / "b", roots / "b2", roots / "b" / ".." / "b", roots):
                refused = refusal(lambda: uses.bindings.create(spec("x", mounts=(bind(source, "/d"),))))
                assert refused[0] in (Forbidden, InvalidInput)
        assert snapshot(engine, tmp_path) == before
        with acting_for("a"):
            uses.bindings.create(spec("x", mounts=(bind(roots / "a" / "site", "/d"),)))

    def test_a_project_without_roots_binds_nothing(self, uses, roots):
        with acting_for("c"):
            refused = refusal(lambda: uses.bindings.create(spec("x", mounts=(bind(roots / "a", "/d"),))))
        assert refused[:2] == (
            Forbidden,
            "mounts.0.source: bind mounts are disabled for this project (it has no bind_roots)",
        )

    def test_an_overlap_with_another_projects_source_names_neither_it_nor_its_path(self, uses, roots):
        with acting_for("*"):
            uses.bindings.create(spec("deep", mounts=(bind(roots / "a" / "x" / "y", "/d"),)))
        with acting_for("a"):
            refused = refusal(lambda: uses.bindings.create(spec("z", mounts=(bind(roots / "a" / "x", "/d"),))))
        assert refused[0] is Forbidden and "deep" not in refused[1] and "/y" not in refused[1]


class TestQuotas:
    def test_a_create_past_the_volume_quota_is_refused_with_its_numbers(self, uses, engine, tmp_path):
        with acting_for("a"):
            for i in range(3):
                uses.volumes.create(f"v{i}", "local", {}, {})
            before = snapshot(engine, tmp_path)
            refused = refusal(lambda: uses.volumes.create("v3", "local", {}, {}))
        assert refused == (
            QuotaExceeded,
            "the project's volumes quota is 3 and it holds 3",
            {"quota": "volumes", "limit": 3, "used": 3},
        )
        assert snapshot(engine, tmp_path) == before
        with acting_for("b"):
            uses.volumes.create("other", "local", {}, {})  # another project's room is its own

    def test_anonymous_volumes_a_binding_makes_count_and_a_refused_binding_leaves_none(self, uses, engine, tmp_path):
        with acting_for("a"):
            uses.volumes.create("v0", "local", {}, {})
            before = snapshot(engine, tmp_path)
            refused = refusal(
                lambda: uses.bindings.create(spec("x", mounts=(volume("/1"), volume("/2"), volume("/3"))))
            )
            assert refused[0] is QuotaExceeded and refused[2]["quota"] == "volumes"
        assert snapshot(engine, tmp_path) == before
        assert leftovers(engine) == []

    def test_bindings_and_groups_have_quotas_a_replace_needs_no_room(self, uses):
        with acting_for("a"):
            uses.bindings.create(spec("b1"))
            uses.bindings.create(spec("b2"))
            assert refusal(lambda: uses.bindings.create(spec("b3")))[2] == {"quota": "bindings", "limit": 2, "used": 2}
            uses.bindings.replace("b2", spec("b2", image="busybox:stable", command=("sleep", "10")))
            uses.sharing_groups.create("g1", (), ["network"])
            assert refusal(lambda: uses.sharing_groups.create("g2", (), ["network"]))[2]["quota"] == "sharing_groups"

    def test_a_rename_at_the_limit_needs_no_room_a_clone_does(self, uses):
        with acting_for("a"):
            for i in range(3):
                uses.volumes.create(f"v{i}", "local", {}, {})
            assert uses.volume_data.rename("v0", "moved").name == "moved"
            assert refusal(lambda: uses.volume_data.clone("v1", "copy", {}, False))[0] is QuotaExceeded

    def test_a_create_queues_for_its_quota_lock_past_the_usual_wait(self, uses, monkeypatch):
        """Racers on a loaded host wait longer than LOCK_WAIT for the quota's short hold: a create
        answers made or over quota, never "busy" (an ordinary lock still answers 409 then)."""
        monkeypatch.setattr(intents_module, "LOCK_WAIT", 0.2)

        def held_for(key: str, seconds: float) -> threading.Thread:
            taken = threading.Event()

            def hold() -> None:
                with uses.intents.run("test.hold", [key]):
                    taken.set()
                    time.sleep(seconds)

            thread = threading.Thread(target=hold)
            thread.start()
            assert taken.wait(5)
            return thread

        holder = held_for("volume/other", 0.8)
        with pytest.raises(Conflict), uses.intents.run("test.other", ["volume/other"]):
            pass
        holder.join()
        holder = held_for("quota/a", 0.8)
        started = time.monotonic()
        with acting_for("a"):
            assert uses.volumes.create("v", "local", {}, {}).name == "v"
        assert time.monotonic() - started >= 0.5
        holder.join()

    def test_usage_counts_what_each_project_holds(self, uses):
        with acting_for("a"):
            uses.bindings.create(spec("b1", mounts=(volume("/d"),)))
            uses.volumes.create("v", "local", {}, {})
        usage = uses.projects.usage("a")
        assert (usage.volumes, usage.bindings, usage.sharing_groups) == (2, 1, 0)
        assert uses.projects.usage("b").volumes == 0


class TestCreatingInAnotherProject:
    """The operator (`*`) may create in a named project: it is made as that project makes it."""

    def test_the_operator_creates_in_a_project_under_its_rules_roots_and_quota(self, uses, roots, engine, tmp_path):
        with acting_for("*"), uses.projects.creating_in("a"):
            made = uses.volumes.create("va", "local", {}, {})
            b = uses.bindings.create(spec("ba", mounts=(volume("/anon"), bind(roots / "a" / "s", "/s"))))
            g = uses.sharing_groups.create("ga", (), ["network"])
            before = snapshot(engine, tmp_path)
            bound = refusal(lambda: uses.bindings.create(spec("bb", mounts=(bind(roots / "b", "/d"),))))
            assert bound[0] in (Forbidden, InvalidInput)  # a's roots, not the operator's
            assert refusal(lambda: uses.sharing_groups.create("g2", (), ["network"]))[0] is QuotaExceeded
        assert snapshot(engine, tmp_path) == before
        assert (made.project, b.project, g.project) == ("a", "a", "a")
        with acting_for("a"):
            assert {v.name for v in uses.volumes.list(VolumeQuery())} >= {"va"}

    def test_naming_its_own_project_is_the_same_as_naming_none(self, uses):
        with acting_for("a"), uses.projects.creating_in("a"):
            assert uses.volumes.create("va", "local", {}, {}).project == "a"
        with acting_for("*"), uses.projects.creating_in("*"):
            assert uses.volumes.create("vs", "local", {}, {}).project == "default"

    def test_only_the_operator_names_another_project_and_only_a_known_one(self, uses, engine, tmp_path):
        before = snapshot(engine, tmp_path)
        with acting_for("a"):
            assert refusal(lambda: uses.projects.creating_in("b")) == (
                Forbidden,
                "only a token of the project `*` creates in another project",
                {},
            )
        with acting_for("*"):
            assert refusal(lambda: uses.projects.creating_in("zz")) == (
                InvalidInput,
                "project zz is not configured",
                {"errors": {"project": ["project zz is not configured"]}},
            )
        assert snapshot(engine, tmp_path) == before
