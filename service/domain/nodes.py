"""Nodes: the Docker hosts dockvol answers for. Every representation names its node, the engine
host's hostname (docs/design.md section 10). With one engine there is one node, `standalone`."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..engine.port import Engine, EngineInfo


@dataclass(frozen=True)
class Node:
    name: str
    id: str
    role: str  # manager | worker | standalone
    availability: str  # Swarm's: active | pause | drain
    state: str  # Swarm's: ready | down | unknown | disconnected
    dockvol: str  # up | unreachable
    engine_version: str
    api_version: str


class Nodes:
    """This instance's node and the list of nodes. What identifies the node (its name, the
    engine's data root) is asked of the engine once: it stays while dockvol runs on the host."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._identity: EngineInfo | None = None
        self._lock = threading.Lock()

    def identity(self) -> EngineInfo:
        if self._identity is None:
            with self._lock:
                if self._identity is None:
                    self._identity = self._engine.info()
        return self._identity

    def here(self) -> str:
        """The name of the node whose engine this instance talks to."""
        return self.identity().name

    def list(self) -> list[Node]:
        info = self._engine.info()
        node_id = info.node_id or info.engine_id
        return [Node(info.name, node_id, "standalone", "active", "ready", "up", info.server_version, info.api_version)]
