"""Schedules in a time zone, across daylight-saving changes (service/domain/backups/schedule.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.domain.backups.schedule import Schedule


def shown(times):
    return [t.isoformat() for t in times]


def test_next_runs_are_in_the_schedule_s_zone_with_their_offset():
    s = Schedule("0 3 * * *", "America/New_York")
    assert shown(s.next_runs(datetime(2026, 7, 1, 12, tzinfo=UTC))) == [
        "2026-07-02T03:00:00-04:00",
        "2026-07-03T03:00:00-04:00",
        "2026-07-04T03:00:00-04:00",
    ]


def test_clocks_going_forward_run_a_missing_time_at_the_first_that_exists():
    # Europe/Berlin: 2026-03-29 02:00 CET becomes 03:00 CEST.
    s = Schedule("30 2 * * *", "Europe/Berlin")
    assert shown(s.next_runs(datetime(2026, 3, 28, 12, tzinfo=UTC))) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_clocks_going_back_run_a_fixed_time_once():
    # Europe/Berlin: 2026-10-25 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    s = Schedule("30 2 * * *", "Europe/Berlin")
    assert shown(s.next_runs(datetime(2026, 10, 24, 12, tzinfo=UTC))) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]


def test_clocks_going_back_run_an_hourly_schedule_every_real_hour():
    s = Schedule("30 * * * *", "Europe/Berlin")
    runs = s.next_runs(datetime(2026, 10, 24, 23, 40, tzinfo=UTC), 3)  # 01:40 CEST
    assert shown(runs) == ["2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00", "2026-10-25T03:30:00+01:00"]


def test_a_sixth_field_is_seconds():
    s = Schedule("* * * * * */5")
    start = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert shown(s.between(start, datetime(2026, 1, 1, 0, 0, 12, tzinfo=UTC))) == [
        "2026-01-01T00:00:05+00:00",
        "2026-01-01T00:00:10+00:00",
    ]


@pytest.mark.parametrize(
    ("cron", "zone", "fields"),
    [
        ("0 3 * * *", "UTC", []),
        ("61 3 * * *", "UTC", ["cron"]),
        ("0 3 * *", "UTC", ["cron"]),
        ("* * * * * * *", "UTC", ["cron"]),
        ("0 3 * * *", "Mars/Olympus", ["timezone"]),
        ("0 3 * * *", "../etc/passwd", ["timezone"]),
        ("0 3 * * *", "Europe", ["timezone"]),  # a folder of zones
        ("0 3 * * *", "a" * 300, ["timezone"]),
        ("0 0 30 2 *", "UTC", ["cron"]),  # 30 February: never
    ],
)
def test_check_names_what_is_wrong(cron, zone, fields):
    assert [f for f, _ in Schedule(cron, zone).check()] == fields
