"""Test-only: hold the process still after its N-th change to the engine, so the faults tier can
kill it (or restart the engine) at an exact step of an operation. gunicorn runs the held app by
the name `held_app` gives: dockvol's own app factory, over the engine the environment names,
wrapped in the hold. Kept out of the product."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask

from service import app
from service.config import Settings
from service.engine.port import Engine

log = logging.getLogger(__name__)
CHANGES = frozenset(
    {
        "create_volume",
        "remove_volume",
        "prune_volumes",
        "create_container",
        "start_container",
        "stop_container",
        "rename_container",
        "remove_container",
        "pause_container",
        "unpause_container",
        "put_archive",
    }
)


class HoldingEngine:
    def __init__(self, engine: Engine, after: int, release_file: str) -> None:
        self._engine = engine
        self._after = after
        self._release_file = release_file
        self._count = itertools.count(1)
        self._lock = threading.Lock()

    def __getattr__(self, operation: str) -> Any:
        target = getattr(self._engine, operation)
        if operation not in CHANGES:
            return target

        def held(*args: Any, **kwargs: Any) -> Any:
            result = target(*args, **kwargs)
            with self._lock:
                n = next(self._count)
            if n == self._after:
                log.warning("test hold after engine change %d (%s)", n, operation)
                while not os.path.exists(self._release_file):
                    time.sleep(0.05)
            return result

        return held


def held_app(after: int, release_file: str | Path) -> str:
    """gunicorn's name for dockvol's app holding after its `after`-th engine change until
    `release_file` exists (gunicorn reads the arguments as Python literals)."""
    return f"{__name__}:create_app({after!r}, {str(release_file)!r})"


def create_app(after: int, release_file: str) -> Flask:
    """dockvol's app, as `service.app:create_app()` builds it, on a Docker engine that holds."""
    settings = Settings.from_env()
    return app.create_app(settings, HoldingEngine(app.docker_engine(settings), after, release_file))
