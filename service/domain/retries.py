"""The clean-ups this process could not finish because the engine was away (or refused): removing
a helper, releasing an operation's locks, recovering an operation. Each is tried again at every
reconciler pass of this process (`Intents.retry_own`) until it is done. One queue for all of them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..errors import DockvolError

log = logging.getLogger(__name__)


class Retries:
    def __init__(self) -> None:
        self._pending: dict[str, tuple[str, Callable[[], None]]] = {}  # key -> (what, action)
        self._lock = threading.Lock()

    def attempt(self, key: str, what: str, action: Callable[[], None], again: Callable[[], None] | None = None) -> None:
        """Do `action` now; if it fails on a dockvol error, log `what` failed and keep `again`
        (`action` itself unless given) under `key` for the next pass, replacing what was there."""
        try:
            action()
        except DockvolError as exc:
            log.error("could not %s: %s; trying again later", what, exc.detail)
            with self._lock:
                self._pending[key] = (what, again or action)

    def run(self) -> int:
        """One pass: try each kept action once; those that fail again stay. How many were tried."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for key, (what, action) in pending.items():
            self.attempt(key, what, action)
        return len(pending)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._pending
