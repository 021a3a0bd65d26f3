"""Tar streams: spooling and checking uploads, reading engine archives without holding them.

Everything here works chunk by chunk, so memory does not grow with a volume's size.
"""

from __future__ import annotations

import bisect
import bz2
import collections
import gzip
import io
import lzma
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from ..errors import InvalidInput, TooLarge

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK = 1 << 20
MAX_LINKS = 100_000  # symlinks an uploaded archive may hold: what checking it keeps in memory
MAX_LINK_TEXT = 16 << 20  # characters of those links' paths and targets
MAX_HOPS = 40  # links followed to resolve one path, as the kernel's ELOOP
MAX_STEPS = 4096  # components walked to resolve one path, its links' targets included
PATH_MAX = 4096  # bytes in a name or a link target, as the kernel's
MAX_EXTENDED = 1 << 20  # bytes in one extended header (pax, GNU long name), as Go's archive/tar
MAX_EXTENDED_RUN = 3  # extended headers before one entry (GNU: long name and long link; pax: one)
ALLOWED_TYPES = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE}
EXTENDED_TYPES = {
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
}
ENCODING = ("utf-8", "surrogateescape")  # names as bytes, whatever they are
# tarfile raises these for a header cut short and for a damaged one; its stubs leave them out.
_TRUNCATED: type[tarfile.HeaderError] = tarfile.TruncatedHeaderError  # type: ignore[attr-defined]  # not in stubs
_INVALID: type[tarfile.HeaderError] = tarfile.InvalidHeaderError  # type: ignore[attr-defined]  # not in stubs


# An upload as check_upload reads it: spooled to disk (spool), or in memory.
Spooled = io.BufferedRandom | io.BytesIO


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


def spool(stream: IO[bytes], max_bytes: int, directory: str | None = None) -> io.BufferedRandom:
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


def check_upload(
    spooled: Spooled, base: str, max_bytes: int, max_entries: int, directory: str | None = None
) -> tuple[IO[bytes], int]:
    """Check every entry before anything reaches a volume; a copy of the checked entries and their number.

    `base` is where, inside the volume, the archive will be extracted ('' for its root). The copy
    (a plain tar in a temporary file, deleted on close) is what goes to the engine: it holds
    exactly what was checked, however another reader would have read the upload's extended
    headers, damaged headers or compressed streams. One streaming pass: memory grows with the
    archive's symlinks (at most MAX_LINKS), not its entries."""
    copy = tempfile.TemporaryFile(dir=directory)
    try:
        return copy, _copy_checked(spooled, copy, base, max_bytes, max_entries)
    except BaseException:
        copy.close()
        raise


def _copy_checked(spooled: Spooled, copy: IO[bytes], base: str, max_bytes: int, max_entries: int) -> int:
    count = 0
    links = _Links(base)
    try:
        with _Reader.open(fileobj=_Uncompressed(spooled), mode="r|", encoding=ENCODING[0], errors=ENCODING[1]) as tar:
            for member in tar:
                tar.members = []  # tarfile keeps every entry it has read; we need none of them
                count += 1
                if count > max_entries:
                    raise TooLarge(f"the archive has more than {max_entries} entries (DOCKVOL_MAX_IMPORT_ENTRIES)")
                if fields := set(tar.pax_headers) - {"comment"}:  # git archive writes a comment
                    raise refuse(f"{member.name!r}: a global extended header setting {sorted(fields)} is refused")
                _check_entry(member)
                links.add(member)
                header = _as_checked(member)
                if copy.tell() + header.size > max_bytes:
                    raise TooLarge(f"the archive unpacks to more than {max_bytes} bytes")
                copy.write(header.tobuf(tarfile.PAX_FORMAT, *ENCODING))
                if header.size:
                    _copy_data(_data(tar, member), copy, header.size)
                if count % 100 == 0:
                    time.sleep(0)  # let other requests of this worker run (a gevent worker)
        copy.write(b"\0" * 2 * tarfile.BLOCKSIZE)  # the end of the archive
    except tarfile.TarError as exc:
        raise refuse(f"not a readable tar or tar.gz archive ({exc.__class__.__name__}: {exc})") from None
    copy.seek(0)
    return count


