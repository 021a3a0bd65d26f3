"""Where an upload's entries land, resolved through the symbolic links of the entries before them
(archive_check.py asks, entry by entry). The table of links is all that checking an upload keeps
in memory, so it is bounded, and so is each walk through it."""

from __future__ import annotations

import bisect
import collections
import tarfile

from ..errors import TooLarge
from .archives import refuse

MAX_LINKS = 100_000  # symlinks an uploaded archive may hold: what checking it keeps in memory
MAX_LINK_TEXT = 16 << 20  # characters of those links' paths and targets
MAX_HOPS = 40  # links followed to resolve one path, as the kernel's ELOOP
MAX_STEPS = 4096  # components walked to resolve one path, its links' targets included


class Links:
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
