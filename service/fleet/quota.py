"""Projects across the fleet (docs/design.md section 11): what a project holds on the other nodes
(each node's instance counts its own engine), and the fleet-wide lock a quota's count and create
hold (locks.py), taken on a manager's engine, through a manager's instance from a worker's."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager as ContextManager
from typing import Any
from urllib.parse import quote

from ..config import ALL_PROJECTS
from ..domain.projects import Counted
from ..engine.port import Engine
from ..errors import EngineUnavailable
from . import forwarding
from .locks import ConfigLocks, held
from .members import FLEET_ROUTES, Fleet, Member, swarm

USAGE = FLEET_ROUTES + "usage/"  # + a project: what it holds on the node asked (POST: read from the engine)
LOCKS = FLEET_ROUTES + "locks"  # POST {key, holder}: 201 {id} taken, 409 held; DELETE LOCKS/ID lets go
FLEET_CALLER = forwarding.Caller("dockvol-fleet", frozenset({"read"}), ALL_PROJECTS)
KINDS = ("volumes", "bindings", "sharing_groups", "bytes")


class FleetProjects:
    def __init__(self, fleet: Fleet, engine: Engine, stale_after: float) -> None:
        self._fleet, self._engine = fleet, engine
        self.locks = ConfigLocks(engine, stale_after)  # served to the others when this node manages

    def elsewhere(self, project: str) -> Counted:
        """What `project` holds on every other node, and the nodes that did not say."""
        here = self._fleet.here()
        others = [m for m in self._fleet.members() if m.name != here]
        addresses = {m.name: m.address for m in others if m.address}
        path = USAGE + quote(project, safe="")

        def ask(node: str, left: float) -> dict[str, Any]:
            reply = self._fleet.call(addresses[node], node, FLEET_CALLER, "POST", path, left)
            shown = reply.json()
            if reply.status != 200 or not isinstance(shown, dict):
                raise EngineUnavailable(f"node {node} did not say what {project} holds")
            return shown

        asked = self._fleet.ask(sorted(addresses), ask)
        totals = {k: sum(int(a.get(k, 0)) for a in asked.answers.values()) for k in KINDS}
        measured = [str(a["bytes_measured_at"]) for a in asked.answers.values() if a.get("bytes_measured_at")]
        silent = sorted({m.name for m in others if not m.address} | set(asked.unreachable))
        return Counted(**totals, measured_at=min(measured, default=None), unreachable=tuple(silent))

    def lock(self, key: str, wait: float) -> ContextManager[None]:
        """`key`'s fleet-wide lock, held for the block (409 busy after `wait` seconds)."""
        holder = f"{self._fleet.here()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        if self._engine.info().manager:
            return held(self.locks.take, self.locks.release, key, holder, wait)
        manager = self._manager()
        return held(manager.take, manager.release, key, holder, wait)

    def _manager(self) -> _RemoteLocks:
        members = self._fleet.members()
        managers = _managers(members)
        if not managers:
            raise EngineUnavailable("no manager of the Swarm answers: the fleet's quota lock cannot be taken")
        return _RemoteLocks(self._fleet, managers[0].name, str(managers[0].address))


def _managers(members: Sequence[Member]) -> list[Member]:
    roles = swarm(members)
    return [
        m
        for m in members
        if m.address and (roles.get(m.name, {}).get("role") or (m.identity or {}).get("role")) == "manager"
    ]


class _RemoteLocks:
    """A manager's locks, through its instance."""

    def __init__(self, fleet: Fleet, node: str, address: str) -> None:
        self._fleet, self._node, self._address = fleet, node, address

    def take(self, key: str, holder: str) -> str | None:
        body = json.dumps({"key": key, "holder": holder}).encode()
        reply = self._call("POST", LOCKS, body)
        if reply.status == 409:
            return None
        shown = reply.json() if reply.status == 201 else None
        if not isinstance(shown, dict) or not isinstance(shown.get("id"), str):
            raise EngineUnavailable(f"the manager {self._node} could not take the fleet's lock", nodes=[self._node])
        return str(shown["id"])

    def release(self, id_: str) -> None:
        reply = self._call("DELETE", f"{LOCKS}/{quote(id_, safe='')}", None)
        reply.read()
        if reply.status not in (204, 404):
            raise EngineUnavailable(f"the manager {self._node} could not let go of the fleet's lock")

    def _call(self, method: str, target: str, body: bytes | None) -> Any:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        return self._fleet.call(
            self._address, self._node, FLEET_CALLER, method, target, self._fleet.timeout, headers, body
        )
