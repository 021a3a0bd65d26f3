"""Times as dockvol writes and reads them, the one module that does: RFC 3339 in UTC with `Z`
(`2026-12-05T12:00:00Z`) in every answer, event, label and log line. Whole seconds, unless a
fraction is asked for: an event's time carries the engine's microseconds, a log line milliseconds.
Read back: any RFC 3339 time, whatever its offset, to the nanosecond (the engine's precision)."""

from __future__ import annotations

import re
import time
from datetime import datetime

_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def text(ns: int, digits: int = 0) -> str:
    """Nanoseconds since the epoch, with `digits` (0 to 9) of the second, always as many."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{whole}{f'.{fraction:09d}'[: digits + 1] if digits else ''}Z"


def now() -> str:
    return text(time.time_ns())


def nanoseconds(rfc3339: str) -> int:
    """An RFC 3339 time as nanoseconds since the epoch; ValueError if it is not one."""
    match = _RFC3339.fullmatch(rfc3339)
    if not match:
        raise ValueError(f"not an RFC 3339 time: {rfc3339!r}")
    whole, fraction, zone = match.groups()
    at = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    return int(at.timestamp()) * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


def utc(rfc3339: str) -> str:
    """An RFC 3339 time (the engine's, in its host's zone) as dockvol shows it: in UTC with `Z`,
    with microseconds only if it had a fraction. ValueError if it is not one."""
    return text(nanoseconds(rfc3339), 6 if "." in rfc3339 else 0)
