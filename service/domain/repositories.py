"""Backup repositories (DESIGN.md section 12): where backups go, restic's, one project's each.

Creating one initialises an empty restic repository, or attaches one that is there already (its
backups become listable and restorable: a new dockvol recovers everything from the repository and
its password). The password is checked before anything is stored, and kept mode 0600 under the
state dir; no answer, log or event ever shows it. A `local` repository's path lies under
DOCKVOL_BACKUP_ROOTS, checked by the bind sources' walk (bind_paths.py): nobody but root can
redirect it. Forgetting a repository forgets dockvol's record, never the data."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from .. import times
from ..config import ALL_PROJECTS, DEFAULT_PROJECT
from ..errors import BackupFailure, Conflict, InvalidInput, NotFound
from .bind_paths import BindPolicy
from .projects import current
from .restic import Repository, Restic, WrongPassword
from .state import StateDir

KIND = "repositories"
PASSWORD = ".password"


@dataclass(frozen=True)
class RepositoryRecord:
    name: str
    project: str
    kind: str
    path: str
    created_at: str


@dataclass(frozen=True)
class RepositoryStatus:
    reachable: bool
    checked_at: str
    backups: int | None
    stored_bytes: int | None
    error: str | None = None


def visible(project: str) -> bool:
    """Whether the caller sees an object of `project`: its own, or (`*`) every project's."""
    return current() in (ALL_PROJECTS, project)


class Repositories:
    def __init__(self, state: StateDir, restic: Restic, paths: BindPolicy) -> None:
        self._state = state
        self.restic = restic
        self._paths = paths
        self.in_use: list[Callable[[str], bool]] = []  # who keeps a repository (a backup running into it)

    def create(self, name: str, path: str, password: str) -> RepositoryRecord:
        """Initialise a repository at `path`, or attach the one there (with its password)."""
        project = current() if current() != ALL_PROJECTS else DEFAULT_PROJECT
        with self._state.locked(KIND):
            if self._state.read(KIND, name) is not None:
                raise Conflict(f"repository {name} exists already")
            resolved = self._paths.check(path, "path")
            if any(r["path"] == resolved for r in self._state.all(KIND)):
                raise Conflict(f"another repository is at {path}")
            resolved = self._paths.prepare(resolved, "path")
            with self._state.secret(KIND, password) as secret:
                repo = Repository(resolved, secret)
                if os.path.exists(os.path.join(resolved, "config")):
                    try:
                        self.restic.verify(repo)
                    except WrongPassword:
                        raise InvalidInput("password", "the password opens none of the repository's keys") from None
                elif os.listdir(resolved):
                    raise InvalidInput("path", f"{path} is neither empty nor a restic repository")
                else:
                    self.restic.init(repo)
                self._state.keep(secret, KIND, name, PASSWORD)
            record = RepositoryRecord(name, project, "local", resolved, times.now())
            self._state.write(KIND, name, record.__dict__)
        return record

    def list(self) -> list[RepositoryRecord]:
        return [r for r in (RepositoryRecord(**d) for d in self._state.all(KIND)) if visible(r.project)]

    def get(self, name: str) -> RepositoryRecord:
        found = self._state.read(KIND, name)  # None too for a name no record can have
        if found is None or not visible(found["project"]):
            raise NotFound(f"repository {name} does not exist")
        return RepositoryRecord(**found)

    def opened(self, record: RepositoryRecord) -> Repository:
        """How restic opens it: its path and the file that holds its password."""
        return Repository(record.path, self._state.path(KIND, record.name, PASSWORD))

    def status(self, record: RepositoryRecord) -> RepositoryStatus:
        """Asked of restic now: can it be opened, how many of dockvol's backups, how many bytes."""
        repo = self.opened(record)
        try:
            backups = len(self.restic.snapshots(repo, ["dockvol"]))
            stored = self.restic.stored_bytes(repo)
        except BackupFailure as exc:
            return RepositoryStatus(False, times.now(), None, None, exc.detail)
        return RepositoryStatus(True, times.now(), backups, stored)

    def delete(self, name: str) -> None:
        """Forget the record and the password (the repository's data stays where it is)."""
        with self._state.locked(KIND):
            self.get(name)
            if any(busy(name) for busy in self.in_use):
                raise Conflict(f"repository {name} is busy with a backup or a restore; try again")
            self._state.remove(KIND, name)
            self._state.remove(KIND, name, PASSWORD)
