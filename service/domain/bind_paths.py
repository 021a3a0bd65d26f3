"""Which host paths may be bound into containers, and proof that nobody but root can redirect them.

The engine resolves a bind source's path again at every container start, long after dockvol
checked it, so checking the text of a path is never enough. A source is admitted when:

1. as text: absolute, no `..`, no NUL, not too long;
2. resolved (symlinks followed): inside a configured root, compared component by component, and
   clear of the host's system trees, the engine's socket and its data root;
3. walked from `/` with one `openat(O_NOFOLLOW)` per component: every component is a real
   directory (no symlink), and every directory above the source is owned by a trusted user
   (root, or the user dockvol runs as, which holds the engine socket and so is root's equal) and
   not writable by group or others, except a sticky directory (such as /tmp) whose next component
   is a trusted user's: there others can neither rename nor remove it.

Then only a trusted user can change which directory the path names. Missing directories are made
during the same walk (`mkdirat` under the held parent), so dockvol's own creation cannot be raced.
The walk runs at create and again before every start dockvol performs (`verify`). Overlap between
bind sources (a container writing above another source) is ruled out in `mounts.py`.

An operation that is undone takes back the directories it made (`remove_made`), by the same kind of
walk: each parent opened from `/` without following a link, the directory removed by name under it
(`unlinkat(AT_REMOVEDIR)`, which removes only an empty directory and never follows a link).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import PurePosixPath

from ..errors import Forbidden, InvalidInput
from . import backoff

# Refused whatever the roots say: the host's system trees. The engine socket and data root join them.
SYSTEM_PATHS = ("/proc", "/sys", "/dev", "/etc", "/boot", "/usr", "/lib", "/lib64", "/bin", "/sbin")
MAX_PATH = 4096
MAX_COMPONENT = 255
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _within(path: PurePosixPath, other: PurePosixPath) -> bool:
    return path == other or path.is_relative_to(other)


def engine_paths(docker_host: str | None, data_root: Callable[[], str]) -> Callable[[], list[str]]:
    """What a bind may never reach of the engine: the socket dockvol uses (the default one when
    DOCKER_HOST is not a unix socket, as it may be forwarded there), the usual socket paths, and
    the engine's data root (asked of the engine the first time a path is checked)."""
    host = docker_host or "unix:///var/run/docker.sock"
    socket = host.removeprefix("unix://") if host.startswith("unix://") else "/var/run/docker.sock"
    return lambda: [socket, "/var/run/docker.sock", "/run/docker.sock", data_root()]


