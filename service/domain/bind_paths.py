"""Which host paths may be bound into containers (DESIGN.md section 5).

A source is checked as text first (absolute, no `..`, no NUL, not too long), then
resolved with symlinks followed, then held against a fixed deny list and the
configured roots, component by component. Only the resolved path leaves here.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from typing import Callable, Iterable

from ..errors import Forbidden, InvalidInput

# Refused whatever the roots say: the host's system trees. The engine socket and data root join them.
SYSTEM_PATHS = ("/proc", "/sys", "/dev", "/etc", "/boot", "/usr", "/lib", "/lib64", "/bin", "/sbin")
MAX_PATH = 4096
MAX_COMPONENT = 255


def _within(path: PurePosixPath, other: PurePosixPath) -> bool:
    return path == other or path.is_relative_to(other)


class BindPolicy:
    def __init__(self, roots: Iterable[str], engine_paths: Callable[[], Iterable[str]]) -> None:
        """`engine_paths` gives the engine socket and data root; called only when a path is checked."""
        self._roots = tuple(roots)
        self._engine_paths = engine_paths

    def check(self, source: str, field: str) -> str:
        """The resolved path, or InvalidInput (malformed) / Forbidden (outside what is allowed)."""
        _check_syntax(source, field)
        resolved = PurePosixPath(os.path.realpath(source))
        denied = [*SYSTEM_PATHS, *self._engine_paths()]
        for d in denied:
            d_path = PurePosixPath(os.path.realpath(d))
            if _within(resolved, d_path) or _within(d_path, resolved):
                raise Forbidden(f"{field}: {source} is, holds or lies in a protected host path")
        roots = [PurePosixPath(os.path.realpath(r)) for r in self._roots]
        if not any(_within(resolved, r) for r in roots):
            if not roots:
                raise Forbidden(f"{field}: bind mounts are disabled (DOCKVOL_BIND_ROOTS is empty)")
            raise Forbidden(f"{field}: {source} does not lie inside a configured bind root")
        return str(resolved)

    def prepare(self, source: str, field: str) -> str:
        """Check, then create the source directory if missing (as `docker run -v` does)."""
        resolved = self.check(source, field)
        os.makedirs(resolved, mode=0o755, exist_ok=True)
        # Re-check: something could have swapped a component for a symlink meanwhile.
        if self.check(resolved, field) != resolved:
            raise Forbidden(f"{field}: {source} changed while it was being created")
        return resolved


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
