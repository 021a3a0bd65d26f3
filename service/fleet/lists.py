"""One page of a list merged from every node's list (docs/design.md section 10).

Each node sorts its own list by name; the fleet's list is sorted by (name, node). Page p of size s
holds merged items (p-1)*s .. p*s-1, and each of them is among the first p*s items of its node's
list: so a node is asked for its first p*s items and its total, never for everything it holds."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..json_types import JSON


@dataclass(frozen=True)
class NodePage:
    items: Sequence[JSON]  # the node's first items, sorted by name, each with "name" and "node"
    total: int  # how many the node holds (that match the filters)


def window(page: int, page_size: int) -> int:
    """How many of its first items each node must give for page `page`."""
    return page * page_size


def merge(pages: Mapping[str, NodePage], page: int, page_size: int) -> tuple[list[JSON], int]:
    """The fleet's page `page`, and the fleet's total."""
    ordered = heapq.merge(*(p.items for p in pages.values()), key=lambda item: (item["name"], item["node"]))
    chosen = list(itertools.islice(ordered, (page - 1) * page_size, page * page_size))
    return chosen, sum(p.total for p in pages.values())
