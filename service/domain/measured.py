"""Measured volume bytes of each project (the `bytes` quota; docs/design.md, "Projects").

A measurement is the engine's own size of every volume (`system df`: files' and symbolic links'
bytes, as the engine counts them), added up by the volumes' projects and kept with the time it
was taken. One measurement serves this process's answers and checks until it is older than
DOCKVOL_USAGE_INTERVAL; a write's check asks for a fresh one. `system df` walks every volume's
files, so its cost grows with the data: measuring on demand, not on every request, bounds it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .. import times
from ..engine.port import Engine
from . import labels as label


@dataclass(frozen=True)
class Measurement:
    at: str  # RFC 3339: when the engine was asked
    sizes: Mapping[str, int]  # managed volumes' bytes, by name (0 where the engine does not know)
    owners: Mapping[str, str | None]  # managed volume -> its project

    def used(self, project: str) -> int:
        return sum(size for name, size in self.sizes.items() if self.owners.get(name) == project)

    def size(self, volume: str) -> int:
        return self.sizes.get(volume, 0)


class Meter:
    def __init__(
        self,
        engine: Engine,
        interval: float,
        owner: Callable[[Mapping[str, str]], str | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._interval = interval
        self._owner = owner  # a volume's project, from its labels
        self.clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, Measurement] | None = None

    def forget(self) -> None:
        """This process changed what was measured: the next answer or check measures again."""
        with self._lock:
            self._last = None

    def measure(self, fresh: bool = False) -> Measurement:
        """The last measurement, or a new one if it is older than the interval (or `fresh`)."""
        with self._lock:
            last = self._last
        if last is not None and not fresh and self.clock() - last[0] < self._interval:
            return last[1]
        taken, at = self.clock(), times.now()
        sizes = self._engine.volume_sizes()
        volumes = self._engine.list_volumes([f"{label.MANAGED}=true"])
        owners = {v.name: self._owner(v.labels) for v in volumes}
        measured = Measurement(at, {n: max(sizes.get(n, 0), 0) for n in owners}, owners)
        with self._lock:
            if self._last is None or self._last[0] <= taken:  # a slower measurement does not replace a newer one
                self._last = (taken, measured)
        return measured
