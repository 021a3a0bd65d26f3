"""Retention as restic's `forget --keep-*` documents it (service/domain/backups/retention.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.domain.backups.retention import Rules, Snapshot, apply, within


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def snaps(*times: str) -> list[Snapshot]:
    return [Snapshot(t, at(t)) for t in times]


def kept(rules: Rules, snapshots: list[Snapshot]) -> list[str]:
    return [i for i, _ in apply(rules, snapshots).keep]


# Hourly backups on two days (restic's forget docs reason over such series).
HOURLY = snaps(*[f"2026-01-0{d}T{h:02}:30:00" for d in (1, 2) for h in range(0, 24, 6)])


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        # --keep-last 3: the three newest.
        (Rules(keep_last=3), ["2026-01-02T18:30:00", "2026-01-02T12:30:00", "2026-01-02T06:30:00"]),
        # --keep-daily 2: the newest of each of the two newest days.
        (Rules(keep_daily=2), ["2026-01-02T18:30:00", "2026-01-01T18:30:00"]),
        # --keep-daily 5 with two days: both days' newest, and the oldest (restic >= 0.15).
        (Rules(keep_daily=5), ["2026-01-02T18:30:00", "2026-01-01T18:30:00", "2026-01-01T00:30:00"]),
        # --keep-hourly 3: three hours that have a snapshot, newest first.
        (Rules(keep_hourly=3), ["2026-01-02T18:30:00", "2026-01-02T12:30:00", "2026-01-02T06:30:00"]),
        # --keep-within 12h: newer than 12 h before the newest snapshot (not before now).
        (Rules(keep_within="12h"), ["2026-01-02T18:30:00", "2026-01-02T12:30:00"]),
        # --keep-within 1d: 2026-01-01T18:30 is exactly a day older, and not kept (strictly newer).
        (
            Rules(keep_within="1d"),
            ["2026-01-02T18:30:00", "2026-01-02T12:30:00", "2026-01-02T06:30:00", "2026-01-02T00:30:00"],
        ),
        # Rules combine with "or": --keep-last 1 --keep-daily 2.
        (Rules(keep_last=1, keep_daily=2), ["2026-01-02T18:30:00", "2026-01-01T18:30:00"]),
    ],
)
def test_restic_rules_on_hourly_backups(rules, expected):
    assert kept(rules, HOURLY) == expected
    decision = apply(rules, HOURLY)
    assert sorted(decision.remove + expected) == sorted(s.id for s in HOURLY)


def test_each_kept_backup_says_which_rules_keep_it():
    decision = dict(apply(Rules(keep_last=1, keep_daily=2, keep_weekly=1), HOURLY).keep)
    assert decision == {
        "2026-01-02T18:30:00": ["keep_last", "keep_daily", "keep_weekly"],
        "2026-01-01T18:30:00": ["keep_daily"],
    }


def test_daily_backups_for_years_keep_daily_weekly_monthly_yearly_as_the_manual_counts():
    """restic's manual: daily backups, `--keep-daily 7 --keep-weekly 5 --keep-monthly 12
    --keep-yearly 75` keep the last 7 days, then 4 more weeks (7 days hold one week's end), 11 or
    12 more month ends, and year ends: every other backup goes."""
    start = datetime(2020, 1, 1, 3, tzinfo=UTC)
    days = [Snapshot(f"s{i}", start + timedelta(days=i)) for i in range(6 * 365)]
    decision = apply(Rules(keep_daily=7, keep_weekly=5, keep_monthly=12, keep_yearly=75), days)
    reasons = dict(decision.keep)
    newest = days[-1].time
    assert [i for i, why in reasons.items() if "keep_daily" in why] == [
        f"s{i}" for i in range(len(days) - 1, len(days) - 8, -1)
    ]
    weekly_only = [i for i, why in reasons.items() if why == ["keep_weekly"]]
    assert len(weekly_only) in (3, 4)  # 3 when the 7 days span two ISO weeks
    monthly_only = [i for i, why in reasons.items() if why == ["keep_monthly"]]
    assert len(monthly_only) in (11, 12)
    years = {s.time.year for s in days}
    yearly = [i for i, why in reasons.items() if "keep_yearly" in why]
    assert len(yearly) == len(years)  # fewer years than 75: each year's last, and the oldest too
    assert "oldest_yearly" in reasons["s0"]
    assert newest.year == 2025 and len(decision.keep) + len(decision.remove) == len(days)


def test_weeks_are_iso_weeks():
    # 2025-12-28 is a Sunday (week 52), 2025-12-29 a Monday (week 1 of 2026).
    assert kept(Rules(keep_weekly=2), snaps("2025-12-27T10:00:00", "2025-12-28T10:00:00", "2025-12-29T10:00:00")) == [
        "2025-12-29T10:00:00",
        "2025-12-28T10:00:00",
    ]


def test_within_months_subtract_as_restic_does():
    # 31 March less one month is 3 March (Go's AddDate): 2 March goes, 4 March stays.
    assert kept(
        Rules(keep_within="1m"), snaps("2026-03-31T00:00:00", "2026-03-04T00:00:00", "2026-03-02T00:00:00")
    ) == [
        "2026-03-31T00:00:00",
        "2026-03-04T00:00:00",
    ]


@pytest.mark.parametrize(
    "rules",
    [Rules(), Rules(keep_last=1), Rules(keep_hourly=1), Rules(keep_yearly=1), Rules(keep_within="1h")],
)
def test_every_rule_keeps_the_newest_backup(rules):
    assert kept(rules, HOURLY)[0] == "2026-01-02T18:30:00"
    assert apply(rules, []).keep == []


def test_no_rule_keeps_everything():
    assert kept(Rules(), HOURLY) == [s.id for s in reversed(HOURLY)]


@pytest.mark.parametrize(("text", "parts"), [("1y5m7d2h", (1, 5, 7, 2)), ("3d", (0, 0, 3, 0)), ("12h", (0, 0, 0, 12))])
def test_within_reads_restic_durations(text, parts):
    assert within(text) == parts


@pytest.mark.parametrize("text", ["", "1w", "d", "2h3d", "-1d"])
def test_within_refuses_what_restic_does_not_read(text):
    with pytest.raises(ValueError):
        within(text)
