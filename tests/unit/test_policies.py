"""Backup policies' retention against a locked repository (service/domain/backups/policies.py)."""

from __future__ import annotations

import pytest

from service.domain.backups import policies as module
from service.domain.backups import restic as restic_module
from service.domain.backups.policies import Policies
from service.domain.backups.restic import Locked, Repository
from service.errors import BackupFailure


class Restic:
    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        self.forgotten: list[list[str]] = []

    def forget(self, repo, ids):
        if self.failures:
            said = self.failures.pop(0)
            raise (Locked if "already locked" in said else BackupFailure)(said)
        self.forgotten.append(ids)


class Repositories:
    def __init__(self, restic: Restic) -> None:
        self.restic = restic


LOCKED = "restic: unable to create lock in backend: repository is already locked by PID 7 on host"


def forgetting(restic, monkeypatch, wait=120.0):
    monkeypatch.setattr(restic_module.time, "sleep", lambda s: None)
    monkeypatch.setattr(module, "FORGET_WAIT", wait)
    policies = Policies(None, Repositories(restic), None, None)  # type: ignore[arg-type]
    return lambda: policies._forget(Repository("/r", "/p"), ["a" * 64])


def test_retention_waits_while_a_backup_locks_the_repository(monkeypatch):
    restic = Restic([LOCKED, LOCKED])
    forgetting(restic, monkeypatch)()
    assert restic.forgotten == [["a" * 64]]


def test_retention_gives_up_on_other_failures_and_after_its_wait(monkeypatch):
    with pytest.raises(BackupFailure, match="no space"):
        forgetting(Restic(["restic: no space left"]), monkeypatch)()
    with pytest.raises(BackupFailure, match="locked"):
        forgetting(Restic([LOCKED] * 3), monkeypatch, wait=-1)()
