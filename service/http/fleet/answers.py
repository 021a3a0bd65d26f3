"""What the front door answers: a peer's reply passed on, its own documents, and a request
forwarded to the node it is for."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlencode

from flask import Request, Response

from ...fleet.forwarding import Caller
from ...fleet.members import Fleet, Member
from ...fleet.peers import NO_LIMIT, Body, Reply
from ..responses import json_response
from ..smorest import serving

UNREACHABLE = "Dockvol-Unreachable-Nodes"
SENT = ("Content-Type", "Accept", "If-Match", "X-Request-ID", "Last-Event-ID")
KEPT = {"content-type", "content-disposition", "etag", "location", "retry-after", "x-pagination", "link"}


def document(shown: Any, silent: Sequence[str] = (), headers: dict[str, str] | None = None) -> Response:
    """A JSON answer of the front door's own, naming the nodes that did not answer."""
    return json_response(shown, headers={**(headers or {}), **unreachable(silent)})


def passed(reply: Reply) -> Response:
    """A peer's answer, as it is: its status, body and the headers a client needs."""
    headers = {h: v for h, v in reply.headers.items() if h.lower() in KEPT or h.lower() == UNREACHABLE.lower()}
    return Response(_stream(reply.body), status=reply.status, headers=headers)


def _stream(body: Iterator[bytes]) -> Iterator[bytes]:
    yield from body


def unreachable(nodes: Sequence[str]) -> dict[str, str]:
    return {UNREACHABLE: ", ".join(nodes)} if nodes else {}


def sent(request: Request) -> dict[str, str]:
    """The caller's headers an instance passes on when it forwards."""
    return {h: request.headers[h] for h in SENT if h in request.headers}


def target(request: Request) -> str:
    """The request's path and query, as they were sent (what a forwarded call is signed over)."""
    query = request.query_string.decode("latin-1")
    return request.path + (f"?{query}" if query else "")


def forward(
    fleet: Fleet,
    request: Request,
    caller: Caller,
    node: str,
    members: Sequence[Member] | None = None,
    wait: float | None = None,
) -> Response:
    """The request, sent to `node`'s instance, and its answer passed on."""
    address = fleet.address(node, members)
    if wait is None and (request.method not in ("GET", "HEAD") or serving().acting):
        wait = NO_LIMIT  # a write (an import, a clone) or a walk of a volume answers when it is done
    query = list(request.args.items(multi=True))  # without `node` (http/hooks.py took it off)
    path = request.path + (f"?{urlencode(query)}" if query else "")
    body: Body = request.stream if request.method in ("POST", "PUT", "PATCH") else None
    if request.is_json and body is not None:
        body = request.get_data()  # already read (and checked) by the front door
    reply = fleet.call(address, node, caller, request.method, path, fleet.timeout, sent(request), body, wait)
    return passed(reply)
