"""Retention: which backups a policy keeps, by restic's `forget --keep-*` rules (pure: no I/O).

The rules, as restic applies them to one group of snapshots (here: one volume's backups by one
policy in one repository), newest first:

- `keep_last` n: the n newest.
- `keep_hourly`, `keep_daily`, `keep_weekly` (ISO weeks), `keep_monthly`, `keep_yearly` n: for the
  n newest hours (days, ...) that have a snapshot, the newest snapshot of each.
- `keep_within` d (`1y2m3d4h`): every snapshot newer than d before the newest one (not before now:
  a policy that stopped running does not lose its backups as time goes by).
- A calendar rule that found fewer periods than it may keep also keeps the oldest snapshot
  (restic 0.15 on: `oldest` ...), so that a young repository keeps its first backup.

A snapshot kept by several rules carries each of them as a reason. Times are bucketed on their own
wall clock: the caller gives them in the policy's time zone. Every rule keeps the newest backup,
and no rule at all keeps everything (`no_rule`): a volume's last backup never goes."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

WITHIN = re.compile(r"(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)d)?(?:(\d+)h)?")

# The calendar rules, in restic's order, each with the period a time falls in.
PERIODS: tuple[tuple[str, Callable[[datetime], object]], ...] = (
    ("keep_hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("keep_daily", lambda t: (t.year, t.month, t.day)),
    ("keep_weekly", lambda t: t.isocalendar()[:2]),
    ("keep_monthly", lambda t: (t.year, t.month)),
    ("keep_yearly", lambda t: t.year),
)


@dataclass(frozen=True)
class Rules:
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within: str | None = None

    def empty(self) -> bool:
        return (
            not any(
                (
                    self.keep_last,
                    self.keep_hourly,
                    self.keep_daily,
                    self.keep_weekly,
                    self.keep_monthly,
                    self.keep_yearly,
                )
            )
            and not self.keep_within
        )


@dataclass(frozen=True)
class Snapshot:
    id: str
    time: datetime


@dataclass
class Decision:
    keep: list[tuple[str, list[str]]] = field(default_factory=list)  # newest first, with the rules
    remove: list[str] = field(default_factory=list)


def within(text: str) -> tuple[int, int, int, int]:
    """`1y2m3d4h` as (years, months, days, hours); ValueError if it is not one."""
    found = WITHIN.fullmatch(text)
    if not text or found is None:
        raise ValueError(f"{text!r} is not a duration like 1y2m3d4h")
    y, m, d, h = (int(g or 0) for g in found.groups())
    return y, m, d, h


def _minus(t: datetime, years: int, months: int, days: int, hours: int) -> datetime:
    """t less a duration, as Go's AddDate normalises (31 March less one month is 3 March)."""
    month0 = t.month - 1 - months
    year = t.year - years + month0 // 12
    month = month0 % 12 + 1
    first = t.replace(year=year, month=month, day=1)
    return first + timedelta(days=t.day - 1 - days, hours=-hours)


def apply(rules: Rules, snapshots: Sequence[Snapshot]) -> Decision:
    """What `rules` keep of `snapshots` (one group), and why; what they remove."""
    ordered = sorted(snapshots, key=lambda s: (s.time, s.id), reverse=True)
    decision = Decision()
    if not ordered:
        return decision
    if rules.empty():
        decision.keep = [(s.id, ["no_rule"]) for s in ordered]
        return decision
    left = {"keep_last": rules.keep_last, **{name: getattr(rules, name) for name, _ in PERIODS}}
    last_seen: dict[str, object] = {}
    since = _minus(ordered[0].time, *within(rules.keep_within)) if rules.keep_within else None
    reasons: list[list[str]] = []
    for s in ordered:
        why = []
        if left["keep_last"] > 0:
            left["keep_last"] -= 1
            why.append("keep_last")
        for name, period in PERIODS:
            value = period(s.time)
            if left[name] > 0 and last_seen.get(name) != value:
                left[name] -= 1
                last_seen[name] = value
                why.append(name)
        if since is not None and s.time > since:
            why.append("keep_within")
        reasons.append(why)
    oldest = reasons[-1]
    for name, _ in PERIODS:
        if getattr(rules, name) > 0 and left[name] > 0 and name not in oldest:
            oldest.append(f"oldest_{name.removeprefix('keep_')}")
    for s, why in zip(ordered, reasons, strict=True):
        if why:
            decision.keep.append((s.id, why))
        else:
            decision.remove.append(s.id)
    return decision
