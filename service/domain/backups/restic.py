"""restic, the backup engine (docs/design.md section 12), run as a subprocess with `--json`.

A repository's password reaches restic only through `--password-file`, and an S3 repository's
keys only through an AWS shared-credentials file that `AWS_SHARED_CREDENTIALS_FILE` names: files
of mode 0600 that only dockvol's user can read, never a command line or an environment holding a
secret (`/proc/PID/cmdline` is world-readable; so is a process's existence). restic
gets an environment of its own, with nothing of dockvol's in it (no RESTIC_* variable leaks in).

Each restic process dies with the dockvol process that started it (PR_SET_PDEATHSIG): a backup
whose dockvol died must not see the end of its input as the end of the volume and write a
snapshot of half of it."""

from __future__ import annotations

import ctypes
import io
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, TypeVar

from ...errors import BackupFailure

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

SNAPSHOT_ID = re.compile(r"[0-9a-f]{64}")
QUICK = 120.0  # seconds for a call that reads only the repository's index and config
LOCK_WAIT = 120.0  # seconds a call waits while another restic holds the repository's lock
STALL = 120.0  # seconds a backup may go without taking input (or, once fed, without ending)
_T = TypeVar("_T")
_PR_SET_PDEATHSIG = 1


class WrongPassword(BackupFailure):
    """The repository is there, but the password opens none of its keys."""


class NoRepository(BackupFailure):
    """There is no repository at the location."""


class Locked(BackupFailure):
    """Another restic process holds the repository's lock in a way this call cannot share: a
    retention's `forget` (exclusive) against a backup, or a backup against a `forget`."""