def _copy_data(source: IO[bytes], target: IO[bytes], size: int) -> None:
    """An entry's data, padded to whole blocks; other requests run between chunks."""
    left = size
    while left:
        chunk = source.read(min(CHUNK, left))
        if not chunk:
            raise tarfile.ReadError("unexpected end of data")
        target.write(chunk)
        left -= len(chunk)
        time.sleep(0)
    target.write(b"\0" * (-size % tarfile.BLOCKSIZE))


def _check_entry(m: tarfile.TarInfo) -> None:
    name = m.name
    if "\x00" in name or name.startswith("/"):
        raise refuse(f"{name!r}: absolute names are refused")
    if ".." in name.split("/"):
        raise refuse(f"{name!r}: '..' is refused")
    if m.type not in ALLOWED_TYPES:
        kind = "device node" if m.isdev() and not m.isfifo() else "FIFO" if m.isfifo() else "entry of this type"
        raise refuse(f"{name!r}: a {kind} is refused")
    if m.sparse is not None:
        raise refuse(f"{name!r}: GNU sparse entries (tar --sparse) are refused")
    if any(len(text.encode(*ENCODING)) >= PATH_MAX for text in (name, m.linkname)):
        raise refuse(f"{name[:200]!r}: names and link targets of {PATH_MAX} bytes or more are refused")
    if m.issym() or m.islnk():
        target = m.linkname
        if target.startswith("/") or "\x00" in target:
            raise refuse(f"{name!r}: links to absolute paths are refused")
        if m.islnk() and ".." in target.split("/"):
            raise refuse(f"{name!r}: a hard link may not use '..'")


