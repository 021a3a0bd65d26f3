"""The snapshot the refusal tests compare (engine_state.py) notices every kind of change they rely on."""

from __future__ import annotations

import dataclasses
import io
import os
import tarfile

import pytest

from .engine_state import snapshot


def one_file(name: str, content: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


@pytest.fixture
def host(engine, bind_root):
    engine.create_volume("v", "local", {}, {"k": "1"})
    c = engine.add_container("c", {"v": "/v"}, labels={"k": "1"})
    engine.put_archive(c.id, "/v", one_file("f", b"one"))
    (bind_root / "d").mkdir()
    return c


def relabel(engine, c):
    engine.containers[c.id] = dataclasses.replace(c, labels={"k": "2"})


def add_file(engine, c):
    engine.put_archive(c.id, "/v", one_file("g", b"one"))


CHANGES = {
    "a volume made": lambda engine, c, root: engine.create_volume("w", "local", {}, {}),
    "a volume's label": lambda engine, c, root: engine.volumes.update(
        v=dataclasses.replace(engine.volumes["v"], labels={"k": "2"})
    ),
    "a container made": lambda engine, c, root: engine.add_container("d"),
    "a container's state": lambda engine, c, root: engine.start_container(c.id),
    "a container's name": lambda engine, c, root: engine.rename_container(c.id, "c2"),
    "a container's label": lambda engine, c, root: relabel(engine, c),
    "a container replaced by its twin": lambda engine, c, root: (
        engine.remove_container(c.id),
        engine.add_container("c", {"v": "/v"}, labels={"k": "1"}),
    ),
    "a file's content": lambda engine, c, root: engine.put_archive(c.id, "/v", one_file("f", b"two")),
    "a file added": lambda engine, c, root: add_file(engine, c),
    "a directory made": lambda engine, c, root: (root / "d" / "e").mkdir(),
    "a directory's mode": lambda engine, c, root: os.chmod(root / "d", 0o700),
    "a link made": lambda engine, c, root: os.symlink("/", root / "l"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_each_change_is_seen(engine, bind_root, host, change):
    before = snapshot(engine, bind_root)
    CHANGES[change](engine, host, bind_root)
    assert snapshot(engine, bind_root) != before


def test_reads_are_not_changes(engine, bind_root, host):
    before = snapshot(engine, bind_root)
    engine.create_volume("empty", "local", {}, {})
    with_empty = snapshot(engine, bind_root)
    engine.list_containers()
    engine.inspect_volume("v")
    user = engine.add_container("reader", {"empty": "/e"})
    engine.get_archive(user.id, "/e/.").close()  # the fake makes an empty volume's tree when it is read
    engine.remove_container(user.id)
    assert snapshot(engine, bind_root) == with_empty != before
