"""What dockvol's answered writes changed in the engine, in a ring every worker of a host shares.

Before a request that wrote is answered, its worker asks the engine for the events it recorded
since the request began (the request's own among them) and appends their digests here. A read in
any worker answers from its own view once that view has applied every digest appended since it
last looked (service/engine/viewed.py), so no read anywhere is older than a write answered before
it, and reads cost no engine call.

The ring is a small file mapped into every worker (gunicorn.conf.py names it in the directory the
workers share); appends take a POSIX record lock, which the kernel releases if a worker dies
holding it. Without a file (one process: tests, the development server) it lives in memory.

Layout: the count of digests ever appended (8 bytes), then SLOTS entries of (engine time in ns,
digest), the k-th appended at slot k % SLOTS. A reader more than SLOTS behind cannot tell what it
missed: it proves its view current with the engine instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
from collections.abc import Iterable

SLOTS = 4096
UNKNOWN = 0  # the digest of "something changed, but what could not be asked": readers ask the engine
_COUNT = struct.Struct("<Q")
_ENTRY = struct.Struct("<qq")
SIZE = _COUNT.size + SLOTS * _ENTRY.size


def digest(*key: object) -> int:
    """A stable 64-bit digest of an event's key, the same in every process (never UNKNOWN)."""
    value = int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "little", signed=True)
    return value or 1


class Written:
    def __init__(self, path: str | None = None) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        if path is None:
            self._map = mmap.mmap(-1, SIZE)
            return
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if os.fstat(self._fd).st_size < SIZE:
            os.ftruncate(self._fd, SIZE)
        self._map = mmap.mmap(self._fd, SIZE)

    def count(self) -> int:
        count: int = _COUNT.unpack_from(self._map, 0)[0]
        return count

    def append(self, entries: Iterable[tuple[int, int]]) -> None:
        entries = list(entries)
        if not entries:
            return
        with self._lock:
            if self._fd is not None:
                fcntl.lockf(self._fd, fcntl.LOCK_EX)
            try:
                n = self.count()
                # Only the last SLOTS fit; the count still grows by all, so that a reader who would
                # have needed the ones overwritten sees it is more than SLOTS behind.
                for i in range(max(0, len(entries) - SLOTS), len(entries)):
                    _ENTRY.pack_into(self._map, _COUNT.size + (n + i) % SLOTS * _ENTRY.size, *entries[i])
                # entries first, then the count: a reader that sees the count sees them
                _COUNT.pack_into(self._map, 0, n + len(entries))
            finally:
                if self._fd is not None:
                    fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def since(self, start: int) -> tuple[int, list[tuple[int, int]] | None]:
        """The count now and the entries appended from `start` on; None for the entries when some
        were overwritten before they could be read."""
        end = self.count()
        if end - start > SLOTS:
            return end, None
        entries = [_ENTRY.unpack_from(self._map, _COUNT.size + i % SLOTS * _ENTRY.size) for i in range(start, end)]
        if self.count() - start > SLOTS:  # a writer lapped the reader while it read
            return end, None
        return end, entries
