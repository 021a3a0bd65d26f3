"""Ask every node at once, and answer in time whatever some of them do.

A list in fleet mode costs one request per node, sent in parallel (at most `limit` in flight), so
its latency is that of the slowest node that answers, and never more than the deadline: a node
that has not answered by then, or failed, is named, never silently left out (docs/design.md
section 10)."""

from __future__ import annotations

import concurrent.futures as futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
LIMIT = 64  # requests in flight per fan-out; a fleet larger than this is asked in waves


@dataclass
class Gathered(Generic[T]):
    answers: dict[str, T] = field(default_factory=dict)  # node -> what it answered
    unreachable: list[str] = field(default_factory=list)  # sorted: failed or past the deadline


class FanOut:
    def __init__(self, limit: int = LIMIT) -> None:
        self._pool = futures.ThreadPoolExecutor(max_workers=limit, thread_name_prefix="dockvol-fanout")

    def ask(self, nodes: Sequence[str], call: Callable[[str, float], T], timeout: float) -> Gathered[T]:
        """`call(node, seconds_left)` for every node; what came back within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        pending = {self._pool.submit(_timed, call, node, deadline): node for node in nodes}
        done, late = futures.wait(pending, timeout=max(0.0, deadline - time.monotonic()))
        gathered: Gathered[T] = Gathered()
        for future in done:
            node = pending[future]
            if future.exception() is None:
                gathered.answers[node] = future.result()
            else:
                gathered.unreachable.append(node)
        for future in late:
            future.cancel()  # one not started yet never starts; one under way ends at its own timeout
            gathered.unreachable.append(pending[future])
        gathered.unreachable.sort()
        return gathered

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _timed(call: Callable[[str, float], T], node: str, deadline: float) -> T:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"no time left to ask {node}")
    return call(node, left)
