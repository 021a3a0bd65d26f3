"""How an instance reaches the others: their addresses from Swarm's DNS (`tasks.NAME` has one A
record per running task, on workers as on managers), each address's node asked of the instance
there, and HTTP between instances (streamed both ways)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Protocol

import urllib3

from ..errors import EngineUnavailable

TTL = 5.0  # seconds a peer list is kept: tasks come and go with rolling updates
CHUNK = 64 * 1024


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Iterator[bytes] = field(default_factory=lambda: iter(()))

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
        body: IO[bytes] | bytes | None,
        timeout: float,
    ) -> Reply:
        """The peer's answer; EngineUnavailable when it cannot be reached in time."""


class HttpTransport:
    def __init__(self, pool_size: int = 16) -> None:
        self._pool = urllib3.PoolManager(maxsize=pool_size, retries=False)

    def send(self, address, method, target, headers, body, timeout):
        try:
            response = self._pool.request(
                method,
                f"http://{address}{target}",
                headers=headers,
                body=body,
                chunked=body is not None and not isinstance(body, bytes),
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                preload_content=False,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise EngineUnavailable(f"the dockvol of {address} does not answer: {type(exc).__name__}") from None
        return Reply(response.status, dict(response.headers), _drained(response))


def _drained(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    try:
        yield from response.stream(CHUNK)
    finally:
        response.release_conn()


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


class Directory:
    """node name -> address of its instance, kept for TTL seconds."""

    def __init__(self, resolve: Resolver, identify: Callable[[str], str], ttl: float = TTL) -> None:
        self._resolve, self._identify, self._ttl = resolve, identify, ttl
        self._known: dict[str, str] = {}  # address -> node
        self._peers: dict[str, str] = {}
        self._at = 0.0
        self._lock = threading.Lock()

    def peers(self) -> dict[str, str]:
        with self._lock:
            if time.monotonic() - self._at < self._ttl:
                return dict(self._peers)
            peers = {}
            for address in self._resolve():
                node = self._known.get(address)
                if node is None:
                    try:
                        node = self._known[address] = self._identify(address)
                    except EngineUnavailable:
                        continue
                peers[node] = address
            if peers:  # none (DNS not ready yet) is asked again next time
                self._peers, self._at = peers, time.monotonic()
            return dict(peers)

    def forget(self) -> None:
        with self._lock:
            self._at = 0.0
