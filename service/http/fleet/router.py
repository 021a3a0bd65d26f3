"""The front door's hook: it runs before the request's view (`Flask.before_request`, http/hooks.py)
and answers for the fleet, or lets the local view answer a request that was forwarded (signed) to
this node. A request is forwarded even to this instance's own node through the same path, so
that the node the caller names (`?node=`) never reaches a view's own query checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Request, Response, current_app, g

from ...auth import Principal, TokenStore
from ...errors import Unauthenticated
from ...fleet import forwarding
from ...fleet.members import ANY_NODE, CLONES, FLEET_ROUTES, IDENTITY, Fleet
from ..smorest import serving
from . import clone, items, lists, projects, watch
from .answers import document, forward, target


class Router:
    def __init__(
        self,
        fleet: Fleet,
        auth: TokenStore,
        identity: Callable[[], dict[str, Any]],
        receive_here: clone.ReceiveHere,
        projects: projects.Served,
    ) -> None:
        self.fleet, self._auth = fleet, auth
        self._identity = identity  # what this instance says of itself to the others
        self._receive_here = receive_here  # the copy of a cross-node clone, made on this node
        self._projects = projects  # what a project holds here, and the fleet's locks (a manager's)

    def route(self, request: Request) -> Response | None:
        signed = request.headers.get(forwarding.HEADER)
        if signed is not None:
            return self._from_peer(request, signed)
        if request.path.startswith(FLEET_ROUTES):
            raise Unauthenticated("only instances of this fleet may ask")
        role = serving().fleet
        if role is None:
            return None  # health, documents: answered here
        principal = self._auth.authorize(request.headers.get("Authorization"), "read")
        caller = forwarding.Caller(principal.name, principal.scopes, principal.project)
        fleet = self.fleet
        if role == "nodes":
            return lists.fleet_nodes(fleet)
        if role == "watch":
            return watch.watched(fleet, request, caller)
        if role == "list":
            return lists.merged(fleet, request, caller) if request.method == "GET" else None
        if role == "create":
            return items.created(fleet, request, caller)
        if role == "prune":
            return lists.pruned(fleet, request, caller)
        name: str = (request.view_args or {})["name"]
        collection = str(current_app.blueprints[request.blueprint or ""].url_prefix)  # where its items live
        node = g.nodes[0] if g.nodes else items.locate(fleet, caller, collection, name)
        if role == "clone":
            return clone.cloned(fleet, request, caller, name, node)
        return forward(fleet, request, caller, node)

    def _from_peer(self, request: Request, signed: str) -> Response | None:
        """A request another instance signed: its own (who are you, make this copy), or one the
        local view answers as the caller the signature vouches for."""
        meant_for = ANY_NODE if request.path == IDENTITY else self.fleet.here()  # who are you: asked by address
        caller = forwarding.verify(self.fleet.secret, signed, meant_for, request.method, target(request), time.time())
        g.forwarded = Principal(caller.name, caller.scopes, caller.project)
        if request.path == IDENTITY:
            return document(self._identity())
        if request.path == CLONES and request.method == "POST":
            return clone.received(self.fleet, request, caller, self._receive_here)
        if request.path.startswith(FLEET_ROUTES):
            return projects.served(self._projects, request)
        return None  # served here, by the view
