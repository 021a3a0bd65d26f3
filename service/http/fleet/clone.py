"""A clone onto another node. The copy's node runs it (`received`): its instance pulls the
source's export and makes the copy, so the operation and its recovery live where the copy does,
and the instance that was asked only waits for the answer."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import IO

import marshmallow as ma
from flask import Request, Response, url_for

from ...auth import Principal
from ...domain.projects import acting_for
from ...fleet import clones
from ...fleet.forwarding import Caller
from ...fleet.members import CLONES, Fleet, candidates
from ...fleet.peers import NO_LIMIT
from ...fleet.placement import place
from ...streams import CHUNK, ChunkReader
from .. import problems
from ..volumes.data_schemas import CloneSchema
from .answers import forward, passed, sent

# The copy made on this node: its name, labels and the source's export, as the answer.
ReceiveHere = Callable[[str, dict[str, str], Callable[[], IO[bytes]]], Response]


def cloned(fleet: Fleet, request: Request, caller: Caller, name: str, source: str) -> Response:
    """POST /volumes/{name}/clone with the source on `source`: onto the body's `node`, if another."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("node"), str) or body["node"] == source:
        return forward(fleet, request, caller, source)  # the same node: the source's own clone
    target: str = body["node"]
    try:
        clone = CloneSchema().load(body)
    except ma.ValidationError as exc:
        return problems.invalid(exc.messages)
    Principal(caller.name, caller.scopes, caller.project).require("write")
    members = fleet.members()
    place(candidates(members), wanted=target)  # open to new resources
    made = fleet.call(
        fleet.address(target, members),
        target,
        caller,
        "POST",
        CLONES,
        fleet.timeout,
        {**sent(request), "Content-Type": "application/json"},  # its request id too: one answer, one id
        clones.order(clone, name, source),
        wait=NO_LIMIT,  # the copy's node answers when the copy is whole, or gone: however long that takes
    )
    response = passed(made)
    if made.status == 201:
        response.headers["Location"] = url_for("volumes.VolumeItem", name=clone["name"])
    return response


def received(fleet: Fleet, request: Request, caller: Caller, receive_here: ReceiveHere) -> Response:
    """On the copy's node (see `cloned`): the copy is made here from the source node's export."""
    Principal(caller.name, caller.scopes, caller.project).require("write")
    fields, source, node = clones.read_order(request.get_json(silent=True))
    try:
        clone = CloneSchema().load(fields)
    except ma.ValidationError as exc:
        return problems.invalid(exc.messages)
    path = clones.export_target(url_for("volumes.VolumeCollection"), source, clone["pause"])

    def export() -> IO[bytes]:
        address = fleet.address(node)
        reply = fleet.call(address, node, caller, "GET", path, fleet.timeout, {"Accept-Encoding": "identity"})
        if reply.status != 200:
            try:
                shown = reply.json()
            except ValueError:  # not a problem document: its status says enough
                shown = None
            raise problems.error_from(reply.status, shown)
        return io.BufferedReader(ChunkReader(reply.body), CHUNK)

    with acting_for(caller.project):  # the copy is born in the caller's project
        return receive_here(clone["name"], clone["labels"], export)
