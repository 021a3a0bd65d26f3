"""GET /events in fleet mode: one node's own stream (`?node=` names one), else every node's,
merged (fleet/watch.py), resumed from the merged id the client has."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Request, Response, g

from ...fleet import watch
from ...fleet.forwarding import Caller
from ...fleet.members import Fleet
from ...fleet.peers import Reply
from .. import events
from ..responses import event_stream
from .answers import forward, passed, unreachable


def watched(fleet: Fleet, request: Request, caller: Caller) -> Response:
    wait = 2 * events.HEARTBEAT + fleet.timeout  # a node's stream is silent at most a heartbeat
    if len(g.nodes) == 1:
        return forward(fleet, request, caller, g.nodes[0], wait=wait)
    last = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    ids = watch.decode(last) if last else {}
    query = [(k, v) for k, v in request.args.items(multi=True) if k != "last_event_id"]
    wanted = [m for m in fleet.members() if not g.nodes or m.name in g.nodes]
    addresses = {m.name: m.address for m in wanted if m.address is not None}
    path = request.path  # the streams are opened on the fan-out's threads, which have no request

    def open_stream(node: str, left: float) -> Reply:
        asked = query + ([("last_event_id", ids[node])] if node in ids else [])
        target = path + (f"?{urlencode(asked)}" if asked else "")
        accept = {"Accept": "text/event-stream"}
        return fleet.call(addresses[node], node, caller, "GET", target, left, accept, None, wait)

    opened = fleet.ask(sorted(addresses), open_stream)
    streams = {node: reply for node, reply in opened.answers.items() if reply.status == 200}
    refused = [reply for reply in opened.answers.values() if 400 <= reply.status < 500]
    if refused:  # the query (or the id) is wrong: every node says so
        for reply in streams.values():
            reply.close()
        return passed(refused[0])
    silent = sorted({m.name for m in wanted} - set(streams))

    named = list(g.nodes)  # the stream outlives the request's context

    def fleet_changed() -> bool:  # a node came or went: the client resumes on a new stream
        now = {m.name for m in fleet.members() if m.address is not None and (not named or m.name in named)}
        return now != set(addresses)

    merged = watch.Merged(streams, ids, fleet.here(), events.HEARTBEAT, fleet_changed)
    return event_stream(iter(merged), unreachable(silent))
