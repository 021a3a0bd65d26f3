"""Where a new resource goes (docs/design.md section 10): data decides first, then the caller,
then the active, reachable node with the fewest dockvol volumes. Swarm's own scheduler places
services, not data; dockvol adds no scheduler, only this rule."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..errors import Conflict, EngineUnavailable, InvalidInput


@dataclass(frozen=True)
class Candidate:
    name: str
    availability: str  # Swarm's: active | pause | drain
    state: str  # Swarm's: ready | down | ...
    reachable: bool  # its dockvol answered
    volumes: int  # dockvol volumes it holds

    @property
    def open(self) -> bool:
        return self.availability == "active" and self.state == "ready" and self.reachable


def place(
    nodes: Sequence[Candidate],
    wanted: str | None = None,
    volume_nodes: Collection[str] = (),
    group_node: str | None = None,
) -> str:
    """The node a new resource goes to. `volume_nodes`: where its named volumes live; `group_node`:
    its sharing group's node; `wanted`: the `node` the caller gave."""
    by_name = {n.name: n for n in nodes}
    if wanted is not None and wanted not in by_name:
        raise InvalidInput("node", f"there is no node {wanted!r} in this fleet")
    bound = _bound_by_data(wanted, set(volume_nodes), group_node)
    if bound is not None:
        return _open(by_name[bound] if bound in by_name else None, bound)
    if wanted is not None:
        return _open(by_name[wanted], wanted)
    chosen = min((n for n in nodes if n.open), key=lambda n: (n.volumes, n.name), default=None)
    if chosen is None:
        raise EngineUnavailable("no node of the fleet is active and reachable")
    return chosen.name


def _bound_by_data(wanted: str | None, volume_nodes: set[str], group_node: str | None) -> str | None:
    if len(volume_nodes) > 1:
        raise InvalidInput("mounts", f"its volumes live on different nodes: {', '.join(sorted(volume_nodes))}")
    if group_node is not None and volume_nodes and volume_nodes != {group_node}:
        raise InvalidInput("mounts", f"its volumes live on {min(volume_nodes)}, its sharing group on {group_node}")
    bound = group_node or (min(volume_nodes) if volume_nodes else None)
    if bound is not None and wanted is not None and wanted != bound:
        raise InvalidInput("node", f"its data lives on {bound}, not on {wanted}")
    return bound


def _open(node: Candidate | None, name: str) -> str:
    if node is None or not node.reachable:
        raise EngineUnavailable(f"node {name} does not answer")
    if node.availability != "active" or node.state != "ready":
        raise Conflict(f"node {name} takes nothing new (availability {node.availability}, state {node.state})")
    return name
