"""A fleet-wide lock, kept in Swarm's own replicated store: a Swarm config of a name unique to the
lock's key. Making it is taking the lock (the managers' Raft store makes one of two racing creates
fail with 409: held); removing it (by id) is letting go. dockvol adds no consensus of its own.

Only a manager's engine can make a config, so a worker's instance asks a manager's instance to
take and release for it (http/fleet/router.py serves that). The config carries its holder and the
time it was taken in its labels; a holder that died leaves it behind, and a lock older than
`stale_after` (by the clock of the manager's instance that looks, the one that wrote the time for
a single-manager Swarm) is broken: removed by its id, so a lock taken afresh meanwhile stays. A
live holder lets go well within the bound: its hold is a count and a create, each bounded by the
engine's timeout (docs/design.md section 11)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator

from ..engine.port import Engine
from ..errors import Conflict, NotFound

log = logging.getLogger(__name__)
PREFIX = "dockvol-lock-"
KEY_LABEL = "dockvol.lock"
HOLDER_LABEL = "dockvol.lock.holder"
TAKEN_LABEL = "dockvol.lock.taken"  # seconds since the epoch, as the taker's clock says
STALE_AFTER = 30.0  # seconds after which a lock is taken to be its dead holder's
POLL = (0.02, 0.2)  # seconds between attempts while it is held: from, to (doubling, with jitter)

Take = Callable[[str, str], str | None]  # (key, holder) -> the lock's id, or None while another holds it
Release = Callable[[str], None]  # the lock's id


def config_name(key: str) -> str:
    """The config that is `key`'s lock: a Swarm config name is at most 64 characters of a narrow
    alphabet, and a project's name need not fit it, so the key is hashed (and kept in a label)."""
    return PREFIX + hashlib.sha256(key.encode()).hexdigest()[:40]


class ConfigLocks:
    """Locks as configs of a manager's engine."""

    def __init__(
        self, engine: Engine, stale_after: float = STALE_AFTER, clock: Callable[[], float] = time.time
    ) -> None:
        self._engine, self.stale_after, self._clock = engine, stale_after, clock

    def take(self, key: str, holder: str) -> str | None:
        """The lock's id if this took it; None while a live holder has it (a stale one is broken)."""
        name = config_name(key)
        labels = {KEY_LABEL: key, HOLDER_LABEL: holder, TAKEN_LABEL: f"{self._clock():.3f}"}
        for _ in range(2):  # again once after breaking a stale lock
            try:
                return self._engine.create_config(name, key.encode(), labels)
            except Conflict:
                pass  # held: by a live holder, or a dead one's
            if not self._broke_stale(name):
                return None
        return None

    def release(self, id_: str) -> None:
        with contextlib.suppress(NotFound):  # broken as stale meanwhile: nothing to let go
            self._engine.remove_config(id_)

    def _broke_stale(self, name: str) -> bool:
        try:
            found = self._engine.inspect_config(name)
        except NotFound:
            return True  # let go between the create and the look: try again
        try:
            taken = float(found.labels.get(TAKEN_LABEL, "0"))
        except ValueError:
            taken = 0.0
        age = self._clock() - taken
        if age < self.stale_after:
            return False
        log.warning(
            "broke the fleet lock %s of %s, taken %.1f s ago",
            found.labels.get(KEY_LABEL, name),
            found.labels.get(HOLDER_LABEL, "?"),
            age,
        )
        with contextlib.suppress(NotFound):
            self._engine.remove_config(found.id)
        return True


@contextlib.contextmanager
def held(
    take: Take,
    release: Release,
    key: str,
    holder: str,
    wait: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[None]:
    """Hold `key`'s lock for the block: try until it is free, at most `wait` seconds, else 409
    busy (as a node's own locks say)."""
    deadline = clock() + wait
    pause = POLL[0]
    while True:
        id_ = take(key, holder)
        if id_ is not None:
            break
        if clock() >= deadline:
            raise Conflict(f"{key.replace('/', ' ')} is busy with another operation; try again")
        sleep(min(pause * random.uniform(0.5, 1.5), max(0.0, deadline - clock())))
        pause = min(pause * 2, POLL[1])
    try:
        yield
    finally:
        try:
            release(id_)
        except Exception as exc:  # it is broken as stale in time: the next holder waits that long
            log.error("could not let go of the fleet lock %s: %s", key, exc)
