"""Server-Sent Events as the watch writes them (GET /api/v1/events: a node's stream, and fleet
mode's merge of the nodes' streams) and as the merge reads each node's back: the text of every
block in one place, so both streams write the same things alike. Their headers: http/responses.py."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from . import times

RETRY = "retry: 2000\n\n"  # every stream's first block: a client reconnects after 2 s
Block = dict[str, str]  # one block's fields (`event`, `id`, `data`)


def block(event: str | None = None, data: Any = None, id: str | None = None) -> str:
    """One block: `id`, `event`, then `data` (JSON, or text already written: a line a field)."""
    lines = [] if id is None else [f"id: {id}"]
    if event is not None:
        lines.append(f"event: {event}")
    if data is not None:
        text = data if isinstance(data, str) else json.dumps(data)
        lines += [f"data: {line}" for line in text.split("\n")]
    return "\n".join(lines) + "\n\n"


def heartbeat(node: str) -> str:
    """What an idle stream says every so often, so that neither end takes it for dead."""
    return block("heartbeat", {"node": node, "at": times.now()})


def blocks(chunks: Iterable[bytes]) -> Iterator[Block]:
    """The events of a text/event-stream, as their fields (comments and `retry` dropped)."""
    pending = b""
    for chunk in chunks:
        pending += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in pending:
            raw, pending = pending.split(b"\n\n", 1)
            block: Block = {}
            for line in raw.decode().split("\n"):
                name, _, value = line.partition(":")
                if not name or name == "retry":
                    continue
                value = value.removeprefix(" ")
                block[name] = f"{block[name]}\n{value}" if name == "data" and name in block else value
            if block:
                yield block
