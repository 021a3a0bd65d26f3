"""Backup policies (DESIGN.md section 12): which volumes go into which repository, when, and how
many of their backups stay.

A policy names its volumes (`volumes`) or picks them by label (`selector`), always among its own
project's volumes. It is a JSON record in the state dir (state.py), like a repository; its
`version` is its ETag, so a `PUT` with If-Match changes only what the caller read. Deleting a
policy keeps its backups. Runs (now, or at the schedule's times: scheduler.py) back each volume up
with the policy's name as a tag, and retention (retention.py) is applied after each run and on
demand (`prune`): only to completed backups that dockvol made under this policy, one volume at a
time, so a volume's newest backup always stays."""

from __future__ import annotations

import builtins
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ... import times
from ...config import ALL_PROJECTS, DEFAULT_PROJECT
from ...errors import Conflict, DockvolError, InvalidInput, NotFound
from ..projects import acting_for, current
from ..versions import IfMatch, check
from ..volumes import VolumeQuery, Volumes
from .repositories import Repositories, visible
from .restic import Repository, waiting_out_locks
from .retention import Rules, Snapshot, apply, within
from .runs import Backup, BackupQuery, Backups
from .schedule import Schedule
from .state import StateDir

log = logging.getLogger(__name__)
KIND = "backup-policies"
LAST_RUNS = "backup-policy-runs"  # {at, status} of each policy's newest run, apart from its spec
DEFAULT_DEADLINE = 3600
FORGET_WAIT = 120.0  # seconds a retention waits for the backups that lock its repository


@dataclass(frozen=True)
class Policy:
    name: str
    repository: str
    schedule: Schedule
    project: str = DEFAULT_PROJECT
    volumes: tuple[str, ...] | None = None
    labels: tuple[str, ...] | None = None  # the selector's `k=v` labels
    jitter_seconds: int = 0
    paused: bool = False
    starting_deadline_seconds: int = DEFAULT_DEADLINE
    retention: Rules = field(default_factory=Rules)
    created_at: str = ""
    updated_at: str = ""  # when its schedule last changed: times before it are not its to run
    version: str = ""

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "project": self.project,
            "repository": self.repository,
            "volumes": list(self.volumes) if self.volumes is not None else None,
            "labels": list(self.labels) if self.labels is not None else None,
            "cron": self.schedule.cron,
            "timezone": self.schedule.timezone,
            "jitter_seconds": self.jitter_seconds,
            "paused": self.paused,
            "starting_deadline_seconds": self.starting_deadline_seconds,
            "retention": self.retention.__dict__,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "version": self.version,
        }

    @staticmethod
    def of(doc: dict[str, Any]) -> Policy:
        return Policy(
            name=doc["name"],
            project=doc["project"],
            repository=doc["repository"],
            volumes=tuple(doc["volumes"]) if doc.get("volumes") is not None else None,
            labels=tuple(doc["labels"]) if doc.get("labels") is not None else None,
            schedule=Schedule(doc["cron"], doc["timezone"]),
            jitter_seconds=doc["jitter_seconds"],
            paused=doc["paused"],
            starting_deadline_seconds=doc["starting_deadline_seconds"],
            retention=Rules(**doc["retention"]),
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
            version=doc["version"],
        )

    def active_since(self) -> datetime:
        return datetime.fromtimestamp(times.nanoseconds(self.updated_at) / 1e9, UTC)


@dataclass(frozen=True)
class LastRun:
    at: str  # the scheduled time (or the request's, for a run on request)
    status: str  # running | completed | failed | missed


@dataclass
class Pruned:
    keep: list[tuple[str, list[str]]] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)