def _as_checked(m: tarfile.TarInfo) -> tarfile.TarInfo:
    """A header holding what was checked and nothing else (extended attributes aside)."""
    header = tarfile.TarInfo(m.name)
    header.type = tarfile.REGTYPE if m.isreg() else m.type
    header.size = m.size if m.isreg() else 0
    header.linkname = m.linkname if m.issym() or m.islnk() else ""
    for field in ("mode", "mtime", "uid", "gid", "uname", "gname"):
        setattr(header, field, getattr(m, field))
    header.pax_headers = {k: v for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
    return header


class _Uncompressed(io.RawIOBase):
    """An upload as a plain tar stream: gzip, bzip2 or xz undone, every stream of them in turn
    (tarfile's own streaming reads only the first, which the engine would not stop at)."""

    def __init__(self, spooled: Spooled) -> None:
        magic = spooled.read(6)
        spooled.seek(0)
        self._raw: gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile | Spooled = (
            gzip.GzipFile(fileobj=spooled, mode="rb")
            if magic.startswith(b"\x1f\x8b")
            else bz2.BZ2File(spooled)
            if magic.startswith(b"BZh")
            else lzma.LZMAFile(spooled)
            if magic.startswith(b"\xfd7zXZ\x00")
            else spooled
        )

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        try:
            return self._raw.readinto(buffer)
        except (EOFError, zlib.error, lzma.LZMAError) as exc:
            raise tarfile.ReadError(f"damaged compressed data: {exc}") from None
        except OSError as exc:
            if exc.errno:  # the disk's, not the data's
                raise
            raise tarfile.ReadError(f"damaged compressed data: {exc}") from None


class _Header(tarfile.TarInfo):
    """A header read with no leniency that would let Python's tarfile and the engine's reader see
    different archives, and no extended header larger than the engine takes."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> _Header:
        header = super().frombuf(buf, encoding, errors)
        if header.type in EXTENDED_TYPES and header.size > MAX_EXTENDED:
            raise refuse(f"an extended header of {header.size} bytes is refused (at most {MAX_EXTENDED})")
        if header.type == tarfile.GNUTYPE_SPARSE:  # its map goes on for as many blocks as it says
            raise refuse(f"{header.name!r}: GNU sparse entries (tar --sparse) are refused")
        return header

    @classmethod
    def fromtarfile(cls, tar: _Reader) -> _Header:  # type: ignore[override]  # only _Reader reads a _Header
        # Each extended header reads the next one from inside (recursion), holding its own data.
        tar.extended_run += 1
        try:
            if tar.extended_run > MAX_EXTENDED_RUN + 1:
                raise refuse(f"more than {MAX_EXTENDED_RUN} extended headers in a row: readers disagree on them")
            return super().fromtarfile(tar)
        except _TRUNCATED:
            raise refuse("the archive ends in the middle of a header") from None
        except (_INVALID, ValueError) as exc:  # tarfile would stop as if at the end; Go reads on
            raise refuse(f"a damaged tar header ({exc}), or not a tar archive") from None
        finally:
            tar.extended_run -= 1

    def _proc_gnusparse_10(self, member: tarfile.TarInfo, *_: object) -> None:
        # GNU sparse 1.0 keeps its map in the data, as many numbers as it says: refuse before
        # tarfile reads it (a private hook of tarfile; the unit tests notice if it goes away).
        raise refuse(f"{member.name!r}: GNU sparse entries (tar --sparse) are refused")


class _Reader(tarfile.TarFile):
    tarinfo = _Header
    members: list[tarfile.TarInfo]  # every entry read so far (tarfile's, left out of its stubs)
    extended_run = 0  # headers being read for the next entry (see _Header.fromtarfile)


class _Links:
    """The symlinks an extractor has made so far, entry after entry, so that each entry's path
    and each link's target are resolved as the extractor will resolve them: through earlier
    links. Paths are components from the volume's root; leaving the root is refused.

    An extractor replaces what an entry's path names: a link there goes, and so does everything
    under it unless a directory meets a directory. Walking a path asks, component by component,
    whether it is a link: first of a set of hashes chained along the components (O(1) a step
    however deep the path), then of the table on a hit."""

    def __init__(self, base: str) -> None:
        self._base = [p for p in base.split("/") if p]
        self._targets: dict[str, str] = {}  # "a/b" -> its target, as written
        self._sorted: list[str] = []  # the same paths in order: those under "a" lie in ["a/", "a0")
        self._hashes: collections.Counter[int] = collections.Counter()  # _chain of each path
        self._text = 0

    def add(self, m: tarfile.TarInfo) -> None:
        parts = _parts(m.name)
        if not parts:
            if not m.isdir():
                raise refuse(f"{m.name!r}: the extraction directory itself can only be a directory")
            return
        parent = self._resolve(self._base + parts[:-1], m.name, "its path")
        key = "/".join([*parent, parts[-1]])
        target = m.linkname if m.issym() else None
        if m.islnk():  # names a path from the extraction directory, last part not followed: a
            linked = _parts(m.linkname)  # hard link to a symlink is that symlink again
            if linked:
                linked_parent = self._resolve(self._base + linked[:-1], m.name, "its link target")
                target = self._targets.get("/".join([*linked_parent, linked[-1]]))
        self._forget(key, under=not m.isdir())
        if target is not None:
            self._resolve(parent + target.split("/"), m.name, "its link target")
            self._remember(key, target)

    def _resolve(self, parts: list[str], entry: str, what: str) -> list[str]:
        """Follow every link in `parts` (all of them are directories on the way)."""
        done: list[str] = []
        chained = [0]  # chained[i]: _chain of done[:i]
        todo = collections.deque(parts)
        hops = steps = 0
        while todo:
            steps += 1
            if steps > MAX_STEPS:
                raise refuse(f"{entry!r}: {what} takes more than {MAX_STEPS} steps to resolve")
            part = todo.popleft()
            if part in ("", "."):
                continue
            if part == "..":
                if not done:
                    raise refuse(f"{entry!r}: {what} leaves the volume")
                done.pop()
                chained.pop()
                continue
            h = _chain(chained[-1], part)
            target = self._targets.get("/".join([*done, part])) if h in self._hashes else None
            if target is None:
                done.append(part)
                chained.append(h)
                continue
            hops += 1
            if hops > MAX_HOPS:
                raise refuse(f"{entry!r}: {what} goes through a loop of links")
            todo.extendleft(reversed(target.split("/")))
        return done

    def _remember(self, path: str, target: str) -> None:
        if len(self._targets) >= MAX_LINKS:
            raise TooLarge(f"the archive has more than {MAX_LINKS} symbolic links (checking keeps them in memory)")
        self._text += len(path) + len(target)
        if self._text > MAX_LINK_TEXT:
            raise TooLarge(
                f"the archive's symbolic links hold more than {MAX_LINK_TEXT} characters of names and targets"
            )
        self._targets[path] = target
        bisect.insort(self._sorted, path)
        self._hashes[_hash(path)] += 1

    def _forget(self, path: str, under: bool) -> None:
        """A link at `path` goes, and with `under` every link below it."""
        doomed = []
        if under:
            low, high = bisect.bisect_left(self._sorted, path + "/"), bisect.bisect_left(self._sorted, path + "0")
            doomed = self._sorted[low:high]
            del self._sorted[low:high]
        if path in self._targets:
            del self._sorted[bisect.bisect_left(self._sorted, path)]
            doomed.append(path)
        for gone in doomed:
            self._text -= len(gone) + len(self._targets.pop(gone))
            h = _hash(gone)
            self._hashes[h] -= 1
            if not self._hashes[h]:
                del self._hashes[h]


def _parts(name: str) -> list[str]:
    return [p for p in name.split("/") if p not in ("", ".")]


def _chain(h: int, part: str) -> int:
    return hash((h, part))


def _hash(path: str) -> int:
    h = 0
    for part in path.split("/"):
        h = _chain(h, part)
    return h


class ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (for tarfile's streaming mode)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(view.nbytes, len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def entries(chunks: Iterable[bytes]) -> Iterator[Entry]:
    """The entries of a tar stream, read once from start to end, data skipped."""
    with tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks), CHUNK), mode="r|") as tar:
        for m in tar:
            kind = (
                "directory"
                if m.isdir()
                else "symlink"
                if m.issym()
                else "hardlink"
                if m.islnk()
                else "file"
                if m.isreg()
                else "other"
            )
            yield Entry(m.name, kind, m.size, m.mode & 0o7777, int(m.mtime), m.linkname or None)


def first_file(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The content of the first (only) regular file in a tar stream, chunk by chunk."""
    with tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks), CHUNK), mode="r|") as tar:
        for m in tar:
            if m.isreg():
                source = _data(tar, m)
                while chunk := source.read(CHUNK):
                    yield chunk
                return


def _data(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    """A regular file's data (tarfile has none for other types)."""
    data = tar.extractfile(member)
    if data is None:
        raise refuse(f"{member.name!r}: not a regular file")
    return data


def single_file_tar(name: str, content: IO[bytes], size: int) -> Iterator[bytes]:
    """A tar stream of one regular file, its content read chunk by chunk (memory stays flat)."""
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o600
    yield info.tobuf(format=tarfile.PAX_FORMAT)
    left = size
    while left > 0:
        chunk = content.read(min(CHUNK, left))
        if not chunk:
            raise OSError("the staged upload ended early")
        left -= len(chunk)
        yield chunk
    yield b"\0" * (-size % tarfile.BLOCKSIZE) + b"\0" * (2 * tarfile.BLOCKSIZE)


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
