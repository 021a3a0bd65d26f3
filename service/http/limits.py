"""Hostile request input costs nothing: bounded JSON, and bodies at a minimum rate.

JSON: `load_json` is the one way request bodies are parsed (webargs' parser in smorest.py and
Flask's `request.get_json` through `JSONProvider`). What the parser cannot take (nesting that
exhausts the stack, integers of more than 4300 digits, bytes that are not UTF-8), documents nested
deeper than MAX_JSON_DEPTH (counted without recursion) and strings holding lone surrogates (not
Unicode) raise `BadJson`, a ValueError: a 400 problem, like any malformed JSON.

Slow clients: gunicorn's gevent worker (the default, deploy/gunicorn.conf.py) gives each connection
a greenlet, not a thread, so clients that trickle cannot starve the others, and it reads a
request's headers under a `keepalive`-second timeout. The body is read later, by the app:
`PacedInput` holds the client to BODY_MIN_RATE bytes a second on average after BODY_GRACE seconds,
counting only the time the app spends waiting for the client (never its own work between reads).
A large read is made of pieces no larger than what a client at the minimum rate sends in half the
time still allowed, so that such a client is never cut and the allowance grows as data arrives (a fast
client soon reads in large pieces). A slower client gets 408 and the connection closes. Under a
worker without gevent the body is read as it comes (no timer to bound a read).

Lingering close: a response that closes the connection before the body was read whole (408, and
any other answer given early) would make the kernel reset the connection as soon as the client's
next bytes arrive, and a reset can destroy the answer before the client reads it (it then sees
"connection reset", not 408). So, as web servers do, dockvol half-closes the socket after the
answer is written and reads and discards what still comes, for at most LINGER_SECONDS (less if the
client goes quiet for LINGER_QUIET seconds), before gunicorn closes it.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import RequestTimeout

MAX_JSON_DEPTH = 32  # dockvol's deepest document (a mount's options) is 4 levels
BODY_GRACE = 10.0  # seconds any body may take
BODY_MIN_RATE = 4096  # bytes a second, on average, after that

LINGER_SECONDS = 5.0  # at most, after a closing answer to an unread body
LINGER_QUIET = 2.0  # seconds without a byte that end the lingering sooner
MIN_PIECE = 1024  # bytes: the smallest piece a large read is made of
_SURROGATE = re.compile("[\ud800-\udfff]")


class BadJson(ValueError):
    """A body past dockvol's JSON limits; str() is the reason, for the client."""


def load_json(data: bytes | str) -> Any:
    """json.loads within dockvol's limits (see the module's doc); json.JSONDecodeError for
    malformed JSON, as json.loads."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadJson(f"not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(data)
    except RecursionError:
        raise BadJson(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        reason = "a number too long to read" if "digits" in str(exc) else "not readable"
        raise BadJson(reason) from None
    _check(value)
    return value


def _check(value: Any) -> None:
    """Depth and strings, walked with a stack of our own (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                raise BadJson("a string holds a lone surrogate (\\ud800-\\udfff), which is not Unicode")
        elif isinstance(item, (dict, list)):
            if level > MAX_JSON_DEPTH:
                raise BadJson(f"nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                stack.extend((key, level) for key in item)
                stack.extend((child, level + 1) for child in item.values())
            else:
                stack.extend((child, level + 1) for child in item)


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, with request bodies (`request.get_json`) parsed by `load_json`; answers are
    written compact, in the order their documents (and ordered schemas) give, with a newline."""

    compact = True
    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return load_json(s)


class SlowBody(RequestTimeout):
    description = f"The request body arrived slower than {BODY_MIN_RATE} bytes a second."


def _gevent_timeout() -> Any:
    try:
        from gevent import Timeout, monkey
    except ImportError:
        return None
    return Timeout if monkey.is_module_patched("socket") else None


class PacedInput:
    """A wsgi.input whose reads must keep up the minimum rate (see the module's doc)."""

    def __init__(self, stream: Any, timeout: Any, grace: float = BODY_GRACE, rate: float = BODY_MIN_RATE) -> None:
        self._stream = stream
        self._timeout = timeout
        self._grace, self._rate = grace, rate
        self._waited = 0.0  # seconds spent waiting for the client
        self._got = 0
        self.ended = False  # the body was read to its end

    def read(self, size: int | None = -1) -> bytes:
        whole = size is None or size < 0
        parts: list[bytes] = []
        left = size if size is not None and size >= 0 else 0
        while whole or left > 0:
            data = self._paced(self._stream.read, None if whole else left)
            if not data:
                self.ended = True
                break
            parts.append(data)
            left -= len(data)
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        whole = size is None or size < 0
        parts: list[bytes] = []
        left = size if size is not None and size >= 0 else 0
        while whole or left > 0:
            data = self._paced(self._stream.readline, None if whole else left)
            if not data:
                self.ended = True
                break
            parts.append(data)
            left -= len(data)
            if data.endswith(b"\n"):
                break
        return b"".join(parts)

    def readlines(self, *args: Any) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def _paced(self, read: Callable[[int], bytes], size: int | None) -> bytes:
        allowed = self._grace + self._got / self._rate - self._waited
        if allowed <= 0:
            raise SlowBody()
        piece = max(MIN_PIECE, int(allowed * self._rate / 2))  # the minimum rate delivers it in time
        started = time.monotonic()
        try:
            with self._timeout(allowed, SlowBody()):
                data = read(piece if size is None else min(size, piece))
        finally:
            self._waited += time.monotonic() - started
        self._got += len(data)
        return data


class PacedBodies:
    """WSGI middleware: wrap every request's body in PacedInput (under gevent)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._app = app
        self._timeout = _gevent_timeout()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self._timeout is None or "wsgi.input" not in environ:
            return self._app(environ, start_response)
        body = environ["wsgi.input"] = PacedInput(environ["wsgi.input"], self._timeout)
        closing = False

        def starting(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            nonlocal closing
            closing = any(k.lower() == "connection" and v.lower() == "close" for k, v in headers)
            return start_response(status, headers, *rest)

        result = self._app(environ, starting)
        sock = environ.get("gunicorn.socket")
        if closing and sock is not None and _has_body(environ) and not body.ended:
            return _Lingering(result, sock, self._timeout)
        return result


def _has_body(environ: dict[str, Any]) -> bool:
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    return chunked or environ.get("CONTENT_LENGTH", "") not in ("", "0")


class _Lingering:
    """The app's response; once gunicorn has written it (close()), the lingering close."""

    def __init__(self, result: Any, sock: Any, timeout: Any) -> None:
        self._result, self._sock, self._timeout = result, sock, timeout

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        close = getattr(self._result, "close", None)
        if close is not None:
            close()
        try:
            self._sock.shutdown(socket.SHUT_WR)  # the answer, then FIN: the client reads it all
            with self._timeout(LINGER_SECONDS, False):
                self._sock.settimeout(LINGER_QUIET)
                while self._sock.recv(65536):
                    pass
        except OSError:  # the client went away (or was quiet): nothing left to protect
            pass
