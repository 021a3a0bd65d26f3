"""The check an uploaded archive passes before anything reaches a volume: spooled to disk under a
size cap, then read once, entry by entry, with no leniency that would let Python's tarfile and
the engine's reader see different archives. What passes is copied, header by header, into a plain
tar that holds exactly what was checked; that copy is what goes to the engine."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import tempfile
import time
import zlib
from typing import IO, TYPE_CHECKING

from ..errors import TooLarge
from ..streams import CHUNK
from .archive_links import Links
from .archives import data, refuse

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

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
    archive's symlinks (archive_links.MAX_LINKS at most), not its entries."""
    copy = tempfile.TemporaryFile(dir=directory)
    try:
        return copy, _copy_checked(spooled, copy, base, max_bytes, max_entries)
    except BaseException:
        copy.close()
        raise


def unpacked_bytes(checked: IO[bytes]) -> int:
    """What a checked copy adds to a volume as the engine measures it (`system df`): its files'
    bytes and its symbolic links' (a link's target's length); read from the headers only."""
    checked.seek(0)
    with _Reader.open(fileobj=checked, mode="r:", encoding=ENCODING[0], errors=ENCODING[1]) as tar:
        total = 0
        for member in tar:
            tar.members = []
            total += member.size if member.isreg() else len(member.linkname.encode()) if member.issym() else 0
    checked.seek(0)
    return total


def _copy_checked(spooled: Spooled, copy: IO[bytes], base: str, max_bytes: int, max_entries: int) -> int:
    count = 0
    links = Links(base)
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
                    _copy_data(data(tar, member), copy, header.size)
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
