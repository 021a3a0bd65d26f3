"""Waiting for something another holds: tries again after pauses that double up to a cap, and
gives up at the deadline when there is one."""

from __future__ import annotations

import pytest

from service.domain import backoff


class Clock:
    """time as the helper reads it: sleeping moves the clock, nothing really waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(backoff, "time", fake)
    return fake


def test_it_tries_until_it_succeeds_pausing_twice_as_long_each_time_up_to_a_cap(clock):
    answers = iter([False] * 6 + [True])
    assert backoff.until(lambda: next(answers), first=0.1, most=0.5)
    assert clock.pauses == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]


def test_a_first_success_does_not_wait(clock):
    assert backoff.until(lambda: True, first=0.1, most=0.5, within=0)
    assert clock.pauses == []


def test_it_gives_up_once_the_deadline_has_passed_after_one_last_try(clock):
    tries = []

    def never() -> bool:
        tries.append(clock.now)
        return False

    assert not backoff.until(never, first=0.25, most=1.0, within=1.0)
    assert tries == [0.0, 0.25, 0.75, 1.75]  # the last try comes after the deadline, then no pause
    assert clock.pauses == [0.25, 0.5, 1.0]
