"""The bind-source policy (DESIGN.md section 5), on real directories under tmp_path."""

from __future__ import annotations

import os

import pytest

from service.domain.bind_paths import BindPolicy
from service.errors import Forbidden, InvalidInput


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "data"
    r.mkdir()
    return r


@pytest.fixture
def policy(root, tmp_path):
    return BindPolicy([str(root)], lambda: [str(tmp_path / "engine.sock"), str(tmp_path / "engine-root")])


def test_a_path_inside_the_root_is_returned_resolved(policy, root):
    (root / "site").mkdir()
    assert policy.check(f"{root}/site/", "source") == str(root / "site")


def test_a_sibling_sharing_the_prefix_is_refused(policy, root, tmp_path):
    (tmp_path / "data2").mkdir()
    with pytest.raises(Forbidden):
        policy.check(str(tmp_path / "data2"), "source")


def test_a_symlink_inside_the_root_pointing_outside_is_refused(policy, root, tmp_path):
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", root / "link")
    with pytest.raises(Forbidden):
        policy.check(str(root / "link"), "source")
    with pytest.raises(Forbidden):
        policy.check(str(root / "link" / "deeper"), "source")


def test_a_symlink_staying_inside_is_resolved(policy, root):
    (root / "real").mkdir()
    os.symlink(root / "real", root / "alias")
    assert policy.check(str(root / "alias"), "source") == str(root / "real")


@pytest.mark.parametrize(
    "path", ["relative/path", "", "/data/../etc", "/x/\x00/y", "/" + "a" * 256, "/a" * 2100, "/bad\udcff"]
)
def test_malformed_paths_are_invalid(policy, path):
    with pytest.raises(InvalidInput):
        policy.check(path, "source")


def test_dotdot_is_refused_even_when_it_stays_inside(policy, root):
    (root / "a").mkdir()
    with pytest.raises(InvalidInput):
        policy.check(f"{root}/a/../a", "source")


@pytest.mark.parametrize("path", ["/", "/proc", "/sys/kernel", "/dev", "/etc/shadow", "/boot", "/usr", "/lib"])
def test_system_paths_are_refused_whatever_the_roots(path, tmp_path):
    policy = BindPolicy(["/"], lambda: [])
    with pytest.raises(Forbidden):
        policy.check(path, "source")


def test_engine_socket_and_data_root_and_their_parents_are_refused(tmp_path):
    engine_dir = tmp_path / "engine"
    (engine_dir / "root").mkdir(parents=True)
    policy = BindPolicy([str(tmp_path)], lambda: [str(engine_dir / "docker.sock"), str(engine_dir / "root")])
    for path in (engine_dir, engine_dir / "root", engine_dir / "root" / "volumes", engine_dir / "docker.sock"):
        with pytest.raises(Forbidden):
            policy.check(str(path), "source")


def test_no_roots_means_no_bind_mounts(tmp_path):
    with pytest.raises(Forbidden, match="disabled"):
        BindPolicy([], lambda: []).check(str(tmp_path), "source")


def test_prepare_creates_a_missing_source_only_after_the_check(policy, root, tmp_path):
    assert policy.prepare(str(root / "new" / "dir"), "source") == str(root / "new" / "dir")
    assert (root / "new" / "dir").is_dir()
    with pytest.raises(Forbidden):
        policy.prepare(str(tmp_path / "outside" / "dir"), "source")
    assert not (tmp_path / "outside").exists()
