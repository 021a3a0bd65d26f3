"""Backups (DESIGN.md section 12): a volume's export tar, stored by restic in a repository.

A backup runs after its request is answered (202): the volume's export stream is piped into
`restic backup --stdin`, tagged `dockvol`, `volume=`, `project=` and `run=` (the run's id). A
completed backup is a restic snapshot and nothing else, so a repository that another dockvol
attaches lists its backups whole; its id is the snapshot's. Until restic has written the snapshot
the backup is a run, recorded in the state dir under its run id (`run-...`); a run that fails, or
whose dockvol dies, is `failed`, and no snapshot of it is ever listed as completed.

A run holds the volume's lock (domain/intents.py) from the request on: one backup or restore of a volume
at a time (409), no rename or import under it, and if its process dies the reconciler recovers it:
it forgets any snapshot the cut run left and marks the run failed."""

from __future__ import annotations

import builtins
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import IO, Any

from ... import times
from ...config import DEFAULT_PROJECT
from ...errors import BackupFailure, Conflict, DockvolError, InvalidInput, NotFound, QuotaExceeded
from ..archives import FileCount
from ..helpers import gone, owner
from ..intents import Held, Intent, Intents
from ..projects import QUOTA_LOCK_WAIT
from ..volume_data import VolumeData
from ..volumes import Volumes
from .jobs import as_now, in_background
from .repositories import Repositories, RepositoryRecord, visible
from .restic import SNAPSHOT_ID, Repository, Snapshot, Summary, waiting_out_locks
from .state import StateDir

log = logging.getLogger(__name__)
KIND = "backups"
RUN_PREFIX = "run-"
TAG = "dockvol"
PROGRESS_EVERY = 1.0  # seconds between two writes of a run's progress
DIED = "dockvol stopped while the backup ran"


@dataclass(frozen=True)
class Backup:
    id: str
    volume: str
    project: str
    repository: str
    status: str  # running | completed | failed
    started_at: str | None = None
    finished_at: str | None = None
    bytes_done: int | None = None
    size_bytes: int | None = None
    added_bytes: int | None = None
    files: int | None = None  # regular files in the volume's tar; None: not counted (attached)
    error: str | None = None
    file: str = ""  # in the snapshot: the volume's tar
    policy: str | None = None  # the backup policy that made it (None: made on request)
    scheduled_at: str | None = None  # the policy's scheduled time it was made for


@dataclass(frozen=True)
class BackupQuery:
    volume: str | None = None
    repository: str | None = None
    status: str | None = None
    policy: str | None = None


