"""Intents: how a multi-step operation stays atomic when dockvol dies or the engine restarts.

Before an operation changes anything it takes a lock on every resource it touches, and the lock
is its intent record, kept in the engine itself: one created-never-started container per
resource, named after it (the engine's uniqueness of names makes it a lock across threads,
workers and dockvol processes), labelled with the operation's id, kind, arguments and owner
(host and process). Everything the operation creates carries the operation's id
(`dockvol.op`). When the operation ends, the locks go.

If it fails on an error it sees, the operation's recoverer runs at once; if the process dies (or
the recoverer cannot reach the engine), the lock stays behind, and the reconciler finds it: an
intent whose owner is gone is recovered from what the engine holds, rolled back, or forward
where the operation had passed its point of no return, and only then released. A request that
meets a held lock waits for it (up to `LOCK_WAIT` seconds), then answers 409.

What the engine cannot hold (the host directories a create makes for its bind sources) goes into
the record before it is made (`note`): one more lock, on a key of the operation's own, whose record
is the operation's with more arguments; the recovery reads the record of all its locks as one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .. import times
from ..engine.port import ContainerRecord, ContainerSpec, Engine
from ..errors import Conflict, NotFound
from . import backoff
from . import labels as label
from .helpers import IMAGE, NEVER_RUN, Helpers, alive, local_pid, owner

log = logging.getLogger(__name__)
LOCK_WAIT = 10.0  # seconds a request waits for a resource another operation holds
FOREIGN_LOCK_TTL = 3600  # seconds: a lock from another host (a replaced container) expires then
LOCK_PREFIX = "dockvol-lock-"

# The operations that are live in this process, and those of them that have begun to change things.
_LIVE: set[str] = set()
_BEGUN: set[str] = set()


@dataclass(frozen=True)
class Intent:
    op: str
    kind: str
    keys: tuple[str, ...]
    args: Mapping[str, Any] = field(default_factory=dict)
    owner: str = ""
    locked_at: str = ""

    def adding(self, keys: Sequence[str], args: Mapping[str, Any]) -> Intent:
        """This record with more keys and arguments (those of a note, `Intents.note`)."""
        return replace(self, keys=tuple(sorted({*self.keys, *keys})), args={**self.args, **args})

    def begin(self) -> None:
        """Say that changes start here: an error before this point needs no recovery (a check
        failed), one after it does. A dead process's operation is always recovered."""
        _BEGUN.add(self.op)

    @property
    def label(self) -> dict[str, str]:
        """Put this on everything the operation creates."""
        return {label.OP: self.op}


def lock_name(key: str) -> str:
    return LOCK_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:24]


def intent_of(c: ContainerRecord) -> Intent:
    data = json.loads(c.labels.get(label.INTENT, "{}"))
    return Intent(
        c.labels.get(label.OP, ""),
        data.get("kind", ""),
        tuple(data.get("keys", ())),
        data.get("args", {}),
        c.labels.get(label.OWNER, ""),
        c.labels.get(label.LOCKED_AT, ""),
    )


def is_lock(c: ContainerRecord) -> bool:
    return label.is_managed(c.labels) and c.labels.get(label.ROLE) == "lock"


def pending_ops(containers: Sequence[ContainerRecord]) -> set[str]:
    """The operations holding locks in a container listing (their volumes are not complete)."""
    return {c.labels.get(label.OP, "") for c in containers if is_lock(c)}


