"""Tar streams: spooling and checking uploads, reading engine archives without holding them.

Everything here works chunk by chunk, so memory does not grow with a volume's size.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from typing import IO, Callable, Iterable, Iterator

from ..errors import InvalidInput, TooLarge

CHUNK = 1 << 20
ALLOWED_TYPES = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE}


@dataclass(frozen=True)
class Entry:
    name: str
    type: str  # file | directory | symlink | hardlink | other
    size: int
    mode: int
    mtime: int
    link_target: str | None


def refuse(message: str) -> InvalidInput:
    return InvalidInput("archive", message)


def spool(stream: IO[bytes], max_bytes: int, directory: str | None = None) -> IO[bytes]:
    """Copy an upload to a temporary file (deleted on close), refusing more than `max_bytes`."""
    spooled = tempfile.TemporaryFile(dir=directory)
    total = 0
    try:
        while chunk := stream.read(CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise TooLarge(f"the archive is over the limit of {max_bytes} bytes")
            spooled.write(chunk)
        spooled.seek(0)
        return spooled
    except BaseException:
        spooled.close()
        raise


def check_upload(spooled: IO[bytes], base: str, max_bytes: int) -> int:
    """Check every entry before anything reaches a volume; the number of entries.

    `base` is where, inside the volume, the archive will be extracted ('' for its root)."""
    count = total = 0
    try:
        with tarfile.open(fileobj=spooled, mode="r:*") as tar:
            for member in tar:
                _check_entry(member, base)
                count += 1
                total += member.size
                if total > max_bytes:
                    raise TooLarge(f"the archive unpacks to more than {max_bytes} bytes")
    except tarfile.TarError as exc:
        raise refuse(f"not a readable tar or tar.gz archive ({exc.__class__.__name__})") from None
    spooled.seek(0)
    return count


def _check_entry(m: tarfile.TarInfo, base: str) -> None:
    name = m.name
    if "\x00" in name or name.startswith("/"):
        raise refuse(f"{name!r}: absolute names are refused")
    if ".." in name.split("/"):
        raise refuse(f"{name!r}: '..' is refused")
    if m.type not in ALLOWED_TYPES:
        kind = "device node" if m.isdev() and not m.isfifo() else "FIFO" if m.isfifo() else "entry of this type"
        raise refuse(f"{name!r}: a {kind} is refused")
    if m.issym() or m.islnk():
        target = m.linkname
        if target.startswith("/") or "\x00" in target:
            raise refuse(f"{name!r}: links to absolute paths are refused")
        if m.islnk() and ".." in target.split("/"):
            raise refuse(f"{name!r}: a hard link may not use '..'")
        start = posixpath.dirname(name) if m.issym() else ""  # a hard link names a path from the root
        resolved = posixpath.normpath(posixpath.join(base, start, target))
        if resolved == ".." or resolved.startswith("../"):
            raise refuse(f"{name!r}: a link leaving the volume is refused")


class ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (for tarfile's streaming mode)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def entries(chunks: Iterable[bytes]) -> Iterator[Entry]:
    """The entries of a tar stream, read once from start to end, data skipped."""
    with tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks), CHUNK), mode="r|") as tar:
        for m in tar:
            kind = ("directory" if m.isdir() else "symlink" if m.issym() else "hardlink" if m.islnk()
                    else "file" if m.isreg() else "other")
            yield Entry(m.name, kind, m.size, m.mode & 0o7777, int(m.mtime), m.linkname or None)


def first_file(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The content of the first (only) regular file in a tar stream, chunk by chunk."""
    with tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks), CHUNK), mode="r|") as tar:
        for m in tar:
            if m.isreg():
                source = tar.extractfile(m)
                while chunk := source.read(CHUNK):
                    yield chunk
                return


def gzipped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
    for chunk in chunks:
        if out := compressor.compress(chunk):
            yield out
    yield compressor.flush()


class Stream:
    """Chunks for a response body, with cleanup that runs exactly once: when the body has been
    sent, when the client goes away mid-way, or when the response is never sent at all."""

    def __init__(self, chunks: Iterable[bytes], cleanup: Callable[[], None]) -> None:
        self._chunks = chunks
        self._cleanup = cleanup
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._chunks
        finally:
            self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            close = getattr(self._chunks, "close", None)
            try:
                if close:
                    close()
            finally:
                self._cleanup()