class Backups:
    def __init__(
        self,
        volumes: Volumes,
        data: VolumeData,
        intents: Intents,
        repositories: Repositories,
        state: StateDir,
        start: Callable[[Callable[[], None], str], Any] = in_background,
        quota: Callable[[str], Mapping[str, int]] = lambda project: {},
    ) -> None:
        self._volumes = volumes
        self._data = data
        self._intents = intents
        self._repositories = repositories
        self._restic = repositories.restic
        self._state = state
        self._start = start
        self._quota = quota
        intents.recoverer("backup.run", self._recover)
        repositories.in_use.append(self._running_into)
        # Told of each run that ends: (status, seconds, added bytes, volume, policy) (the metrics).
        self.ended: list[Callable[[str, float | None, int | None, str, str], None]] = []

    # -- back up -----------------------------------------------------------------------------------

    def start(
        self,
        volume: str,
        repository: str,
        policy: str | None = None,
        scheduled_at: str | None = None,
        then: Callable[[Backup], None] | None = None,
    ) -> Backup:
        """Back `volume` up into `repository` now; the run, as it starts. A policy's run carries
        its name (a tag); `then` is told the run as it ended, completed or failed."""
        record = self._repositories.get(repository)
        found = self._volumes.get(volume)
        if found.project != record.project:
            raise InvalidInput("repository", f"repository {repository} belongs to another project than the volume")
        project = found.project or DEFAULT_PROJECT
        with self._counted(project):
            run = RUN_PREFIX + secrets.token_hex(8)
            held = self._intents.hold("backup.run", [f"volume/{volume}"], run=run, repository=repository)
            try:
                doc = {
                    "id": run,
                    "volume": volume,
                    "project": project,
                    "repository": repository,
                    "status": "running",
                    "started_at": times.now(),
                    "owner": owner(),
                    "bytes_done": 0,
                    **({"policy": policy} if policy else {}),
                    **({"scheduled_at": scheduled_at} if scheduled_at else {}),
                }
                self._state.write(KIND, run, doc)  # counted from here on
                held.intent.begin()
                self._start(lambda: self._run(doc, record, held, then), f"backup {run}")
            except BaseException:
                held.end(failed=True)
                raise
        return _of_run(doc)

    @contextlib.contextmanager
    def _counted(self, project: str) -> Iterator[None]:
        """Under the project's quota lock (domain/projects.py) while it has a backups quota: a run is
        recorded only while the project holds fewer backups than its limit."""
        limit = self._quota(project).get("backups")
        if limit is None:
            yield
            return
        with self._intents.run("project.quota", [f"quota/{project}"], wait=QUOTA_LOCK_WAIT):
            used = self.count(project)
            if used >= limit:
                raise QuotaExceeded("backups", limit, used)
            yield

    def count(self, project: str) -> int:
        """What the project holds (DESIGN.md section 11): its completed backups in the repositories
        this dockvol knows, and its runs under way. A repository that cannot be read counts none."""
        runs = self._runs()
        held = sum(1 for d in runs.values() if d["project"] == project and d["status"] == "running")
        for found in self._state.all("repositories"):
            record = RepositoryRecord(**found)
            if record.project != project:
                continue
            try:
                snapshots = self._restic.snapshots(self._repositories.opened(record), [TAG, f"project={project}"])
            except BackupFailure:
                continue
            held += len(self._completed(record, snapshots, runs))
        return held

    def _run(
        self, doc: dict[str, Any], record: RepositoryRecord, held: Held, then: Callable[[Backup], None] | None = None
    ) -> None:
        error = None
        try:
            tags = [TAG, f"volume={doc['volume']}", f"project={doc['project']}", f"run={doc['id']}"]
            tags += [f"policy={doc['policy']}"] if doc.get("policy") else []
            tags += [f"scheduled={doc['scheduled_at']}"] if doc.get("scheduled_at") else []
            repo = self._repositories.opened(record)
            # While a retention's forget holds the repository, restic refuses before it reads
            # anything: the backup waits, and streams a new export at each attempt.
            summary = waiting_out_locks(lambda: self._back_up(doc, repo, tags))
            [snapshot] = self._restic.snapshots(repo, [f"run={doc['id']}"])
            doc.update(
                status="completed",
                snapshot=snapshot.id,
                finished_at=times.now(),
                size_bytes=summary.bytes_processed,
                added_bytes=summary.data_added,
            )
            self._state.write(KIND, doc["id"], doc)
            self._tell(doc)
        except DockvolError as exc:
            error = exc.detail
        except Exception:
            log.exception("backup %s of volume %s failed", doc["id"], doc["volume"])
            error = "an internal error ended the backup"
        finally:
            # Failed: the recovery forgets any snapshot of the run before the lock goes; only
            # then is the run told failed, so that a retry finds the volume free.
            held.end(failed=error is not None or doc["status"] != "completed")
        if error is not None:
            self._fail(doc, error)
        if then is not None:
            try:
                then(_of_run(doc))
            except Exception:
                log.exception("what follows backup %s failed", doc["id"])

    def _back_up(self, doc: dict[str, Any], repo: Repository, tags: builtins.list[str]) -> Summary:
        """One attempt: the volume's export, streamed into restic."""
        doc["bytes_done"] = 0
        counted = FileCount()
        download = self._data.export(doc["volume"], "", pause=False)
        try:
            summary = self._restic.backup(
                repo, self._progress(doc, download.body, counted), f"{doc['volume']}.tar", tags
            )
        finally:
            download.body.close()
        doc["files"] = counted.files
        return summary

    def _progress(self, doc: dict[str, Any], chunks: Iterable[bytes], counted: FileCount) -> Iterator[bytes]:
        last = time.monotonic()
        for chunk in chunks:
            counted.feed(chunk)
            doc["bytes_done"] += len(chunk)
            if time.monotonic() - last > PROGRESS_EVERY:
                last = time.monotonic()
                self._state.write(KIND, doc["id"], doc)
            yield chunk

    def _fail(self, doc: dict[str, Any], error: str) -> None:
        doc.update(status="failed", error=error, finished_at=times.now())
        self._state.write(KIND, doc["id"], doc)
        self._tell(doc)

    def _tell(self, doc: dict[str, Any]) -> None:
        try:
            seconds = times.nanoseconds(doc["finished_at"]) - times.nanoseconds(doc["started_at"])
        except (KeyError, TypeError, ValueError):
            seconds = None
        for listener in self.ended:
            try:  # what it is told never changes how the backup ended
                listener(
                    doc["status"],
                    None if seconds is None else seconds / 1e9,
                    doc.get("added_bytes"),
                    doc["volume"],
                    doc.get("policy") or "",
                )
            except Exception:
                log.exception("a listener of backup %s failed", doc["id"])

    def _recover(self, intent: Intent) -> None:
        """A run that failed or whose process died: no snapshot of it stays, and it is failed."""
        run = intent.args["run"]
        doc = self._state.read(KIND, run)
        if doc is None:
            return  # another state dir's run (another dockvol on this host): its reads call it failed
        if doc.get("status") == "completed":
            return
        found = self._state.read("repositories", intent.args["repository"])
        if found is not None:
            repo = self._repositories.opened(RepositoryRecord(**found))
            cut = [s.id for s in self._restic.snapshots(repo, [f"run={run}"])]
            self._restic.forget(repo, cut)
            self._restic.unlock(repo)  # a killed restic leaves its lock behind
        if doc.get("status") == "running" and gone(doc.get("owner", "")):
            self._fail(doc, DIED)  # else its own process tells what failed

    # -- read --------------------------------------------------------------------------------------

    def list(self, query: BackupQuery) -> tuple[list[Backup], list[str]]:
        """The caller's backups, newest first, and the repositories that could not be read."""
        runs = self._runs()
        found: builtins.list[Backup] = []
        unreachable: builtins.list[str] = []
        for record in self._repositories.list():
            if query.repository not in (None, record.name):
                continue
            try:
                snapshots = self._restic.snapshots(self._repositories.opened(record), [TAG])
            except BackupFailure:
                unreachable.append(record.name)
                continue
            found += self._completed(record, snapshots, runs)
        found += [b for b in (_of_run(d) for d in runs.values()) if b.status != "completed"]
        found = [
            b
            for b in found
            if visible(b.project)
            and query.volume in (None, b.volume)
            and query.repository in (None, b.repository)
            and query.status in (None, b.status)
            and query.policy in (None, b.policy)
        ]
        return sorted(found, key=lambda b: (b.started_at or "", b.id), reverse=True), unreachable

    def get(self, backup_id: str) -> Backup:
        """A backup by its snapshot's id, or by its run's (then as the run is now: completed, the
        snapshot's backup)."""
        missing = NotFound(f"backup {backup_id} does not exist")
        runs = self._runs()
        run = runs.get(backup_id) if backup_id.startswith(RUN_PREFIX) else None
        if run is not None and run.get("status") != "completed":
            if not visible(run["project"]):
                raise missing
            return _of_run(run)
        snapshot_id = run["snapshot"] if run is not None else backup_id
        if not SNAPSHOT_ID.fullmatch(snapshot_id):
            raise missing
        records = self._repositories.list()
        hint = next((d["repository"] for d in runs.values() if d.get("snapshot") == snapshot_id), None)
        for record in sorted(records, key=lambda r: r.name != hint):  # its own repository first
            try:
                snapshots = self._restic.snapshots(self._repositories.opened(record), [TAG])
            except BackupFailure:
                continue
            for b in self._completed(record, [s for s in snapshots if s.id == snapshot_id], runs):
                if visible(b.project):
                    return b
        raise missing

    def open_archive(self, backup: Backup) -> IO[bytes]:
        """The volume's tar as the backup holds it."""
        if backup.status != "completed":
            raise Conflict(f"backup {backup.id} is {backup.status}: only a completed backup has an archive")
        repo = self._repositories.opened(self._repositories.get(backup.repository))
        return self._restic.dump(repo, backup.id, backup.file)

    def delete(self, backup_id: str) -> None:
        """Forget a backup (restic forget: its data goes at the repository's next prune); a failed
        run's record goes."""
        backup = self.get(backup_id)
        if backup.status == "running":
            raise Conflict(f"backup {backup_id} is running; try again when it has ended")
        if backup.status == "completed":
            repo = self._repositories.opened(self._repositories.get(backup.repository))
            self._restic.forget(repo, [backup.id])
        for run, doc in self._runs().items():
            if run == backup_id or doc.get("snapshot") == backup.id:
                self._state.remove(KIND, run)

    # -- helpers -----------------------------------------------------------------------------------

    def records(self) -> builtins.list[tuple[Backup, int]]:
        """Every run recorded here, of every project, with the time its record was last written
        (the watch's second source: domain/record_feed.py)."""
        return [(_of_run(_now(doc)), at) for doc, at in self._state.all_timed(KIND)]

    def _runs(self) -> dict[str, dict[str, Any]]:
        """Every run recorded here, a running one whose process is gone shown as failed."""
        runs = {}
        for doc in self._state.all(KIND):
            doc = _now(doc)
            runs[doc["id"]] = doc
        return runs

    def _completed(
        self, record: RepositoryRecord, snapshots: Iterable[Snapshot], runs: dict[str, dict[str, Any]]
    ) -> builtins.list[Backup]:
        """dockvol's snapshots as backups: those of runs that did not complete here are left out
        (a cut run's snapshot that its recovery has not forgotten yet)."""
        found = []
        for s in snapshots:
            run = runs.get(s.tag("run") or "")
            if run is not None and run.get("status") != "completed":
                continue
            backup = Backup(
                id=s.id,
                volume=s.tag("volume") or "",
                project=s.tag("project") or DEFAULT_PROJECT,
                repository=record.name,
                status="completed",
                started_at=times.text(times.nanoseconds(s.time)),
                file=s.paths[0] if s.paths else "",
                policy=s.tag("policy"),
                scheduled_at=s.tag("scheduled"),
            )
            if run is not None:
                backup = replace(
                    backup,
                    finished_at=run.get("finished_at"),
                    bytes_done=run.get("size_bytes"),
                    size_bytes=run.get("size_bytes"),
                    added_bytes=run.get("added_bytes"),
                    files=run.get("files"),
                )
            found.append(backup)
        return found

    def _running_into(self, repository: str) -> bool:
        return any(d["repository"] == repository and d["status"] == "running" for d in self._runs().values())


def _now(doc: dict[str, Any]) -> dict[str, Any]:
    return as_now(doc, DIED)


def _of_run(doc: dict[str, Any]) -> Backup:
    return Backup(
        id=doc["id"],
        volume=doc["volume"],
        project=doc["project"],
        repository=doc["repository"],
        status=doc["status"],
        started_at=doc.get("started_at"),
        finished_at=doc.get("finished_at"),
        bytes_done=doc.get("bytes_done"),
        size_bytes=doc.get("size_bytes"),
        added_bytes=doc.get("added_bytes"),
        files=doc.get("files"),
        error=doc.get("error"),
        policy=doc.get("policy"),
        scheduled_at=doc.get("scheduled_at"),
    )
