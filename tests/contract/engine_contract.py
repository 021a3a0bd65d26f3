"""What every implementation of the engine port must do: run against the fake (unit tier)
and against a real engine (integration tier), so the fake cannot drift from reality.

A subclass provides the fixture `world`: `.engine` (the port), `.container(name, {volume: target},
read_only=False)`, which does what `docker create` does, and `.made`, names of containers to remove.
"""

from __future__ import annotations

import io
import re
import tarfile
import uuid

import pytest

from service.engine.port import ContainerSpec, MountSpec
from service.errors import Conflict, EngineFailure, EngineRejected, NotFound
from tests.support import unique

# When a volume or container was created, as the port gives it: RFC 3339, UTC with Z, whole seconds.
CREATED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


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

    def test_info_names_api_version_data_root_and_node(self, world):
        info = world.engine.info()
        assert re.fullmatch(r"1\.\d+", info.api_version)
        assert info.data_root.startswith("/")
        assert info.name and info.engine_id, info
        assert info.swarm_state in ("", "inactive") and not info.node_id and not info.manager, info

    def test_create_returns_the_new_volume(self, world, tag):
        name = unique()
        v = self.create(world, tag, name, team="web")
        assert (v.name, v.driver, v.scope) == (name, "local", "local")
        assert v.labels["team"] == "web"
        assert v.mountpoint.endswith(f"{name}/_data")
        assert CREATED_AT.fullmatch(v.created_at), v.created_at

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
        spec = self.spec(
            world,
            tag,
            mounts=(
                MountSpec("volume", "/data", source=vol.name),
                MountSpec("bind", "/www", source=str(tmp_path), read_only=True, propagation="rprivate"),
                MountSpec("tmpfs", "/scratch", size_bytes=1 << 20),
            ),
        )
        cid = world.engine.create_container(spec)
        (c,) = world.engine.list_containers(name=spec.name)
        assert (c.id, c.state, c.image, c.network) == (cid, "created", "busybox:stable", "none")
        mounts = {m.target: m for m in c.mounts}
        assert (mounts["/data"].type, mounts["/data"].name, mounts["/data"].source) == (
            "volume",
            vol.name,
            vol.mountpoint,
        )
        assert (mounts["/www"].type, mounts["/www"].source, mounts["/www"].read_only) == ("bind", str(tmp_path), True)
        assert mounts["/scratch"].type == "tmpfs"
        assert CREATED_AT.fullmatch(c.created_at), c.created_at

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

    def test_container_state_tells_when_it_last_started(self, world, tag):
        spec = self.spec(world, tag)
        world.engine.create_container(spec)
        before = world.engine.container_state(spec.name)
        assert (before.status, before.started_at, before.error) == ("created", "", "")
        world.engine.start_container(spec.name)
        after = world.engine.container_state(spec.name)
        assert after.status == "running" and after.started_at and after.error == ""
        with pytest.raises(NotFound):
            world.engine.container_state(unique("missing"))

    def test_container_starts_streams_the_ids_of_matching_containers_as_they_start(self, world, tag):
        import concurrent.futures

        other, mine = self.spec(world, f"{tag}-other"), self.spec(world, tag)
        starts = world.engine.container_starts([tag])  # subscribed from here on
        for spec in (other, mine):
            world.engine.create_container(spec)
            world.engine.start_container(spec.name)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(next, starts).result(timeout=10)
        assert first == world.engine.list_containers(name=mine.name)[0].id

    def test_events_give_volume_and_container_changes_in_order_since_a_time(self, world, tag):
        since = world.engine.clock()
        name = unique("evvol")
        self.create(world, tag, name)
        spec = self.spec(world, tag)
        cid = world.engine.create_container(spec)
        world.engine.start_container(cid)
        world.engine.rename_container(cid, spec.name + "-renamed")
        world.engine.remove_container(cid)
        world.engine.remove_volume(name)
        until = world.engine.clock()
        seen = [
            (e.type, e.action, e.id, e.name)
            for e in world.engine.events(since, until)
            if e.id in (name, cid) and e.action in ("create", "start", "rename", "destroy")
        ]
        assert seen == [
            ("volume", "create", name, ""),
            ("container", "create", cid, spec.name),
            ("container", "start", cid, spec.name),
            ("container", "rename", cid, spec.name + "-renamed"),
            ("container", "destroy", cid, spec.name + "-renamed"),
            ("volume", "destroy", name, ""),
        ]
        times = [e.at for e in world.engine.events(since, until)]
        assert times == sorted(times) and since <= times[0] and times[-1] <= until
        assert list(world.engine.events(until + 1, until + 1)) == []

    def test_events_without_an_end_stream_each_change_as_it_happens(self, world, tag):
        import concurrent.futures

        stream = world.engine.events(world.engine.clock())
        name = unique("evlive")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(next, stream)
            self.create(world, tag, name)
            event = first.result(timeout=10)
        stream.close()
        assert (event.type, event.action, event.id) == ("volume", "create", name)
        world.engine.remove_volume(name)

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


