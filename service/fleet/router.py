"""Fleet mode's front door (docs/design.md section 10): every request that reaches an instance is
served for the whole fleet. Lists are merged from every node, items and writes go to the node
that holds them (or will), and a request another instance forwarded is served here, as it is.

The router runs before the request's view (`Flask.before_request`): it answers itself, or lets
the local view answer when the request is for this node and was forwarded (signed) to it. A
request is forwarded even to this instance's own node through the same path, so that the node
the caller names (`?node=`) never reaches a view's own query checks."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote, urlencode

import marshmallow as ma
from flask import Request, Response, g

from ..domain.archives import CHUNK, ChunkReader
from ..domain.nodes import Node
from ..errors import Conflict, EngineUnavailable, InvalidInput, NotFound, Unauthenticated
from ..http import events, problems
from ..http.auth import Principal, TokenStore
from ..http.pagination import headers_for
from ..http.volumes.data_routes import ACTING_READS
from ..http.volumes.data_schemas import CloneSchema
from ..json_types import JSON
from . import forwarding, watch
from .fanout import FanOut
from .lists import NodePage, merge, window
from .peers import NO_LIMIT, Body, Reply, Resolver, Transport
from .placement import Candidate, place

FLEET_ROUTES = "/fleet/v1/"  # between instances only, signed: never reached by an outside caller
IDENTITY = FLEET_ROUTES + "identity"
CLONES = FLEET_ROUTES + "clones"  # the copy's node makes a cross-node clone
ANY_NODE = "*"  # the node an identity request is signed for: it goes to an address, node unknown
UNREACHABLE = "Dockvol-Unreachable-Nodes"
FLEET_CALLER = forwarding.Caller("dockvol-fleet", frozenset({"read"}))
MAX_PAGE = 1000
MEMBERS_TTL = 1.0  # seconds what the instances say of themselves is kept
# The blueprints whose resources live on nodes (`?node=` applies), and where their items live.
COLLECTIONS = {"volumes": "/api/v1/volumes", "bindings": "/api/v1/bindings", "sharing_groups": "/api/v1/sharing-groups"}
EVENTS = "/api/v1/events"
SENT = ("Content-Type", "Accept", "If-Match", "X-Request-ID", "Last-Event-ID")
KEPT = {"content-type", "content-disposition", "etag", "location", "retry-after", "x-pagination", "link"}


@dataclass(frozen=True)
class Member:
    """A node of the fleet as the router sees it."""

    name: str
    address: str | None  # its instance, None when unreachable
    identity: dict[str, Any] | None  # what its instance says of itself


class Router:
    def __init__(
        self,
        here: Callable[[], str],
        secret: bytes,
        auth: TokenStore,
        resolve: Resolver,
        transport: Transport,
        timeout: float,
        identity: Callable[[], dict[str, Any]],
        receive_here: Callable[[str, dict[str, str], Callable[[], IO[bytes]]], Response],
    ) -> None:
        self._here, self._secret, self._auth = here, secret, auth
        self._resolve, self._transport, self._timeout = resolve, transport, timeout
        self._identity = identity
        self._receive_here = receive_here  # the copy of a cross-node clone, made on this node
        self._fan = FanOut()
        self._known: set[str] = set()  # every node ever heard of: one gone silent is named, not dropped
        self._members: list[Member] = []
        self._members_at = -MEMBERS_TTL
        self._lock = threading.Lock()

    # -- the hook ---------------------------------------------------------------------------------

    def route(self, request: Request) -> Response | None:
        signed = request.headers.get(forwarding.HEADER)
        if signed is not None:
            meant_for = ANY_NODE if request.path == IDENTITY else self._here()  # who are you: asked by address
            caller = forwarding.verify(self._secret, signed, meant_for, request.method, _target(request), time.time())
            g.forwarded = Principal(caller.name, caller.scopes)
            if request.path == IDENTITY:
                return _json(self._identity())
            if request.path == CLONES and request.method == "POST":
                return self._receive(request, caller)
            return None  # served here, by the view
        if request.path.startswith(FLEET_ROUTES):
            raise Unauthenticated("only instances of this fleet may ask")
        blueprint = (request.endpoint or "").partition(".")[0]
        if blueprint not in ("volumes", "bindings", "sharing_groups", "nodes", "events"):
            return None  # health, documents: answered here
        principal = self._auth.authorize(request.headers.get("Authorization"), "read")
        caller = forwarding.Caller(principal.name, principal.scopes)
        if blueprint == "nodes":
            return self._nodes()
        if blueprint == "events":
            return self._watch(request, caller)
        collection = COLLECTIONS[blueprint]
        if request.path == collection and request.method == "GET":
            return self._list(request, caller)
        if request.path == collection and request.method == "POST":
            return self._create(request, caller, blueprint)
        if request.path == f"{collection}/prune":
            return self._prune(request, caller)
        name = (request.view_args or {}).get("name")
        if name is None:
            return None
        if request.endpoint == "volumes.VolumeClone":
            return self._clone(request, caller, name, g.nodes[0] if g.nodes else self._locate(caller, collection, name))
        return self._forward(request, caller, g.nodes[0] if g.nodes else self._locate(caller, collection, name))

    # -- nodes ------------------------------------------------------------------------------------

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
        asked = self._fan.ask(
            self._resolve(),
            lambda address, left: self._call(address, ANY_NODE, FLEET_CALLER, "GET", IDENTITY, left),
            self._timeout,
        )
        identities: dict[str, dict[str, Any]] = {}
        peers: dict[str, str] = {}
        for address, reply in asked.answers.items():
            shown = reply.json() if reply.status == 200 else None
            if isinstance(shown, dict) and shown.get("name"):
                identities[shown["name"]], peers[shown["name"]] = shown, address
        swarm = next((i["swarm"] for i in identities.values() if i.get("swarm")), None)
        names = {self._here()} | set(self._known) | set(identities) | {n["hostname"] for n in swarm or ()}
        self._known |= names
        return [Member(n, peers.get(n), identities.get(n)) for n in sorted(names)]

    def _nodes(self) -> Response:
        members = self.members(fresh=True)
        by_host = _swarm(members)
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
        return _json(
            [dataclasses.asdict(n) for n in shown], headers=_unreachable([m.name for m in members if not m.address])
        )

    # -- lists ------------------------------------------------------------------------------------

    def _list(self, request: Request, caller: forwarding.Caller) -> Response | None:
        try:
            page, size = int(request.args.get("page", 1)), int(request.args.get("page_size", 50))
        except ValueError:
            return None  # the view's own checks answer
        if not (1 <= page <= 10**6 and 1 <= size <= MAX_PAGE):
            return None
        members = self.members()
        members = [m for m in members if not g.nodes or m.name in g.nodes]
        query = [(k, v) for k, v in request.args.items(multi=True) if k not in ("page", "page_size")]
        k, path = window(page, size), request.path  # the fan-out's threads have no request

        def first(node: str, left: float) -> NodePage | Reply:
            address = next(m.address for m in members if m.name == node)
            assert address is not None
            return self._first_items(address, node, caller, path, query, k, left)

        reachable = [m.name for m in members if m.address]
        asked = self._fan.ask(reachable, first, self._timeout)
        pages: dict[str, NodePage] = {}
        for node, answer in asked.answers.items():
            if isinstance(answer, Reply):
                return _passed(answer)  # a bad filter or scope: every node says the same
            pages[node] = answer
        items, total = merge(pages, page, size)
        headers = headers_for(total, page, size)
        headers.update(_unreachable(sorted({m.name for m in members if not m.address} | set(asked.unreachable))))
        return _json(items, headers=headers)

    def _first_items(
        self,
        address: str,
        node: str,
        caller: forwarding.Caller,
        path: str,
        query: list[tuple[str, str]],
        k: int,
        left: float,
    ) -> NodePage | Reply:
        """The node's first k items (in pages of at most MAX_PAGE), or its refusal."""
        items: list[JSON] = []
        total, page = 0, 1
        while True:
            size = min(MAX_PAGE, k - len(items))
            target = f"{path}?{urlencode([*query, ('page', str(page)), ('page_size', str(size))])}"
            reply = self._call(address, node, caller, "GET", target, left)
            if reply.status != 200:
                return reply
            got = reply.json()
            assert isinstance(got, list)
            items.extend(got)
            total = json.loads(reply.headers.get("X-Pagination", "{}")).get("total", len(items))
            if len(items) >= min(k, total) or not got:
                return NodePage(items[:k], total)
            page += 1

    def _prune(self, request: Request, caller: forwarding.Caller) -> Response:
        """Prune on every node (or those named): one result, what went from all of them."""
        members = [m for m in self.members() if not g.nodes or m.name in g.nodes]
        reachable = {m.name: m.address for m in members if m.address}
        path, headers, body = request.path, _sent(request), request.get_data()

        def prune(node: str, left: float) -> Reply:
            address = reachable[node]
            assert address is not None
            return self._call(address, node, caller, "POST", path, left, headers, body)

        asked = self._fan.ask(sorted(reachable), prune, self._timeout)
        refusal = next((r for r in asked.answers.values() if r.status != 200), None)
        if refusal is not None:
            return _passed(refusal)
        results: list[JSON] = []
        for r in asked.answers.values():
            result = r.json()
            assert isinstance(result, dict)  # a prune's result (PruneResultSchema)
            results.append(result)
        merged = {
            "volumes_deleted": sorted(v for r in results for v in r["volumes_deleted"]),
            "space_reclaimed": sum(r["space_reclaimed"] for r in results),
            "dry_run": all(r["dry_run"] for r in results),
        }
        silent = sorted({m.name for m in members if not m.address} | set(asked.unreachable))
        return _json(merged, headers=_unreachable(silent))

    # -- items and writes -------------------------------------------------------------------------

    def _locate(self, caller: forwarding.Caller, collection: str, name: str, prefer: str | None = None) -> str:
        """The node that holds `name`; of several, `prefer` if it is one of them (a create's `node`)."""
        members = self.members()
        reachable = {m.name: m.address for m in members if m.address}
        asked = self._fan.ask(
            sorted(reachable),
            lambda node, left: self._call(reachable[node], node, caller, "GET", f"{collection}/{name}", left).status,
            self._timeout,
        )
        found = sorted(node for node, status in asked.answers.items() if status == 200)
        silent = sorted({m.name for m in members if not m.address} | set(asked.unreachable))
        if len(found) == 1:
            return found[0]
        if prefer in found:
            return prefer
        if found:
            raise Conflict(f"{name} exists on several nodes: name one with ?node=", nodes=found)
        if silent:
            raise EngineUnavailable(
                f"{name} is on no node that answered; not heard from: {', '.join(silent)}", nodes=silent
            )
        raise NotFound(f"{name} does not exist on any node")

    def _create(self, request: Request, caller: forwarding.Caller, blueprint: str) -> Response | None:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return None  # the view's own checks answer
        wanted = body.get("node") if isinstance(body.get("node"), str) else None
        volumes: set[str] = set()
        for mount in body.get("mounts") or ():
            if isinstance(mount, dict) and mount.get("type", "volume") == "volume" and mount.get("source"):
                volumes.add(self._locate(caller, COLLECTIONS["volumes"], str(mount["source"]), wanted))
        group = body.get("sharing_group") if blueprint == "bindings" else None
        group_node = self._locate(caller, COLLECTIONS["sharing_groups"], str(group), wanted) if group else None
        members = self.members()
        swarm = _swarm(members)
        candidates = [_candidate(m, swarm) for m in members]
        node = place(candidates, wanted, volumes, group_node)
        return self._forward(request, caller, node, members)

    def _clone(self, request: Request, caller: forwarding.Caller, name: str, source: str) -> Response:
        """A clone onto another node. The copy's node runs it (`_receive`): its instance pulls the
        source's export and makes the copy, so the operation and its recovery live where the copy
        does, and this instance only waits for the answer. The same node: the source's own clone."""
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("node"), str) or body["node"] == source:
            return self._forward(request, caller, source)
        target: str = body["node"]
        try:
            order = CloneSchema().load(body)
        except ma.ValidationError as exc:
            return problems.invalid(exc.messages)
        Principal(caller.name, caller.scopes).require("write")
        members = self.members()
        swarm = _swarm(members)
        place([_candidate(m, swarm) for m in members], wanted=target)  # open to new resources
        sent = {"name": order["name"], "labels": order["labels"], "pause": order["pause"]}
        document = json.dumps({**sent, "source": name, "source_node": source}).encode()
        made = self._call(
            self._address(target, members),
            target,
            caller,
            "POST",
            CLONES,
            self._timeout,
            {"Content-Type": "application/json"},
            document,
            wait=NO_LIMIT,  # the copy's node answers when the copy is whole, or gone: however long that takes
        )
        response = _passed(made)
        if made.status == 201:
            response.headers["Location"] = f"{COLLECTIONS['volumes']}/{order['name']}"
        return response

    def _receive(self, request: Request, caller: forwarding.Caller) -> Response:
        """On the copy's node (see `_clone`): the copy is made here from the source node's export."""
        Principal(caller.name, caller.scopes).require("write")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("source", "source_node")):
            raise InvalidInput("source", "a clone order names its source and the source's node")
        try:
            order = CloneSchema().load({k: body[k] for k in ("name", "labels", "pause") if k in body})
        except ma.ValidationError as exc:
            return problems.invalid(exc.messages)
        source, node = body["source"], body["source_node"]
        pause = "?pause=true" if order["pause"] else ""

        def export() -> IO[bytes]:
            address = self._address(node, self.members())
            path = f"{COLLECTIONS['volumes']}/{quote(source)}/archive{pause}"
            reply = self._call(address, node, caller, "GET", path, self._timeout, {"Accept-Encoding": "identity"})
            if reply.status != 200:
                try:
                    shown = reply.json()
                except ValueError:  # not a problem document: its status says enough
                    shown = None
                raise problems.error_from(reply.status, shown)
            return io.BufferedReader(ChunkReader(reply.body), CHUNK)

        return self._receive_here(order["name"], order["labels"], export)

    def _watch(self, request: Request, caller: forwarding.Caller) -> Response:
        """GET /events: one node's own stream (`?node=` names one), else every node's, merged
        (watch.py), resumed from the merged id the client has."""
        wait = 2 * events.HEARTBEAT + self._timeout  # a node's stream is silent at most a heartbeat
        if len(g.nodes) == 1:
            return self._forward(request, caller, g.nodes[0], wait=wait)
        last = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
        ids = watch.decode(last) if last else {}
        query = [(k, v) for k, v in request.args.items(multi=True) if k != "last_event_id"]
        wanted = [m for m in self.members() if not g.nodes or m.name in g.nodes]
        reachable = {m.name: m.address for m in wanted if m.address is not None}

        def open_stream(node: str, left: float) -> Reply:
            asked = query + ([("last_event_id", ids[node])] if node in ids else [])
            target = EVENTS + (f"?{urlencode(asked)}" if asked else "")
            accept = {"Accept": "text/event-stream"}
            return self._call(reachable[node], node, caller, "GET", target, left, accept, None, wait)

        opened = self._fan.ask(sorted(reachable), open_stream, self._timeout)
        streams = {node: reply for node, reply in opened.answers.items() if reply.status == 200}
        refused = [reply for reply in opened.answers.values() if 400 <= reply.status < 500]
        if refused:  # the query (or the id) is wrong: every node says so
            for reply in streams.values():
                reply.close()
            return _passed(refused[0])
        silent = sorted({m.name for m in wanted} - set(streams))

        named = list(g.nodes)  # the stream outlives the request's context

        def fleet_changed() -> bool:  # a node came or went: the client resumes on a new stream
            now = {m.name for m in self.members() if m.address is not None and (not named or m.name in named)}
            return now != set(reachable)

        merged = watch.Merged(streams, ids, self._here(), events.HEARTBEAT, fleet_changed)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **_unreachable(silent)}
        return Response(iter(merged), mimetype="text/event-stream", headers=headers)

    def _forward(
        self,
        request: Request,
        caller: forwarding.Caller,
        node: str,
        members: Sequence[Member] | None = None,
        wait: float | None = None,
    ) -> Response:
        address = self._address(node, self.members() if members is None else members)
        if wait is None and (request.method not in ("GET", "HEAD") or request.endpoint in ACTING_READS):
            wait = NO_LIMIT  # a write (an import, a clone) or a walk of a volume answers when it is done
        query = list(request.args.items(multi=True))  # without `node` (app.py took it off)
        target = request.path + (f"?{urlencode(query)}" if query else "")
        body: Body = request.stream if request.method in ("POST", "PUT", "PATCH") else None
        if request.is_json and body is not None:
            body = request.get_data()  # already read (and checked) by the router
        reply = self._call(address, node, caller, request.method, target, self._timeout, _sent(request), body, wait)
        return _passed(reply)

    def _call(
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
        signed = forwarding.sign(self._secret, caller, node, method, target, time.time())
        headers = {**(headers or {}), forwarding.HEADER: signed}
        return self._transport.send(address, method, target, headers, body, timeout, wait=wait)

    def _address(self, node: str, members: Sequence[Member]) -> str:
        """The address of `node`'s instance: 404 for a node the fleet does not have, 503 for one
        whose instance does not answer."""
        address = next((m.address for m in members if m.name == node), None)
        if address is None:
            if node not in {m.name for m in members}:
                raise NotFound(f"there is no node {node!r} in this fleet")
            raise EngineUnavailable(f"node {node} does not answer", nodes=[node])
        return address


def _swarm(members: Sequence[Member]) -> dict[str, dict[str, str]]:
    """Swarm's view of each node (by hostname), from the first manager whose instance answered."""
    for m in members:
        if m.identity and m.identity.get("swarm"):
            return {n["hostname"]: n for n in m.identity["swarm"]}
    return {}


def _candidate(m: Member, swarm: dict[str, dict[str, str]]) -> Candidate:
    identity = m.identity or {}
    node = swarm.get(m.name, {})
    return Candidate(
        m.name,
        node.get("availability", "active" if m.address else "unknown"),
        node.get("state", "ready" if m.address else "unknown"),
        m.address is not None,
        int(identity.get("volumes", 0)),
    )


def _sent(request: Request) -> dict[str, str]:
    """The caller's headers an instance passes on when it forwards."""
    return {h: request.headers[h] for h in SENT if h in request.headers}


def _target(request: Request) -> str:
    query = request.query_string.decode("latin-1")
    return request.path + (f"?{query}" if query else "")


def _json(document: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(document), status=status, headers=headers, content_type="application/json")


def _passed(reply: Reply) -> Response:
    headers = {h: v for h, v in reply.headers.items() if h.lower() in KEPT or h.lower() == UNREACHABLE.lower()}
    return Response(_stream(reply.body), status=reply.status, headers=headers)


def _stream(body: Iterator[bytes]) -> Iterator[bytes]:
    yield from body


def _unreachable(nodes: Sequence[str]) -> dict[str, str]:
    return {UNREACHABLE: ", ".join(nodes)} if nodes else {}
