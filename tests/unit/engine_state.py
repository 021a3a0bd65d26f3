"""What the in-memory engine holds, and what lies on disk under some directories, as one value to
compare: a refusal promises "nothing else changed", and `snapshot` before and after says whether
that held (`assert snapshot(engine, root) == before`; pytest shows the difference field by field).

Compared: every volume (name, driver, options, labels, creation time), every container (id, name,
state, labels, mounts, image, network), every volume's files (type, mode, link target, content),
and every path under the directories given (type, mode, link target). Not compared: images (the
first operation imports dockvol's helper image), call counts and the event log."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakes.memory import InMemoryEngine


@dataclass(frozen=True)
class EngineState:
    volumes: dict[str, dict[str, Any]]
    containers: dict[str, dict[str, Any]]
    files: dict[str, dict[str, tuple[str, int, str, bytes]]]
    paths: dict[str, tuple[str, int, str]]

    def container(self, name: str) -> dict[str, Any]:
        """The one container of that name."""
        (found,) = [c for c in self.containers.values() if c["name"] == name]
        return found


def snapshot(engine: InMemoryEngine, *directories: Path | str) -> EngineState:
    # A volume's tree is made on first read (an empty root): make it for each, so that a read
    # does not look like a change.
    files = {name: _files(engine, name) for name in engine.volumes}
    return EngineState(
        volumes={name: dataclasses.asdict(v) for name, v in engine.volumes.items()},
        containers={cid: dataclasses.asdict(c) for cid, c in engine.containers.items()},
        files=files,
        paths={k: v for d in directories for k, v in _paths(Path(d)).items()},
    )


def _files(engine: InMemoryEngine, volume: str) -> dict[str, tuple[str, int, str, bytes]]:
    return {
        path: (info.type.decode(), info.mode, info.linkname, content)
        for path, (info, content) in engine.files.tree(volume).items()
    }


def _paths(top: Path) -> dict[str, tuple[str, int, str]]:
    """Every path under `top` (itself included), links not followed."""
    if not os.path.lexists(top):
        return {}
    found = {str(top): _path(str(top))}
    for here, dirs, names in os.walk(top):
        for name in [*dirs, *names]:
            path = os.path.join(here, name)
            found[path] = _path(path)
    return found


def _path(path: str) -> tuple[str, int, str]:
    st = os.lstat(path)
    kind = "link" if os.path.islink(path) else "dir" if os.path.isdir(path) else "file"
    return kind, st.st_mode & 0o7777, os.readlink(path) if kind == "link" else ""
