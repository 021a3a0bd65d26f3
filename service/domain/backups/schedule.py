"""A backup policy's schedule: a cron expression read in a time zone of its own (croniter).

Five fields as cron reads them, or six: the sixth, last, is seconds (croniter's way; tests use it
to fire every few seconds). Times are computed on the zone's wall clock, so a daily 02:30 stays at
02:30 across a change of daylight-saving time: on the night the clocks go forward it runs at the
first time that exists (03:00), and on the night they go back it runs once, at the first 02:30,
unless its hour field is `*` (then every hour runs, both 02:00-03:00 hours included), as cron does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter


@dataclass(frozen=True)
class Schedule:
    cron: str
    timezone: str = "UTC"

    def check(self) -> list[tuple[str, str]]:
        """What is wrong with it: (field, why) pairs."""
        wrong = []
        fields = self.cron.split()
        if len(fields) not in (5, 6) or not croniter.is_valid(self.cron):
            wrong.append(("cron", f"{self.cron!r} is not a cron expression of 5 fields (or 6: seconds last)"))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones, a long name
            wrong.append(("timezone", f"{self.timezone[:64]!r} is not an IANA time zone"))
        if not wrong:
            try:
                self.next_runs(datetime.now(UTC), 1)
            except CroniterBadDateError:
                wrong.append(("cron", f"{self.cron!r} names no time that exists (30 February?)"))
        return wrong

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def after(self, t: datetime) -> Iterator[datetime]:
        """The schedule's times strictly after `t`, in its zone (with their offsets)."""
        it = croniter(self.cron, t.astimezone(self.zone()))
        hour_any = self.cron.split()[1] == "*"
        previous: datetime | None = None
        while True:
            nxt: datetime = it.get_next(datetime)
            if previous is not None and not hour_any and nxt.replace(tzinfo=None) == previous.replace(tzinfo=None):
                continue  # the same wall-clock time again, an hour later: the clocks went back
            previous = nxt
            yield nxt

    def next_runs(self, now: datetime, count: int = 3) -> list[datetime]:
        found = []
        for t in self.after(now):
            found.append(t)
            if len(found) == count:
                break
        return found

    def between(self, start: datetime, end: datetime, limit: int = 10_000) -> list[datetime]:
        """Its times in (start, end], oldest first; at most `limit` of the newest."""
        found: list[datetime] = []
        for t in self.after(start):
            if t > end:
                break
            found.append(t)
            if len(found) > limit:
                del found[0]
        return found


def utc(t: datetime) -> datetime:
    return t.astimezone(UTC)
