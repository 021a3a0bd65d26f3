"""Restores (DESIGN.md section 12): a backup's tar, out of restic, into a new volume, or with
`replace` over all the content of an existing, unused one (`VolumeData.replace`: staged, then
swapped in; old content or new, never a mix).

The tar takes the path an archive from another node takes (`VolumeData.receive`): spooled to
disk, given every check an import gets (a repository may have been tampered with: a hostile
archive is refused before anything is written), and only then a new volume, marked filling, is
made and filled, under its lock; killed at any step, the volume is whole or gone. A restore runs
after its request is answered (202) and is recorded in the state dir, in its project."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from ... import times
from ...config import ALL_PROJECTS, DEFAULT_PROJECT
from ...engine.port import Engine
from ...errors import Conflict, DockvolError, InvalidInput, NotFound
from ..helpers import owner
from ..projects import acting_for, current, unscoped
from ..volume_data import VolumeData
from ..volumes import Volumes
from .jobs import as_now, in_background
from .repositories import visible
from .runs import Backups
from .state import StateDir

log = logging.getLogger(__name__)
KIND = "restores"
DIED = "dockvol stopped while the restore ran"


@dataclass(frozen=True)
class Restore:
    id: str
    backup: str
    volume: str
    project: str
    status: str  # running | completed | failed
    started_at: str
    finished_at: str | None = None
    bytes_done: int | None = None
    error: str | None = None
    replace: bool = False


class Restores:
    def __init__(
        self,
        engine: Engine,
        backups: Backups,
        volumes: Volumes,
        data: VolumeData,
        state: StateDir,
        start: Callable[[Callable[[], None], str], Any] = in_background,
    ) -> None:
        self._engine = engine
        self._backups = backups
        self._volumes = volumes
        self._data = data
        self._state = state
        self._start = start

    def start(self, backup_id: str, volume: str, replace: bool = False) -> Restore:
        """Restore a completed backup into `volume`: a new volume (in the backup's project), or
        with `replace` an existing, unused one of the backup's project."""
        backup = self._backups.get(backup_id)
        if backup.status != "completed":
            raise Conflict(f"backup {backup_id} is {backup.status}: only a completed backup can be restored")
        if replace:
            found = self._volumes.get(volume)  # the caller's project's (404 otherwise)
            if (found.project or DEFAULT_PROJECT) != backup.project:
                raise InvalidInput("volume", f"volume {volume} belongs to another project than the backup")
            self._volumes.check_deletable(found)  # checked again under its lock, when the restore runs
        else:
            try:
                unscoped(self._engine).inspect_volume(volume)  # every project's: names are engine-wide
                raise Conflict(f"volume {volume} exists already")
            except NotFound:
                pass
        doc: dict[str, Any] = {
            "id": secrets.token_hex(8),
            "backup": backup.id,
            "volume": volume,
            "project": backup.project,
            "status": "running",
            "started_at": times.now(),
            "owner": owner(),
            "replace": replace,
        }
        self._state.write(KIND, doc["id"], doc)
        self._start(lambda: self._run(doc), f"restore {doc['id']}")
        return _of(doc)

    def _run(self, doc: dict[str, Any]) -> None:
        opened: list[IO[bytes]] = []

        def source() -> IO[bytes]:
            opened.append(self._backups.open_archive(self._backups.get(doc["backup"])))
            return opened[-1]

        try:
            # The operator's restore lands in the backup's project, as that project's own would.
            with acting_for(doc["project"]) if current() == ALL_PROJECTS else contextlib.nullcontext():
                if doc.get("replace"):
                    self._data.replace(doc["volume"], source)
                else:
                    self._data.receive(doc["volume"], {}, source)
            doc.update(status="completed", finished_at=times.now())
        except DockvolError as exc:
            doc.update(status="failed", error=exc.detail, finished_at=times.now())
        except Exception:
            log.exception("restore %s of backup %s failed", doc["id"], doc["backup"])
            doc.update(status="failed", error="an internal error ended the restore", finished_at=times.now())
        finally:
            for f in opened:
                f.close()
        self._state.write(KIND, doc["id"], doc)

    def get(self, restore_id: str) -> Restore:
        doc = self._state.read(KIND, restore_id)
        if doc is None or not visible(doc["project"]):
            raise NotFound(f"restore {restore_id} does not exist")
        return _of(_now(doc))

    def records(self) -> list[tuple[Restore, int]]:
        """Every restore recorded here, of every project, with the time its record was last
        written (the watch's second source: domain/record_feed.py)."""
        return [(_of(_now(doc)), at) for doc, at in self._state.all_timed(KIND)]

    def list(self) -> list[Restore]:
        found = [_of(_now(d)) for d in self._state.all(KIND) if visible(d["project"])]
        return sorted(found, key=lambda r: (r.started_at, r.id), reverse=True)


def _now(doc: dict[str, Any]) -> dict[str, Any]:
    return as_now(doc, DIED)


def _of(doc: dict[str, Any]) -> Restore:
    return Restore(
        id=doc["id"],
        backup=doc["backup"],
        volume=doc["volume"],
        project=doc["project"],
        status=doc["status"],
        started_at=doc["started_at"],
        finished_at=doc.get("finished_at"),
        error=doc.get("error"),
        replace=bool(doc.get("replace")),
    )