def waiting_out_locks(call: Callable[[], _T], wait: float = LOCK_WAIT, pause: float = 1.0) -> _T:
    """`call()`, again every `pause` s while it fails with Locked, for up to `wait` s: restic 0.14
    has no `--retry-lock`. A call that failed on the lock has changed nothing in the repository."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return call()
        except Locked:
            if time.monotonic() > deadline:
                raise
        time.sleep(pause)


@dataclass(frozen=True)
class Repository:
    """How to open one repository: where it is, the file that holds its password, and for S3 the
    file that holds its credentials (an AWS shared-credentials file, mode 0600) and its `-o`
    options (`s3.region=...`)."""

    location: str
    password_file: str
    credentials_file: str | None = None
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    id: str
    time: str
    tags: tuple[str, ...]
    paths: tuple[str, ...]

    def tag(self, key: str) -> str | None:
        """The value of the tag `key=value`, if the snapshot has one."""
        for t in self.tags:
            if t.startswith(key + "="):
                return t[len(key) + 1 :]
        return None


@dataclass(frozen=True)
class Summary:
    """What `restic backup` says when it has written its snapshot."""

    snapshot: str  # as restic prints it (a short id in restic 0.14)
    bytes_processed: int
    data_added: int


class Restic:
    def __init__(self, cache_dir: str, binary: str = "restic") -> None:
        self._cache_dir = cache_dir
        self._binary = binary

    def init(self, repo: Repository) -> None:
        self._run(repo, "init")

    def verify(self, repo: Repository) -> None:
        """That a repository is there and the password opens it (WrongPassword, NoRepository)."""
        self._run(repo, "cat", "config", "--no-lock")

    def snapshots(self, repo: Repository, tags: Sequence[str] = ()) -> list[Snapshot]:
        """The repository's snapshots that carry every one of `tags`."""
        args = ["snapshots", "--no-lock", *([f"--tag={','.join(tags)}"] if tags else [])]
        found = json.loads(self._run(repo, *args) or "[]") or []
        return [Snapshot(s["id"], s["time"], tuple(s.get("tags") or ()), tuple(s.get("paths") or ())) for s in found]

    def stored_bytes(self, repo: Repository) -> int:
        stats = json.loads(self._run(repo, "stats", "--no-lock", "--mode=raw-data"))
        return int(stats.get("total_size", 0))

    def forget(self, repo: Repository, ids: Sequence[str]) -> None:
        """Forget snapshots (their data goes at the next prune)."""
        if ids:
            self._run(repo, "forget", "--", *_ids(ids))

    def unlock(self, repo: Repository) -> None:
        """Remove the locks of restic processes that are gone (a killed backup leaves its own)."""
        self._run(repo, "unlock")

    def backup(self, repo: Repository, chunks: Iterable[bytes], filename: str, tags: Sequence[str]) -> Summary:
        """Store `chunks` as one file, `filename`, in a new snapshot. The snapshot is written only if
        every chunk arrived: when `chunks` fails, restic is killed before it sees the end of its input."""
        args = ["backup", "--stdin", f"--stdin-filename={filename}", *(f"--tag={t}" for t in tags)]
        with _capture() as out, _capture() as err:
            proc = self._start(repo, args, stdin=subprocess.PIPE, stdout=out, stderr=err)
            assert proc.stdin is not None
            watchdog = _Watchdog(proc, STALL)
            sent = 0
            try:
                for chunk in chunks:
                    watchdog.waiting()  # on restic, not on our source
                    proc.stdin.write(chunk)
                    watchdog.idle()
                    sent += len(chunk)
            except BrokenPipeError:  # restic gave up (or the watchdog ended it): its own words say why
                pass
            except BaseException:
                proc.kill()  # before stdin closes: restic must not take a cut stream for a whole one
                proc.wait()
                raise
            finally:
                watchdog.waiting()  # for restic's end
                _quietly_close(proc.stdin)
            code = proc.wait()
            watchdog.stop()
            if watchdog.fired:
                raise BackupFailure(f"restic made no progress for {STALL:.0f} s (is the repository reachable?)")
            if code != 0:
                raise _failure(_text(err))
            summary = _summary(_text(out))
        if summary.bytes_processed != sent:
            raise BackupFailure(f"restic stored {summary.bytes_processed} bytes of the {sent} it was sent")
        return summary

    def dump(self, repo: Repository, snapshot: str, path: str) -> IO[bytes]:
        """One file of a snapshot, read as it streams out of restic; a failure of restic's, even at
        the very end, is raised by the read that would otherwise have seen the end."""
        err = tempfile.TemporaryFile()
        try:
            proc = self._start(repo, ["dump", "--", *_ids([snapshot]), path], stdout=subprocess.PIPE, stderr=err)
        except BaseException:
            err.close()
            raise
        return io.BufferedReader(_Dump(proc, err), buffer_size=1 << 20)

    # -- running restic ---------------------------------------------------------------------------

    def _argv(self, repo: Repository, args: Sequence[str]) -> list[str]:
        return [
            self._binary,
            "--json",
            "--quiet",
            f"--repo={repo.location}",
            f"--password-file={repo.password_file}",
            f"--cache-dir={self._cache_dir}",
            *(f"--option={o}" for o in repo.options),
            *args,
        ]

    def _env(self, repo: Repository) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self._cache_dir, "LC_ALL": "C"}
        if repo.credentials_file is not None:
            # restic's S3 client reads the keys from this file (its name is no secret): never
            # from an argv or an environment, which /proc shows.
            env["AWS_SHARED_CREDENTIALS_FILE"] = repo.credentials_file
        return env

    def _start(self, repo: Repository, args: Sequence[str], **streams: Any) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(
                self._argv(repo, args), env=self._env(repo), preexec_fn=_die_with_parent, close_fds=True, **streams
            )
        except OSError as exc:
            raise BackupFailure(f"restic cannot be run: {exc.strerror}") from None

    def _run(self, repo: Repository, *args: str) -> str:
        try:
            done = subprocess.run(
                self._argv(repo, args),
                env=self._env(repo),
                preexec_fn=_die_with_parent,
                capture_output=True,
                timeout=QUICK,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise BackupFailure(f"restic {args[0]} did not finish within {QUICK:.0f} s") from None
        except OSError as exc:
            raise BackupFailure(f"restic cannot be run: {exc.strerror}") from None
        if done.returncode != 0:
            raise _failure(done.stderr.decode(errors="replace"))
        return done.stdout.decode(errors="replace")


class _Watchdog:
    """Kills a backup's restic when dockvol has waited on it for `stall` s: to take a chunk of its
    input, or to end once its input has ended. restic retries an unreachable S3 for about 15
    minutes; a killed restic has written no snapshot (it writes one only at the end). Time spent
    waiting on the volume's export is not restic's and does not count."""

    def __init__(self, proc: subprocess.Popen[bytes], stall: float) -> None:
        self._proc, self._stall = proc, stall
        self._since: float | None = None  # when dockvol began to wait on restic; None: it is not
        self._done = threading.Event()
        self.fired = False
        threading.Thread(target=self._watch, name="restic-watchdog", daemon=True).start()

    def waiting(self) -> None:
        self._since = time.monotonic()

    def idle(self) -> None:
        self._since = None

    def stop(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        while not self._done.wait(min(1.0, self._stall / 4)):
            if self._proc.poll() is not None:
                return
            since = self._since
            if since is not None and time.monotonic() - since > self._stall:
                self.fired = True
                self._proc.kill()
                return


class _Dump(io.RawIOBase):
    def __init__(self, proc: subprocess.Popen[bytes], err: IO[bytes]) -> None:
        self._proc, self._err = proc, err

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        assert self._proc.stdout is not None
        n = self._proc.stdout.readinto(buffer)  # type: ignore[attr-defined]  # a BufferedReader
        if not n and self._proc.wait() != 0:
            raise _failure(_text(self._err))
        return int(n or 0)

    def close(self) -> None:
        if not self.closed:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            _quietly_close(self._proc.stdout)
            self._err.close()
        super().close()


def _ids(ids: Sequence[str]) -> list[str]:
    """Snapshot ids, checked: nothing that restic could read as an option ever reaches its argv."""
    for i in ids:
        if not SNAPSHOT_ID.fullmatch(i):
            raise BackupFailure(f"{i[:80]!r} is not a snapshot id")
    return list(ids)


def _summary(out: str) -> Summary:
    for line in reversed(out.splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("message_type") == "summary" and doc.get("snapshot_id"):
            return Summary(doc["snapshot_id"], int(doc["total_bytes_processed"]), int(doc["data_added"]))
    raise BackupFailure("restic ended without saying which snapshot it wrote")


def _failure(stderr: str) -> BackupFailure:
    lines = [line for line in stderr.splitlines() if line.strip()]
    said = next((line for line in reversed(lines) if line.startswith("Fatal:")), lines[-1] if lines else "")
    said = said.removeprefix("Fatal: ").strip()[:300] or "restic failed"
    if "already locked" in stderr:  # its last lines say how to remove stale locks: not the point
        return Locked("restic: " + next(line for line in lines if "already locked" in line).strip()[:300])
    if "wrong password or no key found" in stderr:
        return WrongPassword("the password opens none of the repository's keys")
    if (
        "unable to open config file" in stderr
        or "bucket does not exist" in stderr.lower()
        or "Is there a repository at the following location" in stderr
    ):
        return NoRepository(f"no restic repository there: {said}")
    return BackupFailure(f"restic: {said}")


def _capture() -> IO[bytes]:
    return tempfile.TemporaryFile()


def _text(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")


def _quietly_close(f: IO[bytes] | None) -> None:
    try:
        if f is not None:
            f.close()
    except OSError:  # a pipe whose reader is gone
        pass


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the dockvol process that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
