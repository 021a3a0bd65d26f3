"""Backup repositories (DESIGN.md section 12): where backups go, restic's, one project's each.

Creating one initialises an empty restic repository, or attaches one that is there already (its
backups become listable and restorable: a new dockvol recovers everything from the repository and
its password). The password is checked before anything is stored, and kept mode 0600 under the
state dir; no answer, log or event ever shows it. A `local` repository's path lies under
DOCKVOL_BACKUP_ROOTS, checked by the bind sources' walk (domain/bind_paths.py): nobody but root can
redirect it. An `s3` repository lies at `endpoint/bucket/prefix`; its keys are kept like the
password, mode 0600, and reach restic only as an AWS shared-credentials file (restic.py).
Forgetting a repository forgets dockvol's record, never the data."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from ... import times
from ...config import ALL_PROJECTS, DEFAULT_PROJECT
from ...errors import BackupFailure, Conflict, InvalidInput, NotFound
from ..bind_paths import BindPolicy
from ..projects import current
from .restic import NoRepository, Repository, Restic, WrongPassword
from .state import StateDir

KIND = "repositories"
PASSWORD = ".password"
CREDENTIALS = ".credentials"


@dataclass(frozen=True)
class RepositoryRecord:
    name: str
    project: str
    kind: str
    path: str
    created_at: str
    s3: dict[str, str] | None = None  # endpoint, bucket, prefix, region

    @property
    def location(self) -> str:
        """Where restic finds it; what two repositories may not share."""
        if self.s3 is None:
            return self.path
        prefix = self.s3.get("prefix") or ""
        return f"s3:{self.s3['endpoint'].rstrip('/')}/{self.s3['bucket']}" + (f"/{prefix}" if prefix else "")


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

    def create(
        self,
        name: str,
        path: str | None,
        password: str,
        s3: dict[str, str] | None = None,
        credentials: dict[str, str] | None = None,
    ) -> RepositoryRecord:
        """Initialise a repository (at `path`, or in S3 at `s3`), or attach the one there."""
        project = current() if current() != ALL_PROJECTS else DEFAULT_PROJECT
        with self._state.locked(KIND):
            if self._state.read(KIND, name) is not None:
                raise Conflict(f"repository {name} exists already")
            if s3 is not None:
                if credentials is None:
                    raise InvalidInput("credentials", "an s3 repository needs its credentials")
                record = RepositoryRecord(name, project, "s3", "", times.now(), dict(s3))
            else:
                if path is None:
                    raise InvalidInput("path", "a local repository needs its path")
                record = RepositoryRecord(name, project, "local", self._paths.check(path, "path"), times.now())
            if any(RepositoryRecord(**r).location == record.location for r in self._state.all(KIND)):
                raise Conflict(f"another repository is at {path or record.location}")
            if s3 is None:
                record = replace(record, path=self._paths.prepare(record.path, "path"))
            with contextlib.ExitStack() as stack:
                secret = stack.enter_context(self._state.secret(KIND, password))
                keys = None
                if credentials is not None:
                    keys = stack.enter_context(self._state.secret(KIND, _credentials_file(credentials)))
                repo = Repository(record.location, secret, keys, _options(record))
                self._init_or_attach(repo, record, path or "")
                self._state.keep(secret, KIND, name, PASSWORD)
                if keys is not None:
                    self._state.keep(keys, KIND, name, CREDENTIALS)
            self._state.write(KIND, name, record.__dict__)
        return record

    def _init_or_attach(self, repo: Repository, record: RepositoryRecord, path: str) -> None:
        if record.s3 is not None:
            try:
                self.restic.verify(repo)
            except WrongPassword:
                raise InvalidInput("password", "the password opens none of the repository's keys") from None
            except NoRepository:
                self.restic.init(repo)  # makes the bucket if it is missing
            return
        if os.path.exists(os.path.join(record.path, "config")):
            try:
                self.restic.verify(repo)
            except WrongPassword:
                raise InvalidInput("password", "the password opens none of the repository's keys") from None
        elif os.listdir(record.path):
            raise InvalidInput("path", f"{path} is neither empty nor a restic repository")
        else:
            self.restic.init(repo)

    def list(self) -> list[RepositoryRecord]:
        return [r for r in (RepositoryRecord(**d) for d in self._state.all(KIND)) if visible(r.project)]

    def get(self, name: str) -> RepositoryRecord:
        found = self._state.read(KIND, name)  # None too for a name no record can have
        if found is None or not visible(found["project"]):
            raise NotFound(f"repository {name} does not exist")
        return RepositoryRecord(**found)

    def opened(self, record: RepositoryRecord) -> Repository:
        """How restic opens it: its path and the file that holds its password."""
        password = self._state.path(KIND, record.name, PASSWORD)
        if record.s3 is None:
            return Repository(record.path, password)
        keys = self._state.path(KIND, record.name, CREDENTIALS)
        return Repository(record.location, password, keys, _options(record))

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
            self._state.remove(KIND, name, CREDENTIALS)


def _options(record: RepositoryRecord) -> tuple[str, ...]:
    region = (record.s3 or {}).get("region")
    return (f"s3.region={region}",) if region else ()


def _credentials_file(credentials: dict[str, str]) -> str:
    """An AWS shared-credentials file (the keys were checked: no character that could end a line
    or start a comment)."""
    return (
        "[default]\n"
        f"aws_access_key_id = {credentials['access_key_id']}\n"
        f"aws_secret_access_key = {credentials['secret_access_key']}\n"
    )
