"""How an instance reaches the others: their addresses from Swarm's DNS (`tasks.NAME` has one A
record per running task, on workers as on managers), and HTTP between instances (streamed both
ways). Which node each address is, members.py asks."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Protocol

import urllib3

from ..errors import EngineUnavailable

CHUNK = 64 * 1024
NO_LIMIT = math.inf  # a `wait` for an answer that takes as long as the peer's work
# What a request to a peer sends: nothing, bytes, a file, or chunks (a clone streams an export on).
Body = IO[bytes] | Iterable[bytes] | bytes | None


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Iterator[bytes] = field(default_factory=lambda: iter(()))
    close: Callable[[], None] = lambda: None  # from any thread: the body ends (a reader wakes)

    def read(self) -> bytes:
        return b"".join(self.body)

    def json(self) -> object:
        return json.loads(self.read())


class Transport(Protocol):
    def send(
        self,
        address: str,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Body,
        timeout: float,
        wait: float | None = None,
    ) -> Reply:
        """The peer's answer; EngineUnavailable when it cannot be reached in time, or stops
        sending its answer half-way. `timeout` bounds the connection; `wait`, each wait for the
        answer and for each part of it (None: `timeout`; NO_LIMIT: as long as the peer works, as
        for a clone's copy)."""


class HttpTransport:
    def __init__(self, pool_size: int = 16) -> None:
        self._pool = urllib3.PoolManager(maxsize=pool_size, retries=False)

    def send(
        self,
        address: str,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Body,
        timeout: float,
        wait: float | None = None,
    ) -> Reply:
        read = timeout if wait is None else None if wait == NO_LIMIT else wait
        try:
            response = self._pool.request(
                method,
                f"http://{address}{target}",
                headers=headers,
                body=body,
                chunked=body is not None and not isinstance(body, bytes),
                timeout=urllib3.Timeout(connect=timeout, read=read),
                preload_content=False,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise EngineUnavailable(f"the dockvol of {address} does not answer: {type(exc).__name__}") from None
        return Reply(response.status, dict(response.headers), _drained(response), _closer(response))


def _drained(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    try:
        yield from response.stream(CHUNK)
    except urllib3.exceptions.HTTPError as exc:  # the peer stopped half-way (it died, or its engine did)
        raise EngineUnavailable(f"a dockvol instance stopped sending: {type(exc).__name__}") from None
    finally:
        response.release_conn()


def _closer(response: urllib3.BaseHTTPResponse) -> Callable[[], None]:
    def close() -> None:
        try:
            response.shutdown()  # wakes a thread blocked reading it
        except (ValueError, RuntimeError, OSError):
            pass  # read to its end, or released already

    return close


class Resolver(Protocol):
    def __call__(self) -> list[str]:
        """The instances' addresses (host:port)."""


def dns_resolver(name: str, port: int = 8080) -> Resolver:
    host, _, given = name.partition(":")
    port = int(given) if given else port

    def resolve() -> list[str]:
        try:
            found = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
        except socket.gaierror:
            return []
        return sorted({f"{info[4][0]}:{port}" for info in found})

    return resolve
