"""Every time dockvol shows (answers, events, its own labels, logs) is RFC 3339 in UTC with `Z`,
written and read in one place; a fraction of a second appears only where it is asked for."""

from __future__ import annotations

import pytest

from service import times

AT = 1_800_000_000 * 10**9 + 123_456_789  # 2027-01-15T08:00:00.123456789Z


def test_a_time_is_whole_seconds_in_utc_with_z_unless_digits_are_asked_for():
    assert times.text(AT) == "2027-01-15T08:00:00Z"
    assert times.text(AT, 3) == "2027-01-15T08:00:00.123Z"
    assert times.text(AT, 6) == "2027-01-15T08:00:00.123456Z"
    assert times.text(1_800_000_000 * 10**9, 6) == "2027-01-15T08:00:00.000000Z"  # as many digits every time


def test_the_host_zone_does_not_matter(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert times.text(AT) == "2027-01-15T08:00:00Z"
        assert times.nanoseconds("2027-01-15T08:00:00Z") == AT - 123_456_789
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize(
    "text, ns",
    [
        ("2027-01-15T08:00:00.123456789Z", AT),
        ("2027-01-15T08:00:00.1234567891Z", None),  # more than nanoseconds: not the engine's
        ("2027-01-15T17:00:00.123456789+09:00", AT),
        ("2027-01-15T08:00:00.5Z", AT - 123_456_789 + 500_000_000),
        ("2027-01-15T08:00:00+00:00", AT - 123_456_789),
        ("2027-01-15 08:00:00Z", None),
        ("2027-01-15T08:00:00", None),  # no zone: which instant is unknown
        ("", None),
    ],
)
def test_any_rfc3339_time_reads_to_the_nanosecond(text, ns):
    if ns is None:
        with pytest.raises(ValueError):
            times.nanoseconds(text)
    else:
        assert times.nanoseconds(text) == ns


def test_engine_times_compare_as_instants_whatever_their_digits():
    assert times.nanoseconds("2020-01-02T00:00:01.5Z") > times.nanoseconds("2020-01-02T00:00:01.123456789Z")
    assert times.nanoseconds("2020-01-02T00:00:01Z") < times.nanoseconds("2020-01-02T00:00:01.000001Z")


def test_an_engine_time_is_shown_in_utc_with_its_fraction_only_if_it_had_one():
    assert times.utc("2026-11-28T07:40:00+01:00") == "2026-11-28T06:40:00Z"
    assert times.utc("2026-11-28T06:40:00Z") == "2026-11-28T06:40:00Z"
    assert times.utc("2026-11-28T06:40:00.5-00:30") == "2026-11-28T07:10:00.500000Z"


def test_now_is_whole_seconds():
    assert times.now().endswith("Z") and len(times.now()) == len("2027-01-15T08:00:00Z")
