"""The engine port, timed: wraps any implementation and records each call's latency and failures
(metrics in service/http/observability.py). Archives are timed until they are opened, not read."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..errors import DockvolError, NotFound
from .port import Engine

log = logging.getLogger(__name__)


class InstrumentedEngine:
    def __init__(self, engine: Engine, observe: Callable[[str, float, str | None], None]) -> None:
        """`observe(operation, seconds, error kind or None)` is called after every call."""
        self._engine = engine
        self._observe = observe

    def __getattr__(self, operation: str) -> Any:
        target = getattr(self._engine, operation)
        if not callable(target) or operation.startswith("_"):
            return target

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            error = None
            try:
                return target(*args, **kwargs)
            except NotFound:
                raise  # an answer, not a failure
            except DockvolError as exc:
                error = type(exc).__name__
                log.warning("engine call %s failed: %s", operation, exc.detail, extra={"operation": operation})
                raise
            finally:
                self._observe(operation, time.perf_counter() - started, error)

        return timed
