"""A per-node resource's items: found on the node that holds them, and created on the node
placement picks."""

from __future__ import annotations

from flask import Request, Response, url_for

from ...errors import Conflict, EngineUnavailable, NotFound
from ...fleet.forwarding import Caller
from ...fleet.members import Fleet, candidates, silent
from ...fleet.placement import place
from .answers import forward


def locate(fleet: Fleet, caller: Caller, collection: str, name: str, prefer: str | None = None) -> str:
    """The node that holds `name` (in the collection at path `collection`); of several, `prefer`
    if it is one of them (a create's `node`)."""
    members = fleet.members()
    addresses = {m.name: m.address for m in members if m.address}
    asked = fleet.ask(
        sorted(addresses),
        lambda node, left: fleet.call(addresses[node], node, caller, "GET", f"{collection}/{name}", left).status,
    )
    found = sorted(node for node, status in asked.answers.items() if status == 200)
    if len(found) == 1:
        return found[0]
    if prefer in found:
        return prefer
    if found:
        raise Conflict(f"{name} exists on several nodes: name one with ?node=", nodes=found)
    if unheard := silent(members, asked.unreachable):
        raise EngineUnavailable(
            f"{name} is on no node that answered; not heard from: {', '.join(unheard)}", nodes=unheard
        )
    raise NotFound(f"{name} does not exist on any node")


def created(fleet: Fleet, request: Request, caller: Caller) -> Response | None:
    """A create, sent to the node its data decides, else the one it names, else the emptiest."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return None  # the view's own checks answer
    wanted = body.get("node") if isinstance(body.get("node"), str) else None
    volumes: set[str] = set()
    for mount in body.get("mounts") or ():
        if isinstance(mount, dict) and mount.get("type", "volume") == "volume" and mount.get("source"):
            volumes.add(locate(fleet, caller, url_for("volumes.VolumeCollection"), str(mount["source"]), wanted))
    group = body.get("sharing_group") if request.blueprint == "bindings" else None
    groups = url_for("sharing_groups.SharingGroupCollection")
    group_node = locate(fleet, caller, groups, str(group), wanted) if group else None
    members = fleet.members()
    node = place(candidates(members), wanted, volumes, group_node)
    return forward(fleet, request, caller, node, members)
