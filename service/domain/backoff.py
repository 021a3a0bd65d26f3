"""Waiting for something another holds (a lock, a name): the one way dockvol tries again."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(attempt: Callable[[], bool], first: float, most: float, within: float | None = None) -> bool:
    """Call `attempt` until it returns True, pausing `first` seconds, then twice as long each time
    up to `most`; with `within`, give up (False) once that many seconds have passed. The pauses
    are time.sleep's, so under gevent the worker's other requests run meanwhile."""
    deadline = None if within is None else time.monotonic() + within
    pause = first
    while not attempt():
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, most)
    return True