class Intents:
    def __init__(self, engine: Engine, helpers: Helpers) -> None:
        self._engine = engine
        self._helpers = helpers
        self._recoverers: dict[str, Callable[[Intent], None]] = {}
        # Our own operations whose recovery, or release, must be redone: by op, with the helpers'.
        self._retries = helpers.retries
        self._holding: dict[str, Held] = {}  # this process's operations under way, by id

    def recoverer(self, kind: str, recover: Callable[[Intent], None]) -> None:
        """`recover(intent)` brings the engine to the operation's old or new state, from what the
        engine holds; it must be idempotent (it may run again after a partial run)."""
        self._recoverers[kind] = recover

    @contextlib.contextmanager
    def run(self, kind: str, keys: Sequence[str], *, wait: float | None = None, **args: Any) -> Iterator[Intent]:
        """Lock `keys` (e.g. "binding/web") for an operation of `kind`, waiting up to `wait` seconds
        (default `LOCK_WAIT`) for them; on a failure inside after `intent.begin()`, recover it
        before the error goes on."""
        held = self.hold(kind, keys, wait=wait, **args)
        try:
            yield held.intent
        except BaseException:
            held.end(failed=True)
            raise
        held.end(failed=False)

    def hold(self, kind: str, keys: Sequence[str], *, wait: float | None = None, **args: Any) -> Held:
        """`run` for an operation that outlives the call that starts it (a paused export streams
        until its client has read it): the caller ends it with `Held.end`."""
        intent = Intent(secrets.token_hex(8), kind, tuple(sorted(set(keys))), args, owner(), times.now())
        _LIVE.add(intent.op)
        try:
            held = self._holding[intent.op] = Held(self, intent, self._acquire(intent, wait))
        except BaseException:
            _LIVE.discard(intent.op)
            raise
        return held

    def note(self, intent: Intent, **args: Any) -> None:
        """Add `args` to a running operation's record before the change they tell of, so that its
        recovery knows of the change even if the process dies right after making it: one more lock,
        on a key of the operation's own, whose record is the operation's with these arguments."""
        held = self._holding[intent.op]
        key = f"op/{intent.op}/{len(held.locks)}"
        # Counted as held before it is made: an answer lost on the way still gets it released.
        held.intent = held.intent.adding([key], args)
        held.locks.append(lock_name(key))
        self._take(self._lock_spec(held.intent, key), key)

    def _finish(self, op: str, held: list[str]) -> None:
        """Remove the operation's helpers (any whose removal failed on the way) and its locks; if
        the engine is away, this process's reconciler does it later, then releasing only the
        locks that are still the operation's (a name may be another's by then)."""

        def finish(mine: str | None) -> None:
            self._remove_own(op, "helper")
            self._release(held, mine)

        self._retries.attempt(op, f"release operation {op}", lambda: finish(None), again=lambda: finish(op))

    # -- recovery --------------------------------------------------------------------------------

    def retry_own(self) -> int:
        """Try again what this process could not finish because the engine was away: recoveries,
        releases, and helpers' removals (an export's too, outside any operation); how many were
        tried. Every process runs this for its own."""
        return self._retries.run()

    def recover_dead(self) -> int:
        """Recover every intent whose owner is gone (a dead process on this host, or another
        host's lock past its time); how many. One reconciler per host runs this. First the helpers
        of dead processes on this host go, an operation's or not (an export's): each keeps its
        volumes in use."""
        done = self._helpers.sweep_dead()
        for op, intent in self._held().items():
            if op in _LIVE or op in self._retries or not _dead(intent):
                continue
            if not self._engine.list_containers(labels=[f"{label.ROLE}=lock", f"{label.OP}={op}"]):
                continue  # it ended between the two looks
            log.warning(
                "recovering operation %s (%s of %s) left by %s", op, intent.kind, ", ".join(intent.keys), intent.owner
            )
            self._recover_now(intent)
            done += 1
        return done

    def under_way(self) -> dict[str, Intent]:
        """Every operation holding locks now, anyone's, by id: its record, notes included."""
        return self._held()

    def _held(self) -> dict[str, Intent]:
        """Every operation's record, read from all its locks (notes add to it)."""
        held: dict[str, Intent] = {}
        for c in self._engine.list_containers(labels=[f"{label.MANAGED}=true", f"{label.ROLE}=lock"]):
            op, intent = c.labels.get(label.OP, ""), intent_of(c)
            held[op] = held[op].adding(intent.keys, intent.args) if op in held else intent
        return held

    def _recover_now(self, intent: Intent) -> None:
        self._retries.attempt(
            intent.op, f"recover operation {intent.op} ({intent.kind})", lambda: self._recover(intent)
        )

    def _recover(self, intent: Intent) -> None:
        self._remove_own(intent.op, "helper")  # first: a helper keeps its volumes in use
        recover = self._recoverers.get(intent.kind)
        if recover is not None:
            recover(intent)
        self._release([lock_name(k) for k in intent.keys], intent.op)

    # -- locks -----------------------------------------------------------------------------------

    def _acquire(self, intent: Intent, wait: float | None) -> list[str]:
        held: list[str] = []
        try:
            for key in intent.keys:
                self._take(self._lock_spec(intent, key), key, wait)
                held.append(lock_name(key))
        except BaseException:
            self._finish(intent.op, held)  # the engine may be away: then the reconciler releases them
            raise
        return held

    @staticmethod
    def _lock_spec(intent: Intent, key: str) -> ContainerSpec:
        labels = {
            label.MANAGED: "true",
            label.ROLE: "lock",
            label.OP: intent.op,
            label.OWNER: intent.owner,
            label.LOCKED_AT: intent.locked_at,
            label.INTENT: json.dumps({"kind": intent.kind, "keys": intent.keys, "args": intent.args}),
            label.LOCK: key,
        }
        return ContainerSpec(name=lock_name(key), image=IMAGE, command=NEVER_RUN, network="none", labels=labels)

    def _take(self, spec: ContainerSpec, key: str, wait: float | None = None) -> None:
        self._helpers.ensure_image()

        def taken() -> bool:
            try:
                self._engine.create_container(spec)
                return True
            except Conflict:
                return False

        if not backoff.until(taken, first=0.02, most=0.5, within=LOCK_WAIT if wait is None else wait):
            raise Conflict(f"{key.replace('/', ' ')} is busy with another operation; try again")

    def _release(self, names: Sequence[str], op: str | None = None) -> None:
        for name in names:
            try:
                if op is not None:  # only our own: the name may be someone else's by now
                    found = self._engine.list_containers(name=name)
                    if not found or found[0].labels.get(label.OP) != op:
                        continue
                self._engine.remove_container(name)
            except NotFound:
                pass

    def remove_helpers(self, op: str) -> None:
        """Remove the helpers an operation made (a recoverer that used some calls this)."""
        self._remove_own(op, "helper")

    def _remove_own(self, op: str, role: str) -> None:
        for c in self._engine.list_containers(
            labels=[f"{label.MANAGED}=true", f"{label.ROLE}={role}", f"{label.OP}={op}"]
        ):
            try:
                self._engine.remove_container(c.id)
            except NotFound:
                pass


@dataclass
class Held:
    intents: Intents
    intent: Intent
    locks: list[str]

    def end(self, failed: bool) -> None:
        """Release; after a failure past `intent.begin()`, recover first."""
        op = self.intent.op
        try:
            if failed and op in _BEGUN:
                self.intents._recover_now(self.intent)
            else:
                self.intents._finish(op, self.locks)
        finally:
            _LIVE.discard(op)
            _BEGUN.discard(op)
            self.intents._holding.pop(op, None)


def _dead(intent: Intent) -> bool:
    pid = local_pid(intent.owner)
    if pid is not None:
        return pid != os.getpid() and not alive(pid)  # our own are retry_own's
    try:
        return time.time_ns() - times.nanoseconds(intent.locked_at) > FOREIGN_LOCK_TTL * 1_000_000_000
    except ValueError:
        return True
