"""The fleet's lists: its nodes, each resource's list merged over the nodes, and prune on every node."""

from __future__ import annotations

import dataclasses
import json
from urllib.parse import urlencode

import marshmallow as ma
from flask import Request, Response, g

from ...fleet.forwarding import Caller
from ...fleet.lists import NodePage, merge, window
from ...fleet.members import Fleet, nodes, silent
from ...fleet.peers import Reply
from ...json_types import JSON
from ..pagination import MAX_PAGE_SIZE, PageArgs, headers_for
from .answers import document, passed, sent


def fleet_nodes(fleet: Fleet) -> Response:
    """GET /nodes: every node of the fleet, asked afresh."""
    members = fleet.members(fresh=True)
    return document([dataclasses.asdict(n) for n in nodes(members)], silent(members))


def merged(fleet: Fleet, request: Request, caller: Caller) -> Response | None:
    """A page of every node's items (or the named nodes'), sorted by (name, node)."""
    try:
        paging = PageArgs().load({k: request.args[k] for k in ("page", "page_size") if k in request.args})
    except ma.ValidationError:
        return None  # the view's own checks answer
    page, size = paging["page"], paging["page_size"]
    members = [m for m in fleet.members() if not g.nodes or m.name in g.nodes]
    query = [(k, v) for k, v in request.args.items(multi=True) if k not in ("page", "page_size")]
    k, path = window(page, size), request.path  # the fan-out's threads have no request
    addresses = {m.name: m.address for m in members if m.address}

    def first(node: str, left: float) -> NodePage | Reply:
        return _first_items(fleet, addresses[node], node, caller, path, query, k, left)

    asked = fleet.ask(sorted(addresses), first)
    pages: dict[str, NodePage] = {}
    for node, answer in asked.answers.items():
        if isinstance(answer, Reply):
            return passed(answer)  # a bad filter or scope: every node says the same
        pages[node] = answer
    items, total = merge(pages, page, size)
    return document(items, silent(members, asked.unreachable), headers_for(total, page, size))


def _first_items(
    fleet: Fleet, address: str, node: str, caller: Caller, path: str, query: list[tuple[str, str]], k: int, left: float
) -> NodePage | Reply:
    """The node's first k items (in pages of at most MAX_PAGE_SIZE), or its refusal."""
    items: list[JSON] = []
    total, page = 0, 1
    while True:
        size = min(MAX_PAGE_SIZE, k - len(items))
        target = f"{path}?{urlencode([*query, ('page', str(page)), ('page_size', str(size))])}"
        reply = fleet.call(address, node, caller, "GET", target, left)
        if reply.status != 200:
            return reply
        got = reply.json()
        assert isinstance(got, list)
        items.extend(got)
        total = json.loads(reply.headers.get("X-Pagination", "{}")).get("total", len(items))
        if len(items) >= min(k, total) or not got:
            return NodePage(items[:k], total)
        page += 1


def pruned(fleet: Fleet, request: Request, caller: Caller) -> Response:
    """Prune on every node (or those named): one result, what went from all of them."""
    members = [m for m in fleet.members() if not g.nodes or m.name in g.nodes]
    addresses = {m.name: m.address for m in members if m.address}
    path, headers, body = request.path, sent(request), request.get_data()

    def prune(node: str, left: float) -> Reply:
        return fleet.call(addresses[node], node, caller, "POST", path, left, headers, body)

    asked = fleet.ask(sorted(addresses), prune)
    refusal = next((r for r in asked.answers.values() if r.status != 200), None)
    if refusal is not None:
        return passed(refusal)
    results: list[JSON] = []
    for r in asked.answers.values():
        result = r.json()
        assert isinstance(result, dict)  # a prune's result (PruneResultSchema)
        results.append(result)
    total = {
        "volumes_deleted": sorted(v for r in results for v in r["volumes_deleted"]),
        "space_reclaimed": sum(r["space_reclaimed"] for r in results),
        "dry_run": all(r["dry_run"] for r in results),
    }
    return document(total, silent(members, asked.unreachable))
