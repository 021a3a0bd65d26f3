"""Scheduled backups end to end (DESIGN.md section 12): two dockvol processes of two gunicorn
workers each, sharing one state dir and one engine, run a policy that fires every few seconds;
each scheduled time is backed up exactly once, whoever fired it."""

from __future__ import annotations

import collections
import time
from datetime import UTC, datetime

import requests

from tests.support import engine_host, unique

from .conftest import ADMIN, WRITER, backup_env, service_env
from .test_volume_data_http import new_volume

PERIOD = 6  # seconds between two scheduled times
PERIODS = 6


def test_two_processes_of_two_workers_fire_each_scheduled_time_exactly_once(start_service, backup_root, tmp_path):
    env = service_env(engine_host(), **backup_env(backup_root, tmp_path / "shared-state"))
    first, second = start_service(env), start_service(env)
    volume = new_volume(first)
    repo = unique("sched").removeprefix("dvtest-").lower()
    body = {"name": repo, "path": str(backup_root / repo), "password": "sesame"}
    r = requests.post(first.url("/api/v1/repositories"), json=body, headers=ADMIN, timeout=60)
    assert r.status_code == 201, r.text
    policy = {
        "name": repo,
        "repository": repo,
        "volumes": [volume],
        "schedule": {"cron": f"* * * * * */{PERIOD}", "timezone": "UTC"},
    }
    made = requests.post(second.url("/api/v1/backup-policies"), json=policy, headers=WRITER, timeout=30)
    assert made.status_code == 201, made.text
    started = datetime.now(UTC)
    time.sleep(PERIOD * PERIODS + 2)
    paused = requests.put(
        first.url(f"/api/v1/backup-policies/{repo}"), json={**policy, "paused": True}, headers=WRITER, timeout=30
    )
    assert paused.status_code == 200, paused.text
    stopped = datetime.now(UTC)

    deadline = time.monotonic() + 60
    while True:
        listed = requests.get(second.url("/api/v1/backups"), params={"policy": repo}, headers=WRITER, timeout=60)
        assert listed.status_code == 200, listed.text
        backups = listed.json()
        if all(b["status"] != "running" for b in backups) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert all(b["status"] == "completed" for b in backups), backups
    per_time = collections.Counter(b["scheduled_at"] for b in backups)
    assert set(per_time.values()) == {1}, per_time  # no scheduled time backed up twice
    fired = {int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()) for t in per_time}
    times = {t for t in range(int(started.timestamp()) - 5, int(stopped.timestamp()) + 2) if t % 60 % PERIOD == 0}
    surely = {t for t in times if started.timestamp() < t < stopped.timestamp() - 2}
    assert surely <= fired <= times, (sorted(fired), sorted(surely))  # none missed, none out of the window
    assert len(surely) >= PERIODS - 1
    last = requests.get(first.url(f"/api/v1/backup-policies/{repo}"), headers=WRITER, timeout=30).json()["last_run"]
    assert last["status"] == "completed" and last["at"] == backups[0]["scheduled_at"]
