"""A backup interrupted after each change it makes to the engine (tests/faults/test_interrupted.py
says how): dockvol killed (SIGKILL to its process group, restic with it) or the engine stopped.
Then no backup is left running, every completed one is whole, no helper or lock is left, and a
retry completes. The service that recovers shares the state dir (the repository, the run records)."""

from __future__ import annotations

import time

import pytest
import requests

from tests.e2e.conftest import backup_env
from tests.support import files_of, unique

from . import test_interrupted
from .conftest import ADMIN, READER, WRITER
from .test_interrupted import LONG, MAX_STEPS, _contents, _volume, eventually, leftovers

interrupt = test_interrupted.interrupt  # the fixture: dockvol held at a step, then the fault

FILES = {"a.txt": b"alpha", "deep/b.bin": bytes(range(256)) * 4000}


def backups_of(service, volume):
    r = requests.get(service.url("/api/v1/backups"), params={"volume": volume}, headers=READER, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def until_ended(service, url):
    """Poll a backup until it is no longer running (or the service is gone: a request fails)."""
    while requests.get(service.url(url), headers=READER, timeout=30).json()["status"] == "running":
        time.sleep(0.1)


@pytest.mark.parametrize("fault", ["kill", "engine", "workers"])  # workers: restic dies with its worker
@LONG
def test_backup_interrupted_at_every_step(service, interrupt, sdk, fault, backup_root, state_dir):
    name = unique("bk")
    _volume(service, name, FILES)
    repo = unique("repo").removeprefix("dvtest-")
    body = {"name": repo, "path": str(backup_root / repo), "password": "pw"}
    assert requests.post(service.url("/api/v1/repositories"), json=body, headers=ADMIN, timeout=60).status_code == 201
    recoveries = []
    for step in range(1, MAX_STEPS):

        def back_up(s):
            r = requests.post(s.url("/api/v1/backups"), json={"volume": name, "repository": repo}, headers=WRITER)
            if r.status_code == 202:  # else it failed at once (503: the engine stopped under the request)
                until_ended(s, r.headers["Location"])  # the work goes on after the answer: wait for its end

        if not interrupt.run(step, back_up, **backup_env(backup_root, state_dir)):
            break

        def recovered():
            assert not leftovers(sdk, name), leftovers(sdk, name)
            found = backups_of(service, name)
            assert all(b["status"] in ("completed", "failed") for b in found), found
            for b in found:
                if b["status"] == "completed":  # whole: the volume as it was
                    r = requests.get(service.url(f"/api/v1/backups/{b['id']}/archive"), headers=READER, timeout=60)
                    assert files_of(r.content) == FILES, b
            return True

        recoveries.append(eventually(recovered, f"backup ({fault}) after step {step}"))
        interrupt.done()
    assert step > 3, f"only {step - 1} steps"  # the lock, the helper, the helper's removal, the lock's
    r = requests.post(service.url("/api/v1/backups"), json={"volume": name, "repository": repo}, headers=WRITER)
    assert r.status_code == 202, r.text
    until_ended(service, r.headers["Location"])
    retried = requests.get(service.url(r.headers["Location"]), headers=READER, timeout=30).json()
    assert retried["status"] == "completed", retried
    assert _contents(service, name) == FILES
    print(f"backup interrupted ({fault}) at each of {step - 1} steps: recovered in at most {max(recoveries):.1f} s")