class Policies:
    def __init__(self, state: StateDir, repositories: Repositories, volumes: Volumes, backups: Backups) -> None:
        self._state = state
        self._repositories = repositories
        self._volumes = volumes
        self._backups = backups

    # -- the resource ------------------------------------------------------------------------------

    def create(self, policy: Policy) -> Policy:
        project = current() if current() != ALL_PROJECTS else DEFAULT_PROJECT
        stamp = times.now()
        policy = replace(policy, project=project, created_at=stamp, updated_at=stamp, version=_version())
        self._check(policy)
        with self._state.locked(KIND):
            if self._state.read(KIND, policy.name) is not None:
                raise Conflict(f"backup policy {policy.name} exists already")
            self._state.write(KIND, policy.name, policy.record())
        return policy

    def list(self) -> list[Policy]:
        return [p for p in (Policy.of(d) for d in self._state.all(KIND)) if visible(p.project)]

    def get(self, name: str) -> Policy:
        found = self._state.read(KIND, name)
        if found is None or not visible(found["project"]):
            raise NotFound(f"backup policy {name} does not exist")
        return Policy.of(found)

    def replace(self, name: str, policy: Policy, if_match: IfMatch | None) -> Policy:
        with self._state.locked(KIND):
            old = self.get(name)
            check(if_match, old.version, f"backup policy {name}")
            changed = (policy.schedule, policy.paused) != (old.schedule, old.paused)
            policy = replace(
                policy,
                name=name,
                project=old.project,
                created_at=old.created_at,
                updated_at=times.now() if changed else old.updated_at,
                version=_version(),
            )
            with acting_for(old.project):
                self._check(policy)
            self._state.write(KIND, name, policy.record())
        return policy

    def delete(self, name: str, if_match: IfMatch | None) -> None:
        """Forget the policy (its backups stay)."""
        with self._state.locked(KIND):
            old = self.get(name)
            check(if_match, old.version, f"backup policy {name}")
            self._state.remove(KIND, name)
            self._state.remove(LAST_RUNS, name)

    def last_run(self, name: str) -> LastRun | None:
        found = self._state.read(LAST_RUNS, name)
        return LastRun(found["at"], found["status"]) if found else None

    def record_run(self, name: str, at: str, status: str) -> None:
        """The newest run's outcome; an older run's never overwrites a newer one's."""
        with self._state.locked(LAST_RUNS):
            old = self.last_run(name)
            if old is None or old.at <= at:
                self._state.write(LAST_RUNS, name, {"at": at, "status": status})

    def _check(self, policy: Policy) -> None:
        """What no schema can say: its repository and volumes are its project's, its schedule reads."""
        for name, why in policy.schedule.check():
            raise InvalidInput(f"schedule.{name}", why)
        if policy.retention.keep_within:
            try:
                within(policy.retention.keep_within)
            except ValueError as exc:
                raise InvalidInput("retention.keep_within", str(exc)) from None
        if (policy.volumes is None) == (policy.labels is None):
            raise InvalidInput("volumes", "give either `volumes` or `selector`, not both")
        try:
            repository = self._repositories.get(policy.repository)
        except NotFound:
            raise InvalidInput("repository", f"repository {policy.repository} does not exist") from None
        if repository.project != policy.project:
            raise InvalidInput("repository", f"repository {policy.repository} does not exist")

    # -- runs and retention ------------------------------------------------------------------------

    def volumes_of(self, policy: Policy) -> builtins.list[str]:
        """The volumes it backs up now: those it names that exist, or those its selector picks,
        of its own project only."""
        with acting_for(policy.project):
            if policy.labels is not None:
                found = self._volumes.list(VolumeQuery(labels=policy.labels, project=policy.project))
                return sorted(v.name for v in found)
            named = []
            for name in policy.volumes or ():
                try:
                    if self._volumes.get(name).project == policy.project:
                        named.append(name)
                except NotFound:
                    log.warning("backup policy %s names volume %s, which does not exist", policy.name, name)
            return named

    def run(
        self, policy: Policy, scheduled_at: str | None = None, volumes: builtins.list[str] | None = None
    ) -> builtins.list[Backup]:
        """Back its volumes up now; the runs as they start. A volume that cannot start (busy, gone)
        fails that volume only; retention follows each completed run. `last_run` turns `completed`
        when every volume's backup completed, `failed` as soon as one failed."""
        at = scheduled_at or times.now()
        targets = self.volumes_of(policy) if volumes is None else volumes
        self.record_run(policy.name, at, "running" if targets else "failed")
        outcomes: dict[str, str] = {}
        lock = threading.Lock()

        def ended(volume: str) -> Callable[[Backup], None]:
            def then(backup: Backup) -> None:
                with lock:
                    outcomes[volume] = backup.status
                    last = len(outcomes) == len(targets)
                if last and "completed" in outcomes.values():
                    # Once every volume's backup ended: restic's forget locks the repository
                    # exclusively, and a backup into it meanwhile would fail.
                    try:
                        self.prune(policy, dry_run=False)
                    except DockvolError as exc:
                        log.warning("retention of %s after a run failed: %s", policy.name, exc.detail)
                with lock:
                    self._record_outcomes(policy.name, at, outcomes, len(targets))

            return then

        started: builtins.list[Backup] = []
        errors: builtins.list[DockvolError] = []
        with acting_for(policy.project):
            for volume in targets:
                try:
                    backup = self._backups.start(
                        volume, policy.repository, policy=policy.name, scheduled_at=scheduled_at, then=ended(volume)
                    )
                    started.append(backup)
                except DockvolError as exc:
                    errors.append(exc)
                    log.warning("backup policy %s could not back up %s: %s", policy.name, volume, exc.detail)
                    with lock:
                        outcomes[volume] = "failed"
                        self._record_outcomes(policy.name, at, outcomes, len(targets))
        if errors and not started:
            raise errors[0]
        return started

    def _record_outcomes(self, name: str, at: str, outcomes: dict[str, str], expected: int) -> None:
        if "failed" in outcomes.values():
            self.record_run(name, at, "failed")
        elif len(outcomes) == expected:
            self.record_run(name, at, "completed")

    def prune(self, policy: Policy, dry_run: bool, volume: str | None = None) -> Pruned:
        """Apply its retention to its completed backups, one volume at a time."""
        with acting_for(policy.project):
            found, unreachable = self._backups.list(
                BackupQuery(repository=policy.repository, policy=policy.name, status="completed", volume=volume)
            )
        if unreachable:
            raise Conflict(f"repository {policy.repository} cannot be read now; try again")
        zone = policy.schedule.zone()
        by_volume: dict[str, list[Snapshot]] = {}
        for b in found:
            if b.project == policy.project and b.started_at:
                at = datetime.fromtimestamp(times.nanoseconds(b.started_at) / 1e9, zone)
                by_volume.setdefault(b.volume, []).append(Snapshot(b.id, at))
        pruned = Pruned()
        for snapshots in by_volume.values():
            decision = apply(policy.retention, snapshots)
            pruned.keep += decision.keep
            pruned.remove += decision.remove
        if pruned.remove and not dry_run:
            with acting_for(policy.project):
                repo = self._repositories.opened(self._repositories.get(policy.repository))
            self._forget(repo, pruned.remove)
        return pruned

    def _forget(self, repo: Repository, ids: builtins.list[str]) -> None:
        """restic forget, waiting (up to FORGET_WAIT s) while a backup holds the repository's lock."""
        waiting_out_locks(lambda: self._repositories.restic.forget(repo, ids), FORGET_WAIT)


def _version() -> str:
    return secrets.token_hex(8)
