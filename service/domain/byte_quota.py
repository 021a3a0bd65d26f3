"""The writes that would take a project past its `bytes` quota (docs/design.md, "Projects"):
imports and clones, refused before anything is written.

A write claims its bytes under the project's quota lock, against a fresh measurement plus what
the project's other unfinished writes have claimed, and the claim is written into its operation's
record (a note: one more lock container, intents.py) before it writes; it lasts as long as the
operation. After the write, this process's measurement is out of date: the next answer or
check measures again. So two writes checked at once cannot both take the last room, across threads, workers
and processes, and no write holds the project's lock while it copies. A claim and the bytes its
write has already made are both counted until it ends: a check meanwhile may refuse early, never
let the quota pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from typing import Any

from ..errors import QuotaExceeded
from .intents import Intent, Intents
from .projects import Projects

CLAIM = "claimed_bytes"  # in an operation's record: {"project": NAME, "bytes": N}


class ByteQuota:
    def __init__(self, projects: Projects, intents: Intents, lock: Callable[[str], ContextManager[Any]]) -> None:
        self._projects = projects
        self._intents = intents
        self._lock = lock  # the project's quota lock (projects.ProjectScope's)

    @contextlib.contextmanager
    def claim(self, intent: Intent, project: str, size: int = 0, copying: str | None = None) -> Iterator[None]:
        """For the write inside: claim `size` bytes in `project` for the running operation `intent`
        (and, for a copy, the measured size of the volume `copying`); QuotaExceeded if they would
        pass its quota."""
        limit = self._projects.quota(project).get("bytes")
        if limit is None:
            yield
            return
        with self._lock(f"quota/{project}"):
            measured = self._projects.meter.measure(fresh=True)
            used = measured.used(project) + self._claimed(project, intent.op)
            size += measured.size(copying) if copying else 0
            if used + size > limit:
                raise QuotaExceeded("bytes", limit, used)
            self._intents.note(intent, **{CLAIM: {"project": project, "bytes": size}})
        try:
            yield
        finally:
            self._projects.meter.forget()

    def _claimed(self, project: str, but: str) -> int:
        claims = [i.args.get(CLAIM) or {} for op, i in self._intents.under_way().items() if op != but]
        return sum(int(c.get("bytes", 0)) for c in claims if c.get("project") == project)
