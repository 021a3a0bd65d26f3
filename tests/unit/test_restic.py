"""The restic adapter against the real restic binary and a repository in a temporary directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from service.domain.backups import restic as restic_module
from service.domain.backups.restic import Locked, NoRepository, Repository, Restic, WrongPassword, waiting_out_locks
from service.errors import BackupFailure
from tests.support import cmdline, tar_of

pytestmark = pytest.mark.slow  # every restic call derives its key (scrypt): about half a second each


@pytest.fixture
def restic(tmp_path):
    return Restic(str(tmp_path / "cache"))


def password_file(tmp_path, name: str, password: str) -> str:
    path = tmp_path / name
    path.write_text(password)
    path.chmod(0o600)
    return str(path)


@pytest.fixture
def repo(tmp_path, restic):
    repo = Repository(str(tmp_path / "repo"), password_file(tmp_path, "pw", "right"))
    restic.init(repo)
    return repo


def test_a_stream_goes_in_as_one_file_and_comes_back_whole(restic, repo):
    data = tar_of({"a.txt": b"hello", "b.txt": b"x" * 100_000})
    summary = restic.backup(repo, [data[:1000], data[1000:]], "vol.tar", ["dockvol", "volume=vol"])
    assert summary.bytes_processed == len(data) and summary.data_added > 0
    [snap] = restic.snapshots(repo, ["dockvol"])
    assert snap.id.startswith(summary.snapshot) and snap.tag("volume") == "vol"
    with restic.dump(repo, snap.id, "/vol.tar") as dumped:
        assert dumped.read() == data
    again = restic.backup(repo, [data], "vol.tar", ["dockvol", "volume=vol"])
    assert again.data_added < summary.data_added / 10  # the same data: deduplicated
    assert restic.stored_bytes(repo) > 0


def holding_the_lock(repo: Repository) -> subprocess.Popen[bytes]:
    """A real restic that holds the repository's exclusive lock until its stdin closes: `key passwd`
    locks, then waits to read the new password (an empty one fails, and unlocks)."""
    holder = subprocess.Popen(
        ["restic", f"--repo={repo.location}", f"--password-file={repo.password_file}", "key", "passwd"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not os.listdir(os.path.join(repo.location, "locks")):
        assert time.monotonic() < deadline and holder.poll() is None, "restic key passwd took no lock"
        time.sleep(0.05)
    return holder


def test_a_backup_against_a_locked_repository_is_locked_and_waits_it_out(restic, repo):
    holder = holding_the_lock(repo)
    try:
        with pytest.raises(Locked, match="already locked exclusively"):
            restic.backup(repo, [b"x" * 100_000], "vol.tar", ["dockvol"])
        assert restic.snapshots(repo) == []
        threading.Timer(2.0, holder.stdin.close).start()  # the lock goes in 2 s
        began = time.monotonic()
        summary = waiting_out_locks(lambda: restic.backup(repo, [b"y" * 100_000], "vol.tar", ["dockvol"]), 60, 0.2)
        assert summary.bytes_processed == 100_000 and time.monotonic() - began >= 1.5
    finally:
        holder.kill()
        holder.wait()
    with pytest.raises(Locked):  # and it gives up after its wait
        waiting_out_locks(lambda: (_ for _ in ()).throw(Locked("restic: already locked")), 0.3, 0.1)


@pytest.mark.parametrize(
    "stuck",
    [
        "head -c 1000 >/dev/null; exec sleep 600",  # takes a little, then no more (an S3 gone mid-upload)
        "cat >/dev/null; exec sleep 600",  # takes it all, then never ends (its last uploads retried)
    ],
)
def test_a_restic_that_stops_moving_is_ended_after_the_stall_bound(tmp_path, repo, monkeypatch, stuck):
    """restic retries an unreachable S3 for about 15 minutes; a backup waits on it STALL s at most.
    A stand-in binary plays the stuck restic."""
    binary = tmp_path / "stuck-restic"
    binary.write_text(f"#!/bin/sh\necho $$ > {tmp_path}/pid\n{stuck}\n")  # exec: the same pid
    binary.chmod(0o755)
    monkeypatch.setattr(restic_module, "STALL", 1.0)
    began = time.monotonic()
    with pytest.raises(BackupFailure, match="no progress for 1 s"):
        Restic(str(tmp_path / "cache"), str(binary)).backup(repo, [b"x" * 65536] * 64, "vol.tar", ["dockvol"])
    assert time.monotonic() - began < 10
    assert cmdline((tmp_path / "pid").read_text().strip()) == b""  # the stuck process was killed, not left


def test_time_spent_on_the_source_is_not_restics(restic, repo, monkeypatch):
    monkeypatch.setattr(restic_module, "STALL", 1.0)

    def slow():
        for _ in range(3):
            time.sleep(1.5)  # the volume's export, slow: restic waits, and is not blamed
            yield b"x" * 1000

    assert restic.backup(repo, slow(), "vol.tar", ["dockvol"]).bytes_processed == 3000


def test_a_stream_that_fails_half_way_writes_no_snapshot(restic, repo):
    def chunks():
        yield b"x" * 10_000
        raise OSError("the engine went away")

    with pytest.raises(OSError):
        restic.backup(repo, chunks(), "vol.tar", ["dockvol"])
    assert restic.snapshots(repo) == []


def test_the_password_is_checked_and_never_on_the_command_line(restic, repo, tmp_path):
    restic.verify(repo)
    with pytest.raises(WrongPassword):
        restic.verify(Repository(repo.location, password_file(tmp_path, "bad", "wrong")))
    with pytest.raises(NoRepository):
        restic.verify(Repository(str(tmp_path / "none"), repo.password_file))
    argv = restic._argv(repo, ["snapshots"])
    assert not any("right" in a for a in argv) and f"--password-file={repo.password_file}" in argv


def test_the_environment_of_dockvol_does_not_reach_restic(restic, repo, monkeypatch):
    monkeypatch.setenv("RESTIC_PASSWORD", "right")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "dockvol's own")
    assert "RESTIC_PASSWORD" not in restic._env(repo) and "AWS_SECRET_ACCESS_KEY" not in restic._env(repo)
    s3 = Repository("s3:http://127.0.0.1:9/b", repo.password_file, "/state/r.credentials", ("s3.region=x",))
    env = restic._env(s3)  # the keys' file by name, never a key
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == "/state/r.credentials" and set(env) == {
        "PATH",
        "HOME",
        "LC_ALL",
        "AWS_SHARED_CREDENTIALS_FILE",
    }
    assert "--option=s3.region=x" in restic._argv(s3, ["snapshots"])


def test_forget_and_dump_take_snapshot_ids_only(restic, repo):
    with pytest.raises(BackupFailure, match="not a snapshot id"):
        restic.forget(repo, ["--prune"])
    with pytest.raises(BackupFailure, match="not a snapshot id"):
        restic.dump(repo, "latest", "/x")
    restic.backup(repo, [b"data"], "v.tar", ["dockvol"])
    [snap] = restic.snapshots(repo)
    restic.forget(repo, [snap.id])
    assert restic.snapshots(repo) == []


def test_a_dump_of_a_file_the_snapshot_lacks_fails_at_the_read(restic, repo):
    restic.backup(repo, [b"data"], "v.tar", ["dockvol"])
    [snap] = restic.snapshots(repo)
    with restic.dump(repo, snap.id, "/other.tar") as dumped, pytest.raises(BackupFailure):
        dumped.read()


def test_a_backup_whose_dockvol_dies_mid_stream_writes_no_snapshot(restic, repo, tmp_path):
    """Only dockvol's process is killed (not its group): restic must not take the end of its input
    for the end of the volume and write a snapshot of half of it (it dies with its parent)."""
    script = f"""
import time
from service.domain.backups.restic import Repository, Restic
def chunks():
    yield b"x" * 100_000
    open({str(tmp_path / "sent")!r}, "w").close()
    time.sleep(600)
repo = Repository({repo.location!r}, {repo.password_file!r})
Restic({restic._cache_dir!r}).backup(repo, chunks(), "v.tar", ["dockvol"])
"""
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 30
    while not (tmp_path / "sent").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)  # what an orphaned restic would need to write its snapshot
    assert restic.snapshots(repo) == []