class BindPolicy:
    def __init__(
        self,
        roots: Iterable[str],
        engine_paths: Callable[[], Iterable[str]],
        trusted_uids: Iterable[int] | None = None,
        allowed: Callable[[], Iterable[str]] | None = None,
        setting: tuple[str, str] = ("bind root", "DOCKVOL_BIND_ROOTS"),
    ) -> None:
        """`engine_paths` gives the engine socket and data root; called only when a path is checked.
        `trusted_uids`: who may own the directories above a source (default: root and dockvol's user).
        `allowed`: the roots the caller's project may use, each under one of `roots` (default: all).
        `setting`: what a root is called and the variable naming them, for refusals (backup roots walk too)."""
        self._roots = tuple(roots)
        self._setting = setting
        self._allowed = allowed or (lambda: self._roots)
        self.engine_paths = engine_paths
        self._trusted = frozenset(trusted_uids if trusted_uids is not None else {0, os.geteuid()})
        self._thread_lock = threading.Lock()

    def check(self, source: str, field: str) -> str:
        """The resolved path, or InvalidInput (malformed) / Forbidden (not allowed). Changes nothing;
        a missing source passes when its existing part does."""
        _check_syntax(source, field)
        try:
            resolved = PurePosixPath(os.path.realpath(source))
        except OSError:  # a link vanished while it was being followed
            raise Forbidden(f"{field}: {source} changed while it was being resolved") from None
        denied = [*SYSTEM_PATHS, *self.engine_paths()]
        for d in denied:
            d_path = PurePosixPath(os.path.realpath(d))
            if _within(resolved, d_path) or _within(d_path, resolved):
                raise Forbidden(f"{field}: {source} is, holds or lies in a protected host path")
        roots = [PurePosixPath(os.path.realpath(r)) for r in self._allowed()]
        if not any(_within(resolved, r) for r in roots):
            if not self._roots:
                raise Forbidden(f"{field}: host paths are disabled ({self._setting[1]} is empty)")
            if not roots:
                raise Forbidden(f"{field}: bind mounts are disabled for this project (it has no bind_roots)")
            raise Forbidden(f"{field}: {source} does not lie inside a configured {self._setting[0]}")
        self._walk(str(resolved), field, create=False)
        return str(resolved)

    def prepare(self, source: str, field: str) -> str:
        """Check, then make the source directory if missing (as `docker run -v` does), one
        component at a time under its checked parent."""
        resolved = self.check(source, field)
        self._walk(resolved, field, create=True)
        return resolved

    def to_make(self, path: str, field: str) -> list[str]:
        """The directories `prepare` would make for the checked source `path`, from the top."""
        return self._walk(path, field, create=False)

    def remove_made(self, paths: Iterable[str], in_use: Collection[str] = ()) -> list[str]:
        """Take back directories an operation made: each of `paths` that is still an empty directory,
        deepest first, inside a root (not a root itself) and not in `in_use`; never through a link.
        One that stays (something was put in it, it was swapped for a link) keeps its parents,
        which are not empty then. The paths removed."""
        roots = [PurePosixPath(os.path.realpath(r)) for r in self._roots]
        removed = []
        for path in sorted(set(paths), key=lambda p: len(PurePosixPath(p).parts), reverse=True):
            p = PurePosixPath(path)
            inside = any(p != r and p.is_relative_to(r) for r in roots)
            if inside and ".." not in p.parts and path not in in_use and _remove_empty_dir(p):
                removed.append(path)
        return removed

    def verify(self, path: str, field: str) -> None:
        """Before a start: `path` (a source checked at create) still names what it named then,
        and still nobody but a trusted user can change that."""
        self._walk(path, field, create=False, must_exist=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise the decisions about host paths (check overlap, then create) across threads and
        across dockvol processes on this host: an exclusive flock on every bind root, in order."""
        with self._thread_lock, contextlib.ExitStack() as stack:
            for root in sorted({os.path.realpath(r) for r in self._roots}):
                try:
                    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                except OSError:
                    continue  # a root that does not exist admits nothing
                stack.callback(os.close, fd)
                flock(fd)
            yield

    def _walk(self, path: str, field: str, create: bool, must_exist: bool = False) -> list[str]:
        """Open every component of `path` from `/` without following links, checking each; with
        `create`, make what is missing. Without it, stop quietly at the first missing component
        unless `must_exist`, and return the paths of it and of those below it (else none)."""
        parts = PurePosixPath(path).parts[1:]
        fd = os.open("/", _DIR_FLAGS)
        try:
            here, st = "/", os.fstat(fd)
            for i, name in enumerate(parts):
                last = i == len(parts) - 1
                child = os.path.join(here, name)
                try:
                    child_fd = _open_component(name, fd, last)
                except FileNotFoundError:
                    if must_exist:
                        raise Forbidden(f"{field}: {child} does not exist any more") from None
                    self._check_parent(here, st, child, None, field)
                    if not create:
                        return [os.path.join(here, *parts[i : j + 1]) for j in range(i, len(parts))]
                    with contextlib.suppress(FileExistsError):  # made meanwhile: the open checks what it is
                        os.mkdir(name, 0o755, dir_fd=fd)
                    child_fd = _open_component(name, fd, last)
                except OSError as exc:
                    raise Forbidden(
                        f"{field}: {child} is a symbolic link or not a directory ({exc.strerror})"
                    ) from None
                try:
                    child_st = os.fstat(child_fd)
                except BaseException:
                    os.close(child_fd)
                    raise
                os.close(fd)
                fd = child_fd
                if stat.S_ISLNK(child_st.st_mode):
                    raise Forbidden(f"{field}: {child} is a symbolic link")
                if not (stat.S_ISDIR(child_st.st_mode) or (last and stat.S_ISREG(child_st.st_mode))):
                    raise Forbidden(f"{field}: {child} is not a directory or a regular file")
                self._check_parent(here, st, child, child_st, field)
                here, st = child, child_st
        finally:
            os.close(fd)
        return []

    def _check_parent(
        self, path: str, st: os.stat_result, child: str, child_st: os.stat_result | None, field: str
    ) -> None:
        """A directory above a source: a trusted owner, and not writable by group or others unless
        sticky with a trusted user's child (`child_st` None: about to be made by dockvol)."""
        if st.st_uid not in self._trusted:
            raise Forbidden(
                f"{field}: {path} is owned by uid {st.st_uid}, not by root; "
                "anyone but root could redirect a bind source below it"
            )
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            if not st.st_mode & stat.S_ISVTX:
                raise Forbidden(
                    f"{field}: {path} is writable by group or others; they could redirect a bind source below it"
                )
            if child_st is not None and child_st.st_uid not in self._trusted:
                raise Forbidden(
                    f"{field}: {child} is owned by uid {child_st.st_uid}, not by root, in {path}, "
                    "which others can write"
                )


def flock(fd: int) -> None:
    """An exclusive flock, waited for without blocking the process (other greenlets run)."""

    def locked() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    backoff.until(locked, first=0.002, most=0.1)


def _remove_empty_dir(path: PurePosixPath) -> bool:
    """rmdir `path` under its parent, opened from `/` without following a link; False when a
    parent is not a real directory, or `path` is gone, a link, not a directory or not empty."""
    try:
        fd = os.open("/", _DIR_FLAGS)
    except OSError:
        return False
    try:
        for name in path.parent.parts[1:]:
            child_fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child_fd
        os.rmdir(path.name, dir_fd=fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _open_component(name: str, dir_fd: int, last: bool) -> int:
    """An fd for `name` in `dir_fd`, never through a symlink: a directory, or (the source itself)
    whatever it is, which the caller then inspects."""
    if last:
        return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _check_syntax(source: str, field: str) -> None:
    try:
        source.encode()
    except UnicodeEncodeError:
        raise InvalidInput(field, "a path must be valid UTF-8") from None
    if "\x00" in source:
        raise InvalidInput(field, "a path may not contain NUL")
    if not source.startswith("/"):
        raise InvalidInput(field, "a host path must be absolute")
    if len(source.encode()) > MAX_PATH or any(len(p.encode()) > MAX_COMPONENT for p in source.split("/")):
        raise InvalidInput(field, f"a host path is at most {MAX_PATH} bytes, {MAX_COMPONENT} a component")
    if ".." in source.split("/"):
        raise InvalidInput(field, "a host path may not contain '..'")
