"""Projects across the fleet, between instances (fleet/quota.py asks): what a project holds on this
node, and, on a manager's instance, the fleet's locks taken and let go for the other nodes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from flask import Request, Response

from ...errors import InvalidInput, NotFound
from ...fleet.locks import ConfigLocks
from ...fleet.quota import LOCKS, USAGE
from ..responses import json_response


@dataclass(frozen=True)
class Served:
    here: Callable[[str], dict[str, Any]]  # a project -> what it holds on this node's engine
    locks: ConfigLocks  # this node's engine's (a manager's: others' engines refuse to make configs)


def served(projects: Served, request: Request) -> Response:
    """POST USAGE+project; POST LOCKS {key, holder} (201 {id}, or 409 held); DELETE LOCKS/ID."""
    path, method = request.path, request.method
    if path.startswith(USAGE) and method == "POST":
        return json_response(projects.here(unquote(path[len(USAGE) :])))
    if path == LOCKS and method == "POST":
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("key", "holder")):
            raise InvalidInput("key", "a lock is taken for a key and a holder")
        id_ = projects.locks.take(body["key"], body["holder"])
        if id_ is None:
            return json_response({"held": True}, 409)
        return json_response({"id": id_}, 201)
    if path.startswith(LOCKS + "/") and method == "DELETE":
        projects.locks.release(unquote(path[len(LOCKS) + 1 :]))
        return Response(status=204)
    raise NotFound(f"there is no fleet route {method} {path}")
