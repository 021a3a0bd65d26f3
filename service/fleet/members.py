"""The fleet as one instance sees it: its members (Swarm's nodes and the instances that answer),
and signed calls to their instances."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..domain.nodes import Node
from ..errors import EngineUnavailable, NotFound
from . import forwarding
from .fanout import FanOut, Gathered
from .peers import Body, Reply, Resolver, Transport
from .placement import Candidate

FLEET_ROUTES = "/fleet/v1/"  # between instances only, signed: never reached by an outside caller
IDENTITY = FLEET_ROUTES + "identity"
CLONES = FLEET_ROUTES + "clones"  # the copy's node makes a cross-node clone
ANY_NODE = "*"  # the node an identity request is signed for: it goes to an address, node unknown
FLEET_CALLER = forwarding.Caller("dockvol-fleet", frozenset({"read"}))
MEMBERS_TTL = 1.0  # seconds what the instances say of themselves is kept
T = TypeVar("T")


@dataclass(frozen=True)
class Member:
    """A node of the fleet as its instances see it."""

    name: str
    address: str | None  # its instance, None when unreachable
    identity: dict[str, Any] | None  # what its instance says of itself


class Fleet:
    def __init__(
        self, here: Callable[[], str], secret: bytes, resolve: Resolver, transport: Transport, timeout: float
    ) -> None:
        self.here, self.secret, self.timeout = here, secret, timeout
        self._resolve, self._transport = resolve, transport
        self._fan = FanOut()
        self._known: set[str] = set()  # every node ever heard of: one gone silent is named, not dropped
        self._members: list[Member] = []
        self._members_at = -MEMBERS_TTL
        self._lock = threading.Lock()

    def members(self, fresh: bool = False) -> list[Member]:
        """Every node of the fleet: Swarm's list (from a manager's instance) and every node ever
        seen, each with its instance's address and identity when it answered (kept MEMBERS_TTL)."""
        with self._lock:
            if not fresh and time.monotonic() - self._members_at < MEMBERS_TTL:
                return self._members
        members = self._ask_members()
        with self._lock:
            self._members, self._members_at = members, time.monotonic()
        return members

    def _ask_members(self) -> list[Member]:
        """Every instance DNS names is asked at once which node it is (one timeout for all)."""
        asked = self.ask(
            self._resolve(), lambda address, left: self.call(address, ANY_NODE, FLEET_CALLER, "GET", IDENTITY, left)
        )
        identities: dict[str, dict[str, Any]] = {}
        peers: dict[str, str] = {}
        for address, reply in asked.answers.items():
            shown = reply.json() if reply.status == 200 else None
            if isinstance(shown, dict) and shown.get("name"):
                identities[shown["name"]], peers[shown["name"]] = shown, address
        swarm = next((i["swarm"] for i in identities.values() if i.get("swarm")), None)
        names = {self.here()} | set(self._known) | set(identities) | {n["hostname"] for n in swarm or ()}
        self._known |= names
        return [Member(n, peers.get(n), identities.get(n)) for n in sorted(names)]

    def ask(self, nodes: Sequence[str], call: Callable[[str, float], T]) -> Gathered[T]:
        """`call` for each node at once, within the fleet's one timeout."""
        return self._fan.ask(nodes, call, self.timeout)

    def call(
        self,
        address: str,
        node: str,
        caller: forwarding.Caller,
        method: str,
        target: str,
        timeout: float,
        headers: dict[str, str] | None = None,
        body: Body = None,
        wait: float | None = None,
    ) -> Reply:
        """A request to `node`'s instance at `address`, signed for it on behalf of `caller`."""
        signed = forwarding.sign(self.secret, caller, node, method, target, time.time())
        headers = {**(headers or {}), forwarding.HEADER: signed}
        return self._transport.send(address, method, target, headers, body, timeout, wait=wait)

    def address(self, node: str, members: Sequence[Member] | None = None) -> str:
        """The address of `node`'s instance: 404 for a node the fleet does not have, 503 for one
        whose instance does not answer."""
        members = self.members() if members is None else members
        address = next((m.address for m in members if m.name == node), None)
        if address is None:
            if node not in {m.name for m in members}:
                raise NotFound(f"there is no node {node!r} in this fleet")
            raise EngineUnavailable(f"node {node} does not answer", nodes=[node])
        return address


def swarm(members: Sequence[Member]) -> dict[str, dict[str, str]]:
    """Swarm's view of each node (by hostname), from the first manager whose instance answered."""
    for m in members:
        if m.identity and m.identity.get("swarm"):
            return {n["hostname"]: n for n in m.identity["swarm"]}
    return {}


def candidates(members: Sequence[Member]) -> list[Candidate]:
    """The members as placement sees them."""
    nodes = swarm(members)
    return [
        Candidate(
            m.name,
            nodes.get(m.name, {}).get("availability", "active" if m.address else "unknown"),
            nodes.get(m.name, {}).get("state", "ready" if m.address else "unknown"),
            m.address is not None,
            int((m.identity or {}).get("volumes", 0)),
        )
        for m in members
    ]


def nodes(members: Sequence[Member]) -> list[Node]:
    """The members as `GET /nodes` shows them: Swarm's word first, then the instance's own."""
    by_host = swarm(members)
    shown = []
    for m in members:
        node = by_host.get(m.name, {})
        identity = m.identity or {}
        shown.append(
            Node(
                m.name,
                node.get("id") or identity.get("id", ""),
                node.get("role") or identity.get("role", "unknown"),
                node.get("availability", "unknown"),
                node.get("state", "unknown"),
                "up" if m.address else "unreachable",
                identity.get("engine_version", ""),
                identity.get("api_version", ""),
            )
        )
    return shown


def silent(members: Sequence[Member], unreachable: Sequence[str] = ()) -> list[str]:
    """The nodes among `members` that did not answer: no instance, or none in time."""
    return sorted({m.name for m in members if not m.address} | set(unreachable))
