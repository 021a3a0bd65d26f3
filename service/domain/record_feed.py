"""The watch's second source: dockvol's own records in the state dir (backup runs and restores),
which no engine event tells of. Each worker polls them every INTERVAL seconds and tells its watch
(watch.py) what changed, each change at the time its record was written (the file's mtime, the
same for every worker that reads it, so they give it the same id). A record that goes is told
`deleted` at the time it was missed. What the watch shows of them is based with the rest at each
listing (http/feed.py), so a relist tells nothing twice."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..json_types import JSON
from .changes import Key
from .watch import Watch

log = logging.getLogger(__name__)
INTERVAL = 1.0  # seconds between two looks


class RecordFeed:
    def __init__(self, read: Callable[[], dict[Key, tuple[JSON, int]]], watch: Watch) -> None:
        self._read = read
        self._watch = watch
        self._keys: set[Key] | None = None  # None: not looked yet (the watch's base has them)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> None:
        """One look: every record as it stands, and those that went."""
        found = self._read()
        for key, (document, at) in sorted(found.items(), key=lambda item: item[1][1]):
            self._watch.noted(key, document, at)
        for key in (self._keys or set()) - found.keys():
            self._watch.noted(key, None, time.time_ns())
        self._keys = set(found)

    def start_in_background(self, interval: float = INTERVAL) -> None:
        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.poll()
                except Exception:  # a record being written; the next look sees it whole
                    log.exception("the records feed could not read the state dir")

        self._thread = threading.Thread(target=run, name="dockvol-record-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
