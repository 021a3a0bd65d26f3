"""A restore with `replace` interrupted after each change it makes to the engine (tests/faults/
test_interrupted.py says how): dockvol killed (SIGKILL to its process group, restic with it) or
the engine stopped. Then the volume holds its old content or the backup's, never a mix, no
staging volume, helper or lock is left, and a retry completes."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.conftest import backup_env
from tests.support import unique

from . import test_interrupted
from .conftest import ADMIN, READER, WRITER
from .test_backups_interrupted import until_ended
from .test_interrupted import LONG, MAX_STEPS, _contents, _volume, eventually, leftovers

interrupt = test_interrupted.interrupt  # the fixture: dockvol held at a step, then the fault

NEW = {"a.txt": b"alpha (backed up)", "deep/b.bin": bytes(range(256)) * 4000}
OLD = {"a.txt": b"alpha (old)", "only-old.txt": b"made after the backup"}


def staging_volumes(sdk):
    return [v.name for v in sdk.volumes.list() if v.name.startswith("dockvol-import-")]


def restore_replace(service, backup, name):
    body = {"backup": backup, "volume": name, "replace": True}
    return requests.post(service.url("/api/v1/restores"), json=body, headers=ADMIN, timeout=60)


def reset(service, name):
    requests.delete(service.url(f"/api/v1/volumes/{name}"), headers=ADMIN, timeout=60)
    _volume(service, name, OLD)


@pytest.mark.parametrize("fault", ["kill", "engine"])
@LONG
def test_restore_with_replace_interrupted_at_every_step(service, interrupt, sdk, fault, backup_root, state_dir):
    source, name = unique("rsrc"), unique("rdst")
    _volume(service, source, NEW)
    repo = unique("repo").removeprefix("dvtest-")
    body = {"name": repo, "path": str(backup_root / repo), "password": "pw"}
    assert requests.post(service.url("/api/v1/repositories"), json=body, headers=ADMIN, timeout=60).status_code == 201
    r = requests.post(service.url("/api/v1/backups"), json={"volume": source, "repository": repo}, headers=WRITER)
    assert r.status_code == 202, r.text
    until_ended(service, r.headers["Location"])
    backup = requests.get(service.url(r.headers["Location"]), headers=READER, timeout=30).json()
    assert backup["status"] == "completed", backup
    _volume(service, name, OLD)

    outcomes, recoveries = [], []
    for step in range(1, MAX_STEPS):

        def send(s):
            answer = restore_replace(s, backup["id"], name)
            if answer.status_code == 202:
                until_ended(s, answer.headers["Location"])

        if not interrupt.run(step, send, **backup_env(backup_root, state_dir)):
            break

        def recovered():
            assert not leftovers(sdk, name), leftovers(sdk, name)
            assert staging_volumes(sdk) == [], staging_volumes(sdk)
            found = _contents(service, name)
            assert found in (OLD, NEW), found  # old or new, never a mix
            outcome[:] = ["new" if found == NEW else "old"]
            return True

        outcome: list[str] = []
        recoveries.append(eventually(recovered, f"restore ({fault}) after step {step}"))
        outcomes += outcome
        interrupt.done()
        if outcomes[-1] == "new":
            reset(service, name)
    assert step > 5, f"only {step - 1} steps"
    answer = restore_replace(service, backup["id"], name)
    assert answer.status_code == 202, answer.text
    until_ended(service, answer.headers["Location"])
    retried = requests.get(service.url(answer.headers["Location"]), headers=READER, timeout=30).json()
    assert retried["status"] == "completed", retried
    assert _contents(service, name) == NEW
    print(f"restore --replace ({fault}) at each of {step - 1} steps: {outcomes}; recovered in {max(recoveries):.1f} s")
