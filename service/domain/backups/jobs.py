"""Work that goes on after its request is answered (a backup, a restore: 202 Accepted)."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

from ..helpers import gone


def in_background(work: Callable[[], None], name: str) -> threading.Thread:
    """Run `work` on a thread of its own (a greenlet under gevent) as the request's caller: its
    project and every other context variable go with it."""
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(work,), name=name, daemon=True)
    thread.start()
    return thread


def as_now(doc: dict[str, Any], died: str) -> dict[str, Any]:
    """A job's record as it is now: one still `running` whose process is gone has failed (`died`)."""
    if doc.get("status") == "running" and gone(doc.get("owner", "")):
        return {**doc, "status": "failed", "error": died}
    return doc
