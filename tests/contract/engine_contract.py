"""What every implementation of the engine port must do: run against the fake (unit tier)
and against a real engine (integration tier), so the fake cannot drift from reality.

A subclass provides the fixture `world`: `.engine` (the port) and `.container(name, {volume: target},
read_only=False)` / `.remove_container(name)`, which do what `docker create` / `docker rm` do.
"""

from __future__ import annotations

import re
import uuid

import pytest

from service.errors import Conflict, NotFound
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
