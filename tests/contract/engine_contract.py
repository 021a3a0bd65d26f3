"""What every implementation of the engine port must do: run against the fake (unit tier)
and against a real engine (integration tier), so the fake cannot drift from reality.

A subclass provides the fixture `world`: `.engine` (the port), `.container(name, {volume: target},
read_only=False)`, which does what `docker create` does, and `.made`, names of containers to remove.
"""

from __future__ import annotations

import re
import uuid

import pytest

from service.engine.port import ContainerSpec, MountSpec
from service.errors import Conflict, EngineRejected, NotFound
from tests.support import unique


def names(volumes) -> set[str]:
    return {v.name for v in volumes}


class EngineContract:
    @pytest.fixture
    def tag(self):
        """A label only this test's volumes carry, so filters and prunes touch nothing else."""
        return f"dockvol-test={uuid.uuid4().hex[:12]}"

    def create(self, world, tag, name=None, **labels):
        key, _, value = tag.partition("=")
        return world.engine.create_volume(name, "local", {}, {key: value, **labels})

    def test_info_names_api_version_and_data_root(self, world):
        info = world.engine.info()
        assert re.fullmatch(r"1\.\d+", info.api_version)
        assert info.data_root.startswith("/")

    def test_create_returns_the_new_volume(self, world, tag):
        name = unique()
        v = self.create(world, tag, name, team="web")
        assert (v.name, v.driver, v.scope) == (name, "local", "local")
        assert v.labels["team"] == "web"
        assert v.mountpoint.endswith(f"{name}/_data")

    def test_create_without_name_lets_the_engine_pick_one(self, world, tag):
        v = self.create(world, tag)
        assert re.fullmatch(r"[0-9a-f]{64}", v.name)

    def test_create_of_an_existing_name_returns_the_existing_volume(self, world, tag):
        name = unique()
        self.create(world, tag, name, first="yes")
        again = self.create(world, tag, name, second="yes")
        assert again.labels.get("first") == "yes"
        assert "second" not in again.labels

    def test_inspect_of_a_missing_volume_is_not_found(self, world):
        with pytest.raises(NotFound):
            world.engine.inspect_volume(unique("missing"))

    def test_list_filters_by_label_key_and_value(self, world, tag):
        a = self.create(world, tag, unique(), colour="red")
        b = self.create(world, tag, unique(), colour="blue")
        assert names(world.engine.list_volumes(labels=[tag])) == {a.name, b.name}
        assert names(world.engine.list_volumes(labels=[tag, "colour=red"])) == {a.name}
        assert names(world.engine.list_volumes(labels=[tag, "colour"])) == {a.name, b.name}
        assert names(world.engine.list_volumes(labels=[tag], driver="local")) == {a.name, b.name}
        assert names(world.engine.list_volumes(labels=[tag], driver="nosuchdriver")) == set()

    def test_remove_deletes_an_unused_volume(self, world, tag):
        v = self.create(world, tag, unique())
        world.engine.remove_volume(v.name)
        with pytest.raises(NotFound):
            world.engine.inspect_volume(v.name)
        with pytest.raises(NotFound):
            world.engine.remove_volume(v.name)

    def test_remove_refuses_a_volume_in_use(self, world, tag):
        v = self.create(world, tag, unique())
        world.container(unique("c"), {v.name: "/data"})
        with pytest.raises(Conflict):
            world.engine.remove_volume(v.name)
        assert world.engine.inspect_volume(v.name).name == v.name

    def test_containers_show_their_volume_mounts(self, world, tag):
        v = self.create(world, tag, unique())
        other = self.create(world, tag, unique())
        cname = unique("c")
        world.container(cname, {v.name: "/data"}, read_only=True)
        world.container(unique("c"), {other.name: "/data"})
        users = world.engine.list_containers(volume=v.name)
        assert [c.name for c in users] == [cname]
        (mount,) = users[0].mounts
        assert (mount.type, mount.name, mount.target, mount.read_only) == ("volume", v.name, "/data", True)
        assert mount.source == v.mountpoint
        assert cname in {c.name for c in world.engine.list_containers()}

    def test_prune_removes_unused_matching_volumes_named_or_anonymous(self, world, tag):
        named = self.create(world, tag, unique())
        anonymous = self.create(world, tag)
        used = self.create(world, tag, unique())
        elsewhere = world.engine.create_volume(unique(), "local", {}, {"dockvol-test": "other"})
        world.container(unique("c"), {used.name: "/data"})
        report = world.engine.prune_volumes([tag])
        assert set(report.volumes_deleted) == {named.name, anonymous.name}
        assert report.space_reclaimed >= 0
        assert world.engine.inspect_volume(used.name)
        world.engine.remove_volume(elsewhere.name)

    def test_volume_sizes_cover_every_volume(self, world, tag):
        v = self.create(world, tag, unique())
        sizes = world.engine.volume_sizes()
        assert sizes[v.name] >= 0


