"""Slow clients cost nothing: a request body must keep up a minimum rate.

gunicorn's gevent worker (the default, deploy/gunicorn.conf.py) gives each connection a greenlet,
not a thread, so clients that trickle cannot starve the others, and it bounds the time to receive
a request's headers (`keepalive` seconds). The body is read later, by the app: `PacedInput` makes
every read of it finish by a deadline that moves with what has arrived (BODY_GRACE seconds, then
BODY_MIN_RATE bytes a second on average); a client slower than that gets 408 and the connection
closes. Under a worker without gevent the body is read as it comes (no timer to bound a read).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from werkzeug.exceptions import RequestTimeout

BODY_GRACE = 10.0  # seconds any body may take
BODY_MIN_RATE = 4096  # bytes a second, on average, after that


class SlowBody(RequestTimeout):
    description = f"The request body arrived slower than {BODY_MIN_RATE} bytes a second."


def _gevent_timeout() -> Any:
    try:
        from gevent import Timeout, monkey
    except ImportError:
        return None
    return Timeout if monkey.is_module_patched("socket") else None


class PacedInput:
    """A wsgi.input whose reads must keep up the minimum rate."""

    def __init__(self, stream: Any, timeout: Any) -> None:
        self._stream = stream
        self._timeout = timeout
        self._started = time.monotonic()
        self._read = 0

    def read(self, *args: Any) -> bytes:
        return self._paced(self._stream.read, *args)

    def readline(self, *args: Any) -> bytes:
        return self._paced(self._stream.readline, *args)

    def readlines(self, *args: Any) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def _paced(self, read: Callable[..., bytes], *args: Any) -> bytes:
        remaining = self._started + BODY_GRACE + self._read / BODY_MIN_RATE - time.monotonic()
        if remaining <= 0:
            raise SlowBody()
        with self._timeout(remaining, SlowBody()):
            data = read(*args)
        self._read += len(data)
        return data


class PacedBodies:
    """WSGI middleware: wrap every request's body in PacedInput (under gevent)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._app = app
        self._timeout = _gevent_timeout()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self._timeout is not None and "wsgi.input" in environ:
            environ["wsgi.input"] = PacedInput(environ["wsgi.input"], self._timeout)
        return self._app(environ, start_response)
