"""Tar streams the engine reads and writes (a volume's export, one file put in or taken out),
read once from start to end without holding them; and how an archive is refused.

The check an upload passes before it reaches a volume is archive_check.py."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from ..errors import InvalidInput
from ..streams import CHUNK, ChunkReader


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
                source = data(tar, m)
                while chunk := source.read(CHUNK):
                    yield chunk
                return


def data(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    """A regular file's data (tarfile has none for other types)."""
    found = tar.extractfile(member)
    if found is None:
        raise refuse(f"{member.name!r}: not a regular file")
    return found


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


class FileCount:
    """Counts the regular files of a tar stream as its chunks pass by, holding none of them: the
    headers are read where they fall (512-byte blocks, data skipped by its size), so a backup
    counts its volume's files on the way to restic. Extended headers (pax, GNU long names) carry
    data of their own and are no entry. `files` is None once the stream stops reading as a tar."""

    BLOCK = 512

    def __init__(self) -> None:
        self.files: int | None = 0
        self._skip = 0  # bytes of data (rounded to whole blocks) before the next header
        self._header = bytearray()

    def feed(self, chunk: bytes) -> None:
        view, at = memoryview(chunk), 0
        while at < len(view) and self.files is not None:
            if self._skip:
                taken = min(self._skip, len(view) - at)
                self._skip -= taken
                at += taken
                continue
            taken = min(self.BLOCK - len(self._header), len(view) - at)
            self._header += view[at : at + taken]
            at += taken
            if len(self._header) == self.BLOCK:
                self._read(bytes(self._header))
                self._header.clear()

    def _read(self, header: bytes) -> None:
        if header == bytes(self.BLOCK):
            return  # the end's zero blocks
        try:
            size = tarfile.nti(header[124:136])  # type: ignore[attr-defined]  # octal or base-256
        except tarfile.HeaderError:
            self.files = None
            return
        kind = header[156:157]
        if kind in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE):
            assert self.files is not None
            self.files += 1
        if kind not in (tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE):  # which have no data
            self._skip = -(-size // self.BLOCK) * self.BLOCK