class ContainerContract:
    """Containers: the part of the port bindings and sharing groups stand on.

    `world.engine` must hold the image `busybox:stable`; `world.forget(name)` is called for each
    container a test makes, so the real world can remove it afterwards."""

    def spec(self, world, tag, **kw):
        key, _, value = tag.partition("=")
        kw.setdefault("name", unique("c"))
        kw.setdefault("image", "busybox:stable")
        kw.setdefault("command", ("sleep", "300"))
        kw["labels"] = {key: value, **kw.get("labels", {})}
        world.made.append(kw["name"])
        return ContainerSpec(**kw)

    def test_create_shows_every_kind_of_mount(self, world, tag, tmp_path):
        vol = world.engine.create_volume(unique(), "local", {}, {tag.partition("=")[0]: tag.partition("=")[2]})
        spec = self.spec(world, tag, mounts=(
            MountSpec("volume", "/data", source=vol.name),
            MountSpec("bind", "/www", source=str(tmp_path), read_only=True, propagation="rprivate"),
            MountSpec("tmpfs", "/scratch", size_bytes=1 << 20),
        ))
        cid = world.engine.create_container(spec)
        (c,) = world.engine.list_containers(name=spec.name)
        assert (c.id, c.state, c.image, c.network) == (cid, "created", "busybox:stable", "none")
        mounts = {m.target: m for m in c.mounts}
        assert (mounts["/data"].type, mounts["/data"].name, mounts["/data"].source) == ("volume", vol.name, vol.mountpoint)
        assert (mounts["/www"].type, mounts["/www"].source, mounts["/www"].read_only) == ("bind", str(tmp_path), True)
        assert mounts["/scratch"].type == "tmpfs"
        assert c.created_at

    def test_lifecycle_start_stop_rename_remove(self, world, tag):
        spec = self.spec(world, tag)
        world.engine.create_container(spec)
        world.engine.start_container(spec.name)
        assert world.engine.list_containers(name=spec.name)[0].state == "running"
        world.engine.stop_container(spec.name, timeout=1)
        assert world.engine.list_containers(name=spec.name)[0].state == "exited"
        renamed = unique("renamed")
        world.made.append(renamed)
        world.engine.rename_container(spec.name, renamed)
        assert world.engine.list_containers(name=spec.name) == []
        world.engine.remove_container(renamed)
        assert world.engine.list_containers(name=renamed) == []
        with pytest.raises(NotFound):
            world.engine.remove_container(renamed)

    def test_a_taken_name_is_a_conflict(self, world, tag):
        spec = self.spec(world, tag)
        world.engine.create_container(spec)
        with pytest.raises(Conflict):
            world.engine.create_container(spec)

    def test_a_missing_image_is_not_found(self, world, tag):
        assert world.engine.image_present("busybox:stable")
        assert not world.engine.image_present("dockvol-missing:none")
        with pytest.raises(NotFound):
            world.engine.create_container(self.spec(world, tag, image="dockvol-missing:none"))

    def test_host_namespaces_are_refused(self, world, tag):
        with pytest.raises(EngineRejected):
            world.engine.create_container(self.spec(world, tag, network="host"))

    def test_list_filters_by_label_and_exact_name(self, world, tag):
        a = self.spec(world, tag, labels={"role": "a"})
        b = self.spec(world, tag, name=a.name + "x")
        world.engine.create_container(a)
        world.engine.create_container(b)
        assert {c.name for c in world.engine.list_containers(labels=[tag])} == {a.name, b.name}
        assert [c.name for c in world.engine.list_containers(labels=[tag, "role=a"])] == [a.name]
        assert [c.name for c in world.engine.list_containers(name=a.name)] == [a.name]

    def test_volumes_from_copies_the_source_mounts(self, world, tag):
        vol = world.engine.create_volume(unique(), "local", {}, {tag.partition("=")[0]: tag.partition("=")[2]})
        source = self.spec(world, tag, mounts=(MountSpec("volume", "/shared", source=vol.name),))
        sid = world.engine.create_container(source)
        member = self.spec(world, tag, volumes_from=(f"{sid}:ro",))
        world.engine.create_container(member)
        (m,) = world.engine.list_containers(name=member.name)[0].mounts
        assert (m.name, m.target, m.read_only) == (vol.name, "/shared", True)
