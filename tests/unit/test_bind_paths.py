"""The bind-source policy (docs/design.md section 4), on real directories under tmp_path."""

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


# -- nobody but root can redirect a source: the walk from / ------------------------------------

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing a directory's owner needs root")


def test_a_symlinked_component_is_refused_when_walked_even_if_it_resolves_inside(policy, root):
    (root / "real" / "d").mkdir(parents=True)
    resolved = policy.check(str(root / "real" / "d"), "source")
    (root / "real" / "d").rename(root / "real" / "d.old")
    os.symlink(root / "real" / "d.old", root / "real" / "d")  # swapped after the check
    with pytest.raises(Forbidden, match=f"{root}/real/d is a symbolic link"):
        policy.verify(resolved, "source")


def test_a_parent_writable_by_others_is_named_and_refused(policy, root):
    (root / "shared" / "d").mkdir(parents=True)
    os.chmod(root / "shared", 0o777)
    with pytest.raises(Forbidden, match=f"{root}/shared is writable by group or others"):
        policy.check(str(root / "shared" / "d"), "source")
    os.chmod(root / "shared", 0o775)
    with pytest.raises(Forbidden, match="writable by group or others"):
        policy.prepare(str(root / "shared" / "new"), "source")
    assert not (root / "shared" / "new").exists()


def test_the_source_itself_may_be_writable_by_others(policy, root):
    (root / "drop").mkdir()
    os.chmod(root / "drop", 0o777)  # renaming it needs write access to its parent, which is root's
    assert policy.check(str(root / "drop"), "source") == str(root / "drop")


@needs_root
def test_a_parent_owned_by_another_user_is_named_and_refused(policy, root):
    (root / "theirs" / "d").mkdir(parents=True)
    os.chown(root / "theirs", NOBODY, NOBODY)
    with pytest.raises(Forbidden, match=f"{root}/theirs is owned by uid {NOBODY}"):
        policy.check(str(root / "theirs" / "d"), "source")


@needs_root
def test_a_sticky_world_writable_parent_admits_only_a_trusted_child(tmp_path):
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    policy = BindPolicy([str(sticky)], lambda: [])
    (sticky / "mine").mkdir()
    assert policy.check(str(sticky / "mine"), "source") == str(sticky / "mine")
    assert policy.prepare(str(sticky / "made" / "here"), "source") == str(sticky / "made" / "here")
    (sticky / "theirs" / "d").mkdir(parents=True)
    os.chown(sticky / "theirs", NOBODY, NOBODY)
    with pytest.raises(Forbidden):
        policy.check(str(sticky / "theirs" / "d"), "source")
    os.chmod(sticky, 0o777)  # without the sticky bit others could rename even root's directory
    with pytest.raises(Forbidden, match="writable by group or others"):
        policy.check(str(sticky / "mine"), "source")


def test_to_make_names_what_prepare_then_makes_and_verify_accepts_it(policy, root):
    (root / "a").mkdir()
    path = str(root / "a" / "b" / "c")
    assert policy.to_make(path, "source") == [str(root / "a" / "b"), path]
    assert policy.prepare(path, "source") == path
    assert policy.to_make(path, "source") == []
    policy.verify(path, "source")


def test_remove_made_takes_empty_directories_deepest_first(policy, root):
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "x" / "y").mkdir(parents=True)
    (root / "x" / "y" / "file").write_text("put here since")
    made = [str(root / "a"), str(root / "a" / "b"), str(root / "a" / "b" / "c"), str(root / "x"), str(root / "x" / "y")]
    assert policy.remove_made(made) == [str(root / "a" / "b" / "c"), str(root / "a" / "b"), str(root / "a")]
    assert os.listdir(root) == ["x"] and os.listdir(root / "x" / "y") == ["file"]


def test_remove_made_never_goes_through_a_link(policy, root, tmp_path):
    """A made directory swapped for a link to another tree: the directories named below it are
    looked for under the link's name, never in the tree it points to, and the link stays."""
    outside = tmp_path / "outside"
    (outside / "b" / "c").mkdir(parents=True)
    (root / "a").symlink_to(outside)
    made = [str(root / "a"), str(root / "a" / "b"), str(root / "a" / "b" / "c")]
    assert policy.remove_made(made) == []
    assert (outside / "b" / "c").is_dir() and (root / "a").is_symlink()


def test_remove_made_keeps_what_is_in_use_the_roots_and_what_lies_outside_them(policy, root, tmp_path):
    (root / "used").mkdir()
    (tmp_path / "other").mkdir()
    (root / "sub").mkdir()
    made = [str(root), str(root / "used"), str(tmp_path / "other"), str(root / "sub" / ".." / "used")]
    assert policy.remove_made(made, in_use={str(root / "used")}) == []
    assert (root / "used").is_dir() and (tmp_path / "other").is_dir()


def test_verify_refuses_a_source_that_is_gone(policy, root):
    path = policy.prepare(str(root / "gone"), "source")
    os.rmdir(path)
    with pytest.raises(Forbidden, match="does not exist any more"):
        policy.verify(path, "source")


def test_a_device_node_or_socket_is_not_a_source(policy, root):
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(root / "sock"))
        with pytest.raises(Forbidden, match="not a directory or a regular file"):
            policy.check(str(root / "sock"), "source")


def test_the_lock_excludes_a_second_holder_in_another_process(policy, root):
    import fcntl
    import multiprocessing

    def try_lock(path, answer):
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            answer.put("got it")
        except BlockingIOError:
            answer.put("blocked")

    answer = multiprocessing.get_context("fork").Queue()
    with policy.lock():
        p = multiprocessing.get_context("fork").Process(target=try_lock, args=(str(root), answer))
        p.start()
        p.join(10)
        assert answer.get(timeout=5) == "blocked"


def test_the_engine_paths_a_bind_may_never_reach():
    from service.domain.bind_paths import engine_paths

    assert engine_paths("unix:///srv/engine.sock", lambda: "/srv/engine-data")() == [
        "/srv/engine.sock",
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/srv/engine-data",
    ]
    # A TCP engine: its host's socket is the usual one, which may be forwarded anywhere.
    assert engine_paths("tcp://127.0.0.1:2375", lambda: "/var/lib/docker")()[0] == "/var/run/docker.sock"
    assert engine_paths(None, lambda: "/var/lib/docker")()[0] == "/var/run/docker.sock"