def make_tar(entries) -> bytes:
    """entries: (name, kind, payload, mode) with kind file|dir|symlink (payload: bytes or link target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, payload, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def read_tar(archive) -> dict[str, tuple[str, int, bytes | str]]:
    try:
        data = b"".join(archive)
    finally:
        archive.close()
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar:
            kind = "dir" if m.isdir() else "symlink" if m.issym() else "file"
            payload = m.linkname if m.issym() else tar.extractfile(m).read() if m.isreg() else b""
            out[m.name] = (kind, m.mode & 0o7777, payload)
    return out


class ArchiveContract:
    """The archive API on a created (never started) container, as volume data uses it."""

    @pytest.fixture
    def holder(self, world, tag):
        key, _, value = tag.partition("=")
        vol = world.engine.create_volume(unique(), "local", {}, {key: value})
        name = unique("holder")
        world.made.append(name)
        world.engine.create_container(
            ContainerSpec(
                name=name,
                image="busybox:stable",
                command=("true",),
                labels={key: value},
                mounts=(MountSpec("volume", "/v", source=vol.name),),
            )
        )
        return name

    TREE = [
        ("sub", "dir", None, 0o750),
        ("sub/empty", "dir", None, 0o700),
        ("sub/f.txt", "file", b"hello\n", 0o640),
        ("link", "symlink", "sub/f.txt", 0o777),
        (".hidden", "file", b"", 0o600),
    ]

    def test_put_then_get_round_trips_names_modes_links_and_content(self, world, holder):
        world.engine.put_archive(holder, "/v", make_tar(self.TREE))
        got = read_tar(world.engine.get_archive(holder, "/v/."))
        assert got["./sub"][:2] == ("dir", 0o750)
        assert got["./sub/empty"][:2] == ("dir", 0o700)
        assert got["./sub/f.txt"] == ("file", 0o640, b"hello\n")
        assert got["./link"][0::2] == ("symlink", "sub/f.txt")
        assert got["./.hidden"] == ("file", 0o600, b"")
        assert "." in got

    def test_volume_sizes_count_file_and_link_bytes_not_directories(self, world, tag):
        """The `bytes` quota measures what the engine's `system df` counts: the sizes of files and
        symbolic links (a link's: its target's length), no directory's."""
        key, _, value = tag.partition("=")
        vol = world.engine.create_volume(unique(), "local", {}, {key: value})
        name = unique("holder")
        world.made.append(name)
        mounts = (MountSpec("volume", "/v", source=vol.name),)
        world.engine.create_container(
            ContainerSpec(name=name, image="busybox:stable", command=("true",), labels={key: value}, mounts=mounts)
        )
        world.engine.put_archive(name, "/v", make_tar([*self.TREE, ("big", "file", b"x" * 5000, 0o644)]))
        assert world.engine.volume_sizes()[vol.name] == len(b"hello\n") + len("sub/f.txt") + 5000

    def test_get_of_a_subdirectory_or_file_names_it_by_its_base(self, world, holder):
        world.engine.put_archive(holder, "/v", make_tar(self.TREE))
        archive = world.engine.get_archive(holder, "/v/sub")
        assert archive.stat.is_dir and archive.stat.name == "sub"
        assert set(read_tar(archive)) == {"sub", "sub/empty", "sub/f.txt"}
        archive = world.engine.get_archive(holder, "/v/sub/f.txt")
        assert (archive.stat.is_dir, archive.stat.size, archive.stat.name) == (False, 6, "f.txt")
        assert read_tar(archive) == {"f.txt": ("file", 0o640, b"hello\n")}

    def test_missing_paths_are_not_found(self, world, holder):
        with pytest.raises(NotFound):
            world.engine.get_archive(holder, "/v/nothing")
        with pytest.raises(NotFound):
            world.engine.put_archive(holder, "/v/nothing", make_tar(self.TREE))

    def test_a_path_below_a_file_is_an_engine_failure_not_a_missing_path(self, world, holder):
        """The engine answers a read below a file with an error of its own (not a 404): dockvol
        must never ask for one (volume data walks a path from the top)."""
        world.engine.put_archive(holder, "/v", make_tar(self.TREE))
        with pytest.raises(EngineFailure):
            world.engine.get_archive(holder, "/v/sub/f.txt/below")

    def test_a_closed_archive_can_be_left_unread(self, world, holder):
        world.engine.put_archive(holder, "/v", make_tar([("big", "file", b"x" * (3 << 20), 0o644)]))
        archive = world.engine.get_archive(holder, "/v/.")
        first = next(iter(archive))
        archive.close()
        assert first
        assert read_tar(world.engine.get_archive(holder, "/v/big"))["big"][2] == b"x" * (3 << 20)

    def test_pause_and_unpause(self, world, tag):
        spec = ContainerContract.spec(self, world, tag)
        world.engine.create_container(spec)
        with pytest.raises(Conflict):
            world.engine.pause_container(spec.name)
        world.engine.start_container(spec.name)
        world.engine.pause_container(spec.name)
        assert world.engine.list_containers(name=spec.name)[0].state == "paused"
        world.engine.unpause_container(spec.name)
        assert world.engine.list_containers(name=spec.name)[0].state == "running"

    def test_import_an_image_from_a_root_filesystem(self, world, tag):
        ref = f"dockvol-test/empty:{uuid.uuid4().hex[:8]}"
        world.engine.import_image(ref, make_tar([]), {"dockvol-test": "1"})
        assert world.engine.image_present(ref)
        world.images.append(ref)
