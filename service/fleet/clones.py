"""A clone onto another node, between instances: the order the instance that was asked sends to
the copy's node, and where the copy's node pulls the source's export from."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..errors import InvalidInput

OWN_FIELDS = ("name", "labels", "pause")  # the clone's own (a clone's body, checked by its schema)


def order(clone: Mapping[str, Any], source: str, source_node: str) -> bytes:
    """The order for the copy's node: the clone's own fields, and its source and the source's node."""
    return json.dumps({**{k: clone[k] for k in OWN_FIELDS}, "source": source, "source_node": source_node}).encode()


def read_order(body: object) -> tuple[dict[str, Any], str, str]:
    """An order's clone fields (for the clone's schema to check), its source and the source's node."""
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("source", "source_node")):
        raise InvalidInput("source", "a clone order names its source and the source's node")
    return {k: body[k] for k in OWN_FIELDS if k in body}, body["source"], body["source_node"]


def export_target(volumes: str, source: str, pause: bool) -> str:
    """Where the source node's instance serves the source's export (`volumes`: the collection's path)."""
    return f"{volumes}/{quote(source)}/archive" + ("?pause=true" if pause else "")
