"""The scheduler with a clock of the test's (service/domain/backups/scheduler.py): each scheduled time
fires once whoever ticks, on time, jittered, paused, and after a restart."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from service import times
from service.domain.backups.policies import Policies, Policy
from service.domain.backups.schedule import Schedule
from service.domain.backups.scheduler import FIRES, Scheduler, jitter
from service.domain.backups.state import StateDir
from service.domain.helpers import owner

START = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def state(tmp_path):
    return StateDir(str(tmp_path / "state"))


def policy(state, **changes):
    p = Policy(
        name="nightly",
        repository="offsite",
        schedule=Schedule("* * * * * */10"),  # every 10 s
        volumes=("site",),
        created_at=times.text(int(START.timestamp()) * 10**9),
        updated_at=times.text(int(START.timestamp()) * 10**9),
        version="v1",
    )
    p = dataclasses.replace(p, **changes)
    state.write("backup-policies", p.name, p.record())
    return p


def scheduler(state, clock, fired):
    policies = Policies(state, None, None, None)  # type: ignore[arg-type]  # the scheduler only lists and records
    return Scheduler(policies, state, clock, fire=lambda p, at: fired.append((p.name, at)))


def at(seconds: float) -> str:
    return times.text(int((START + timedelta(seconds=seconds)).timestamp()) * 10**9)


def test_two_processes_ticking_fire_each_time_exactly_once(state):
    policy(state)
    fired: list[tuple[str, str]] = []
    clocks = [Clock(), Clock()]
    schedulers = [scheduler(state, clocks[0], fired), scheduler(state, clocks[1], fired)]
    for step in range(1, 121):  # two minutes, each process ticking every second, offset by half
        for i, (c, s) in enumerate(zip(clocks, schedulers, strict=True)):
            c.now = START + timedelta(seconds=step + i * 0.5)
            s.tick()
    assert fired == [("nightly", at(s)) for s in range(10, 121, 10)]
    assert Policies(state, None, None, None).last_run("nightly") is None  # the fake fire records nothing


def test_a_time_fires_at_its_jitter_and_not_before(state):
    p = policy(state, jitter_seconds=8)
    fired: list[tuple[str, str]] = []
    clock = Clock()
    s = scheduler(state, clock, fired)
    t = START + timedelta(seconds=10)
    delay = jitter(p, t)
    assert 0 < delay <= 8
    clock.now = t + timedelta(seconds=delay - 0.01)
    s.tick()
    assert fired == []
    clock.now = t + timedelta(seconds=delay)
    s.tick()
    assert fired == [("nightly", at(10))]


def test_a_paused_policy_fires_nothing(state):
    policy(state, paused=True)
    fired: list[tuple[str, str]] = []
    clock = Clock()
    s = scheduler(state, clock, fired)
    for step in range(1, 40):
        clock.now = START + timedelta(seconds=step)
        s.tick()
    assert fired == []


def test_times_missed_while_down_run_once_within_the_deadline(state):
    policy(state, schedule=Schedule("*/5 * * * *"))  # every 5 minutes
    fired: list[tuple[str, str]] = []
    clock = Clock()
    s = scheduler(state, clock, fired)
    clock.now = START + timedelta(minutes=5, seconds=1)
    s.tick()
    assert fired == [("nightly", at(300))]
    clock.now = START + timedelta(minutes=22)  # down from 12:05 to 12:22: 12:10, 12:15, 12:20 missed
    s.tick()
    s.tick()
    assert fired == [("nightly", at(300)), ("nightly", at(1200))]  # the newest, once


def test_a_time_missed_beyond_the_deadline_is_recorded_missed(state):
    policy(state, schedule=Schedule("*/5 * * * *"), starting_deadline_seconds=120)
    fired: list[tuple[str, str]] = []
    clock = Clock()
    s = scheduler(state, clock, fired)
    clock.now = START + timedelta(minutes=13)  # 12:10 is 3 minutes old
    s.tick()
    assert fired == []
    last = Policies(state, None, None, None).last_run("nightly")  # type: ignore[arg-type]
    assert last is not None and (last.at, last.status) == (at(600), "missed")
    clock.now = START + timedelta(minutes=15, seconds=2)
    s.tick()
    assert fired == [("nightly", at(900))]


def test_times_before_the_policy_s_schedule_changed_are_not_its(state):
    later = START + timedelta(seconds=35)
    policy(state, updated_at=times.text(int(later.timestamp()) * 10**9))
    fired: list[tuple[str, str]] = []
    clock = Clock()
    s = scheduler(state, clock, fired)
    for step in range(1, 52):
        clock.now = START + timedelta(seconds=step)
        s.tick()
    assert fired == [("nightly", at(40)), ("nightly", at(50))]


def dead_owner() -> str:
    """The owner label of a process of this host that has ended."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    return owner(ended.pid)


def claim_of_time_10(state, body: str) -> None:
    claims = os.path.join(state.folder(FIRES), "nightly")
    os.makedirs(claims, exist_ok=True)
    with open(os.path.join(claims, str(int((START + timedelta(seconds=10)).timestamp()))), "w") as f:
        f.write(body)


def test_a_claim_whose_process_died_before_its_runs_started_is_taken_over_once(state):
    policy(state)
    clock = Clock()
    clock.now = START + timedelta(seconds=10.5)
    claim_of_time_10(state, dead_owner())  # claimed, then died: no `fired`
    fired: list[tuple[str, str]] = []
    schedulers = [scheduler(state, clock, fired) for _ in range(3)]  # three processes tick
    for s in schedulers:
        s.tick()
    assert fired == [("nightly", at(10))]
    for s in schedulers:  # the taker's claim says fired: nobody takes it over again
        s.tick()
    assert fired == [("nightly", at(10))]


def test_a_claim_that_fired_or_whose_process_lives_is_never_taken_over(state):
    policy(state)
    clock = Clock()
    clock.now = START + timedelta(seconds=10.5)
    fired: list[tuple[str, str]] = []
    for body in (f"{dead_owner()}\nfired", owner()):  # died after its runs started; still starting them
        claim_of_time_10(state, body)
        scheduler(state, clock, fired).tick()
    assert fired == []
