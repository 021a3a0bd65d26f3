"""dockvol's own state on the host, under DOCKVOL_STATE_DIR: what the engine cannot hold for it
(repositories and their passwords, the records of backups under way and of restores).

One folder per kind of record, one JSON file per record, each written whole or not at all (a
temporary file, then a rename). Everything is mode 0600 in folders of mode 0700, made on first
use: secrets lie here, and only dockvol's user may read them. Workers and dockvol processes of one
host share it; `locked` serialises the decisions that must not interleave (two creates of a name)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from typing import Any

from ..bind_paths import flock

RECORD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class StateDir:
    def __init__(self, root: str) -> None:
        self.root = root

    def folder(self, kind: str) -> str:
        """The folder of one kind of record (made, mode 0700, on first use)."""
        path = os.path.join(self.root, kind)
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)
        return path

    def path(self, kind: str, record: str, suffix: str = ".json") -> str:
        if not RECORD_ID.fullmatch(record):
            raise ValueError(f"{record!r} cannot name a record")
        return os.path.join(self.folder(kind), record + suffix)

    def read(self, kind: str, record: str) -> dict[str, Any] | None:
        try:
            if not RECORD_ID.fullmatch(record):
                return None
            with open(os.path.join(self.root, kind, record + ".json"), encoding="utf-8") as f:
                found: dict[str, Any] = json.load(f)
                return found
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Every record of a kind (reads make no folder: a service that never wrote has none)."""
        try:
            found = os.listdir(os.path.join(self.root, kind))
        except FileNotFoundError:
            return []
        names = sorted(n[:-5] for n in found if n.endswith(".json"))
        return [r for r in (self.read(kind, n) for n in names) if r is not None]

    def all_timed(self, kind: str) -> list[tuple[dict[str, Any], int]]:
        """Every record of a kind with the time it was last written (ns since the epoch: the same
        for every worker and process that reads it)."""
        found = []
        for doc in self.all(kind):
            try:
                at = os.stat(self.path(kind, doc["id"])).st_mtime_ns
            except (OSError, KeyError, ValueError):
                continue  # gone meanwhile, or not a record with an id
            found.append((doc, at))
        return found

    def write(self, kind: str, record: str, document: dict[str, Any]) -> None:
        self.write_bytes(self.path(kind, record), json.dumps(document).encode())

    def remove(self, kind: str, record: str, suffix: str = ".json") -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(kind, record, suffix))

    def write_bytes(self, path: str, data: bytes) -> None:
        """`path` holds `data` whole (mode 0600), or keeps what it held."""
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def secret(self, kind: str, value: str) -> Iterator[str]:
        """A temporary file (mode 0600) holding `value`, removed at the end unless it was kept
        (`keep`): how a password is tried before it is stored."""
        fd, tmp = tempfile.mkstemp(dir=self.folder(kind), prefix=".secret-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(value)
            yield tmp
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def keep(self, tmp: str, kind: str, record: str, suffix: str) -> None:
        os.replace(tmp, self.path(kind, record, suffix))

    @contextlib.contextmanager
    def locked(self, kind: str) -> Iterator[None]:
        """Exclusive across threads, workers and processes of this host (an flock)."""
        fd = os.open(os.path.join(self.folder(kind), ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            flock(fd)
            yield
        finally:
            os.close(fd)  # releases the flock
