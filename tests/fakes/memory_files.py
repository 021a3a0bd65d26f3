"""The in-memory engine's volume contents: tar members per volume, read and written as the
engine's archive API does (`get_archive`, `put_archive`). Part of the fake; tests/contract
holds it to the real engine's behaviour."""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterable, Iterator
from typing import IO

from service.engine.port import PathStat
from service.errors import EngineFailure, EngineRejected, NotFound

GO_DIR, GO_SYMLINK = 1 << 31, 1 << 27
CHUNK = 64 * 1024


def _rel(path: str) -> str:
    """'./a/b', '/a/b/' or 'a/b' -> 'a/b'; the root -> ''."""
    path = posixpath.normpath("/" + path).lstrip("/")
    return "" if path == "." else path


class MemoryArchive:
    def __init__(self, data: bytes, stat: PathStat) -> None:
        self._data = data
        self.stat = stat
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for i in range(0, len(self._data), CHUNK):
            if self.closed:
                return
            yield self._data[i : i + CHUNK]

    def close(self) -> None:
        self.closed = True


class VolumeFiles:
    def __init__(self) -> None:
        self._trees: dict[str, dict[str, tuple[tarfile.TarInfo, bytes]]] = {}

    def tree(self, volume: str) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
        if volume not in self._trees:
            root = tarfile.TarInfo(".")
            root.type, root.mode = tarfile.DIRTYPE, 0o755
            self._trees[volume] = {"": (root, b"")}
        return self._trees[volume]

    def size(self, volume: str) -> int:
        """What the engine's `system df` counts: files' and symbolic links' sizes (a link's is its
        target's length), no directory's."""
        tree = self._trees.get(volume, {})
        return sum(
            len(data) if info.isreg() else len(info.linkname) if info.issym() else 0 for info, data in tree.values()
        )

    def drop(self, volume: str) -> None:
        self._trees.pop(volume, None)

    def archive(self, volume: str, rel: str) -> MemoryArchive:
        """`rel` is '' (or '.') for the root; a trailing '/.' asks for a directory's content."""
        contents = rel == "." or rel.endswith("/.")
        rel = _rel(rel)
        tree = self.tree(volume)
        if rel not in tree:
            parent = posixpath.dirname(rel)
            while parent and parent not in tree:
                parent = posixpath.dirname(parent)
            if parent and not tree[parent][0].isdir():  # as the engine: an error of its own, not a 404
                raise EngineFailure(f"{parent} is not a directory")
            raise NotFound("not found in the engine")
        info, _ = tree[rel]
        prefix = "." if contents else (posixpath.basename(rel) or ".")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(tree):
                if path == rel or path.startswith(rel + "/") or rel == "":
                    member, data = tree[path]
                    inner = path[len(rel) :].lstrip("/")
                    copy = member.replace(name=f"{prefix}/{inner}" if inner else prefix)
                    tar.addfile(copy, io.BytesIO(data) if member.isreg() else None)
        kind = GO_DIR if info.isdir() else GO_SYMLINK if info.issym() else 0
        stat = PathStat(
            prefix if contents else posixpath.basename(rel) or ".",
            info.size,
            kind | info.mode,
            "2026-01-01T00:00:00Z",
            info.linkname if info.issym() else "",
        )
        return MemoryArchive(buf.getvalue(), stat)

    def extract(self, volume: str, rel: str, data: IO[bytes] | Iterable[bytes] | bytes) -> None:
        rel = _rel(rel)
        tree = self.tree(volume)
        if rel not in tree or not tree[rel][0].isdir():
            raise NotFound("not found in the engine")
        raw = data if isinstance(data, bytes) else data.read() if hasattr(data, "read") else b"".join(data)
        try:
            with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tar:
                for member in tar:
                    path = _rel(posixpath.join(rel, member.name))
                    file = tar.extractfile(member) if member.isreg() else None
                    content = file.read() if file is not None else b""
                    tree[path] = (member.replace(name=path or "."), content)
        except tarfile.TarError as exc:
            raise EngineRejected("the engine refused this archive") from exc
