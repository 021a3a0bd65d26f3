"""Fleet mode's watch (docs/design.md section 10): one Server-Sent Events stream of every node's
changes, merged from one stream per node, each opened through that node's instance.

Each node's stream has ids of its own (its engine's event time and a counter). The merged stream's
id is all of them at once: node -> that node's last id, as opaque base64url JSON. Resuming with it
(`Last-Event-ID`) resumes every node where it was, so nothing is lost on any node while the client
was away (within what each node keeps; a node that no longer has it says `resync`). A node that
was not in the id (new to the fleet, or re-listed after its `resync`) starts from now.

A merged stream ends when the fleet changes under it: a node's stream ends (its instance or
engine went away, or it said `resync`), or a node becomes reachable or unreachable. The client
reconnects with its last id, as every SSE client does, and the new stream starts where the old
one stopped; its `Dockvol-Unreachable-Nodes` header names the nodes it could not open.
"""

from __future__ import annotations

import base64
import binascii
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping

from .. import sse
from ..domain.watch import parse_id
from ..errors import InvalidInput
from .peers import Reply

QUEUE = 1_000  # blocks waiting to be sent; past this the nodes' own streams wait (and drop it)


def encode(ids: Mapping[str, str]) -> str:
    text = json.dumps(dict(sorted(ids.items())), separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(text: str) -> dict[str, str]:
    """A merged stream's id: node -> that node's id; 422 for anything this fleet did not give."""
    try:
        ids = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        ids = None
    if not isinstance(ids, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _is_node_id(v) for k, v in ids.items()
    ):
        raise InvalidInput("last_event_id", "not an id this fleet's watch gave")
    return ids


def _is_node_id(text: str) -> bool:
    try:
        parse_id(text)
    except ValueError:
        return False
    return True


class Merged:
    """The merged stream of `streams` (node -> its open stream), resumed from `ids`."""

    def __init__(
        self,
        streams: Mapping[str, Reply],
        ids: Mapping[str, str],
        here: str,
        heartbeat: float,
        fleet_changed: Callable[[], bool],
    ) -> None:
        self._streams = dict(streams)
        self._ids = {node: ids[node] for node in self._streams if node in ids}
        self._here = here
        self._heartbeat = heartbeat
        self._fleet_changed = fleet_changed
        self._queue: queue.Queue[tuple[str, sse.Block | None]] = queue.Queue(QUEUE)
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[str]:
        for node, reply in self._streams.items():
            threading.Thread(target=self._read, args=(node, reply), name=f"dockvol-watch-{node}", daemon=True).start()
        try:
            yield sse.RETRY
            beat = time.monotonic() + self._heartbeat
            while True:
                try:
                    node, block = self._queue.get(timeout=max(0.0, beat - time.monotonic()))
                except queue.Empty:
                    node, block = "", {"event": "heartbeat"}
                if block is None:
                    return  # a node's stream ended: the client comes back with the id it has
                if "id" in block:
                    self._ids[node] = block["id"]
                event = block.get("event")
                if event == "resync":
                    self._ids.pop(node, None)  # it starts from now when the client is back
                if event == "heartbeat":
                    if time.monotonic() < beat:
                        continue  # the nodes' own: they keep their streams alive, not the client's
                    if self._fleet_changed():
                        return
                    beat = time.monotonic() + self._heartbeat
                    yield sse.heartbeat(self._here)
                    continue
                data = None if event is None else block.get("data", "")
                yield sse.block(event, data, id=encode(self._ids))
        finally:
            self._closed.set()
            for reply in self._streams.values():
                reply.close()

    def _read(self, node: str, reply: Reply) -> None:
        try:
            for block in sse.blocks(reply.body):
                if self._closed.is_set():
                    break
                self._put(node, block)
        except Exception:  # however it broke (EngineUnavailable, closed under it): the stream ends
            pass
        finally:
            self._put(node, None)

    def _put(self, node: str, block: sse.Block | None) -> None:
        while not self._closed.is_set():  # a full queue waits for the client, or for its end
            try:
                self._queue.put((node, block), timeout=0.5)
                return
            except queue.Full:
                continue
