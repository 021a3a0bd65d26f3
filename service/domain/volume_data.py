"""Volume data: export, import, clone, rename, browse and usage, through helper containers.

Reads stream from the engine to the client chunk by chunk; uploads are spooled to a temporary
file and checked entry by entry before anything reaches the volume.
"""

from __future__ import annotations

import contextlib
import io
import logging
import posixpath
import secrets
import tarfile
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import IO

from ..config import ALL_PROJECTS
from ..engine.port import Archive, Engine
from ..errors import Conflict, EngineFailure, Forbidden, InvalidInput, NotFound
from ..streams import Stream
from . import archive_check, archives
from . import labels as label
from .archives import Entry
from .byte_quota import ByteQuota
from .helpers import Helper, Helpers
from .intents import Held, Intent, Intents
from .projects import acting_for, current, owner, unscoped
from .volumes import Volume, Volumes

log = logging.getLogger(__name__)
NAME_MAX = 255  # bytes in one path component
UPLOAD, STAGED = "upload", "staged"  # in an import's staging volume: the archive, then the marker


def staging_name(op: str) -> str:
    return f"dockvol-import-{op}"


@dataclass(frozen=True)
class Download:
    body: Stream
    filename: str
    size: int | None = None


@dataclass(frozen=True)
class Listing:
    path: str
    entries: list[Entry]


@dataclass(frozen=True)
class Usage:
    name: str
    bytes: int
    files: int
    directories: int
    symlinks: int


class VolumeData:
    def __init__(
        self,
        engine: Engine,
        volumes: Volumes,
        helpers: Helpers,
        intents: Intents,
        byte_quota: ByteQuota,
        max_import_bytes: int,
        max_import_entries: int,
        spool_dir: str | None = None,
    ) -> None:
        self._engine = engine
        self._max_entries = max_import_entries
        self._intents = intents
        self._byte_quota = byte_quota
        intents.recoverer("volume.clone", self._recover_clone)
        intents.recoverer("volume.rename", self._recover_rename)
        intents.recoverer("volume.import", self._recover_import)
        intents.recoverer("volume.replace", self._recover_replace)
        intents.recoverer("volume.pause", self._recover_pause)
        self._volumes = volumes
        self._helpers = helpers
        self._max = max_import_bytes
        self._spool_dir = spool_dir

    def export(self, name: str, path: str, pause: bool) -> Download:
        volume = self._volumes.get(name)
        paused = self._pause(name) if pause else None
        helper = None
        try:
            helper = self._reader(volume)
            archive = self._contents(helper, name, path)
        except BaseException:
            self._finish(helper, paused)
            raise
        basename = name if not path else f"{name}-{path.replace('/', '-')}"
        return Download(Stream(archive, lambda: self._finish(helper, paused)), f"{basename}.tar")

    def import_(self, name: str, path: str, upload: IO[bytes]) -> int:
        """Extract an uploaded tar (or tar.gz) into the volume; the number of entries."""
        if any(len(part.encode()) > NAME_MAX for part in path.split("/")):
            raise InvalidInput("path", f"a name in the path is longer than {NAME_MAX} bytes")
        if not self._volumes.get(name).managed:
            raise Forbidden(f"volume {name} was not created by dockvol; it is read-only here")
        # Locked: a rename (or another import) of this volume waits rather than lose this one.
        with (
            archive_check.spool(upload, self._max, self._spool_dir) as spooled,
            self._intents.run("volume.import", [f"volume/{name}"], target=name, path=path) as intent,
        ):
            volume = self._volumes.get(name)  # again, under the lock: a rename may have taken it meanwhile
            checked, count = archive_check.check_upload(spooled, path, self._max, self._max_entries, self._spool_dir)
            spooled.close()  # what goes on is the copy of what was checked, not the upload
            size = archive_check.unpacked_bytes(checked)
            with checked, self._byte_quota.claim(intent, volume.project or "", size):
                intent.begin()
                self._stage(checked, intent)
                checked.close()
                self._apply(intent)
                self._engine.remove_volume(staging_name(intent.op))
        return count

    # An import is made atomic through a staging volume: (1) the checked upload is copied there
    # whole, then a marker; (2) it is extracted into the volume from there. Until the marker, a
    # recovery drops the staging volume (the volume is untouched: its old content); after it, a
    # recovery extracts again from the staging copy (a file cut half-way by a kill is written
    # whole again: its new content), so no mix of old and new outlives a recovery. One exception:
    # a volume that cannot take the archive at its path (a file where a directory must be) was
    # refused before anything was written, and the staging volume is dropped (its old content).

    def _stage(self, checked: IO[bytes], intent: Intent) -> None:
        staging = staging_name(intent.op)
        # The staging copy is the project's bytes while it lasts: labelled with the target's project.
        project = self._engine.inspect_volume(intent.args["target"]).labels.get(label.PROJECT)
        marks = {**intent.label, label.FILLING: intent.op, **({label.PROJECT: project} if project else {})}
        self._volumes.create(staging, "local", {}, {}, marks=marks)
        size = checked.seek(0, io.SEEK_END)
        checked.seek(0)
        with self._helpers.open([(staging, "/v", False)], intent.label) as helper:
            self._engine.put_archive(helper.id, "/v", archives.single_file_tar(UPLOAD, checked, size))
            self._engine.put_archive(helper.id, "/v", archives.single_file_tar(STAGED, io.BytesIO(b""), 0))

    def _apply(self, intent: Intent) -> None:
        name, path = intent.args["target"], intent.args["path"]
        with (
            self._helpers.open([(staging_name(intent.op), "/s", True)], intent.label) as source,
            self._helpers.open([(name, "/v", False)], intent.label) as target,
        ):
            self._ensure_dir(target, path)
            with closing(self._engine.get_archive(source.id, f"/s/{UPLOAD}")) as archive:
                self._engine.put_archive(target.id, _inside("/v", path), archives.first_file(archive))

    def _recover_import(self, intent: Intent) -> None:
        staging = staging_name(intent.op)
        try:
            self._engine.inspect_volume(staging)
        except NotFound:
            return
        with self._helpers.open([(staging, "/s", True)], intent.label) as helper:
            try:
                self._engine.get_archive(helper.id, f"/s/{STAGED}").close()
                staged = True
            except NotFound:
                staged = False
        if staged:
            try:
                self._apply(intent)
            except InvalidInput as exc:
                # The volume cannot take the archive at its path (a file stands where a directory
                # must): `_ensure_dir` refuses before it writes anything, so the import cannot go
                # forward and goes back instead; tried again, it would fail the same way forever.
                log.warning("import %s into %s goes back: %s", intent.op, intent.args["target"], exc.detail)
        self._intents.remove_helpers(intent.op)
        self._engine.remove_volume(staging)

    def clone(self, name: str, new_name: str, labels: Mapping[str, str], pause: bool) -> Volume:
        with self._intents.run("volume.clone", [f"volume/{name}", f"volume/{new_name}"], target=new_name) as intent:
            self._volumes.get(name)
            with self._byte_quota.claim(intent, owner(labels), copying=name):
                intent.begin()
                self._copy(name, new_name, labels, pause, intent)
        return self._volumes.get(new_name)

    def receive(self, new_name: str, labels: Mapping[str, str], source: Callable[[], IO[bytes]]) -> Volume:
        """The copy's side of a clone from another node: a new volume here, filled from the
        source's archive (`source()` opens it). All or nothing, as a clone here: the copy is marked
        filling inside the operation, and a failure, a kill or an engine restart takes it away; and
        the archive gets an import's checks before anything is written."""
        with self._intents.run("volume.clone", [f"volume/{new_name}"], target=new_name) as intent:
            try:
                self._engine.inspect_volume(new_name)
                raise Conflict(f"volume {new_name} exists already")
            except NotFound:
                pass
            with archive_check.spool(source(), self._max, self._spool_dir) as spooled:
                checked, _ = archive_check.check_upload(spooled, "", self._max, self._max_entries, self._spool_dir)
            size = archive_check.unpacked_bytes(checked)
            with checked, self._byte_quota.claim(intent, owner(labels), size):
                intent.begin()
                self._volumes.create(new_name, "local", {}, labels, marks={**intent.label, label.FILLING: intent.op})
                with self._helpers.open([(new_name, "/v", False)], intent.label) as helper:
                    self._engine.put_archive(helper.id, "/v", checked)
        return self._volumes.get(new_name)

    # A replace (a restore with `replace`) gives a volume an archive's content, whole, in place of
    # all it held: (1) the checked archive is extracted into the import's staging volume, then
    # the operation notes `staged`; (2) the swap: the volume is removed (the commit point) and made
    # again, marked filling by the operation, as a copy of the staging volume, which then goes.
    # A recovery before the removal drops the staging volume (old content); after it, it makes the
    # copy again from the staging volume (a half-made copy is the operation's own: removed first).

    def replace(self, name: str, source: Callable[[], IO[bytes]]) -> Volume:
        """Replace all of an unused volume's content with an archive's (`source()` opens it),
        atomically: old content or new, never a mix; checked as an import before anything is written."""
        with self._intents.run("volume.replace", [f"volume/{name}"], target=name) as intent:
            volume = self._volumes.get(name)
            self._volumes.check_deletable(volume)  # dockvol's, and no container uses it
            with archive_check.spool(source(), self._max, self._spool_dir) as spooled:
                checked, _ = archive_check.check_upload(spooled, "", self._max, self._max_entries, self._spool_dir)
            size = archive_check.unpacked_bytes(checked)
            with checked, self._byte_quota.claim(intent, volume.project or "", size):
                intent.begin()
                staging = staging_name(intent.op)
                project = {label.PROJECT: volume.project} if volume.project else {}
                self._volumes.create(
                    staging, "local", {}, {}, marks={**intent.label, label.FILLING: intent.op, **project}
                )
                with self._helpers.open([(staging, "/v", False)], intent.label) as helper:
                    self._engine.put_archive(helper.id, "/v", checked)
            self._intents.note(intent, staged=True, labels=dict(volume.labels), project=volume.project or "")
            self._swap(
                intent.adding([], {"staged": True, "labels": dict(volume.labels), "project": volume.project or ""})
            )
        return self._volumes.get(name)

    def _swap(self, intent: Intent) -> None:
        name, staging = intent.args["target"], staging_name(intent.op)
        try:
            if self._engine.inspect_volume(name).labels.get(label.OP) == intent.op:
                self._engine.remove_volume(name)  # a copy of ours that a kill cut: made again
            else:
                self._volumes.remove(name)  # the old content: from here on, the new one
        except NotFound:
            pass
        project = intent.args.get("project")
        self._copy(staging, name, intent.args["labels"], False, intent, {label.PROJECT: project} if project else {})
        self._engine.remove_volume(staging)

    def _recover_replace(self, intent: Intent) -> None:
        """Back while the old volume is there (the staging copy goes); forward once it has gone."""
        staging = staging_name(intent.op)
        try:
            self._engine.inspect_volume(staging)
        except NotFound:
            return  # nothing staged yet, or the swap has ended
        try:
            old = self._engine.inspect_volume(intent.args["target"]).labels.get(label.OP) != intent.op
        except NotFound:
            old = False
        if intent.args.get("staged") and not old:
            self._swap(intent)
        else:
            self._engine.remove_volume(staging)

    def rename(self, name: str, new_name: str, project: str | None = None) -> Volume:
        """Copy, then delete the original; whatever dies when, one of the two stays, whole.
        `project`: the copy's (an operator's move to another project; projects.py checks who)."""
        if project is not None and current() != ALL_PROJECTS:
            raise Forbidden("only a token of the project `*` moves a volume to another project")
        keys = [f"volume/{name}", f"volume/{new_name}"]
        with self._intents.run("volume.rename", keys, source=name, target=new_name) as intent:
            volume = self._volumes.get(name)
            self._volumes.check_deletable(volume)
            intent.begin()
            marks = {label.MOVED_FROM: name, **({label.PROJECT: project} if project else {})}
            self._copy(name, new_name, volume.labels, False, intent, marks)
            self._volumes.remove(name)
        with acting_for(project) if project else contextlib.nullcontext():  # the copy is where it went
            return self._volumes.get(new_name)

    def _copy(
        self,
        name: str,
        new_name: str,
        labels: Mapping[str, str],
        pause: bool,
        intent: Intent,
        marks: Mapping[str, str] = {},
    ) -> None:
        """Fill a new volume with a copy of another. Until the operation ends the copy is marked
        filling: not listed, not shown, and removed if the operation does not finish."""
        marks = {**marks, **intent.label, label.FILLING: intent.op}
        self._volumes.create(new_name, "local", {}, labels, marks=marks)
        paused = self._pause(name) if pause else None
        try:
            # Two helpers: the engine locks a container while one of its archives is being read.
            with (
                self._helpers.open([(name, "/v", True)], intent.label) as source,
                self._helpers.open([(new_name, "/v", False)], intent.label) as target,
            ):
                with closing(self._engine.get_archive(source.id, "/v/.")) as archive:
                    self._engine.put_archive(target.id, "/v", iter(archive))
        finally:
            self._finish(None, paused)

    def _recover_clone(self, intent: Intent) -> None:
        """Back: an unfinished copy goes (its helpers are gone by now)."""
        self._discard_copy(intent.args["target"], intent.op)

    def _recover_rename(self, intent: Intent) -> None:
        """Back while the original is there (the copy goes); forward once it has gone."""
        try:
            self._engine.inspect_volume(intent.args["source"])
        except NotFound:
            return
        self._discard_copy(intent.args["target"], intent.op)

    def _discard_copy(self, name: str, op: str) -> None:
        try:
            if self._engine.inspect_volume(name).labels.get(label.OP) == op:
                self._engine.remove_volume(name)
        except NotFound:
            pass

    def files(self, name: str, path: str) -> Listing | Download:
        helper = self._reader(self._volumes.get(name))
        try:
            archive = self._get(helper, name, _inside("/v", path) if path else "/v/.")
            if archive.stat.is_regular:
                body = Stream(archives.first_file(archive), _closing_both(archive, helper))
                return Download(body, archive.stat.name, archive.stat.size)
            with closing(archive):
                found = list(archives.entries(archive))
        except BaseException:
            helper.close()
            raise
        helper.close()
        if archive.stat.is_dir:
            parent = "" if not path else archive.stat.name  # the tar names entries under '.' or the base
            children = [
                e
                for e in found
                if posixpath.normpath(e.name) not in (".", parent)
                and posixpath.dirname(posixpath.normpath(e.name)) == parent
            ]
            found = [
                Entry(posixpath.basename(e.name), e.type, e.size, e.mode, e.mtime, e.link_target) for e in children
            ]
        return Listing(path or "/", sorted(found, key=lambda e: e.name))

    def usage(self, name: str) -> Usage:
        with self._reader(self._volumes.get(name)) as helper, closing(self._get(helper, name, "/v/.")) as archive:
            counts = {"file": 0, "directory": 0, "symlink": 0}
            size = 0
            for e in archives.entries(archive):
                counts[e.type] = counts.get(e.type, 0) + 1
                size += e.size if e.type == "file" else 0
        return Usage(name, size, counts["file"], counts["directory"] - 1, counts["symlink"])  # less the root

    # -- helpers -------------------------------------------------------------------------------

    def _reader(self, volume: Volume) -> Helper:
        """A helper that reads the volume. Reads take no lock, and the engine quietly makes a
        named volume a new container mounts if it is missing: if the volume went (deleted, or
        renamed away) between the look and the helper, the helper and the engine's empty
        stand-in go, and the answer is 404."""
        helper = self._helpers.open([(volume.name, "/v", True)])
        try:
            same = label.identity(self._engine.inspect_volume(volume.name)) == volume.identity
        except NotFound:
            same = False
        except BaseException:  # the engine went away: the helper goes when it is back
            helper.close()
            raise
        if not same:
            helper.close()
            try:
                if not self._engine.inspect_volume(volume.name).labels:
                    self._engine.remove_volume(volume.name)
            except (NotFound, Conflict):
                pass
            raise NotFound(f"volume {volume.name} does not exist")
        return helper

    def _contents(self, helper: Helper, name: str, path: str) -> Archive:
        """A directory's content under '.', or a single file under its own name."""
        if not path:
            return self._get(helper, name, "/v/.")
        archive = self._get(helper, name, _inside("/v", path))
        if not archive.stat.is_dir:
            return archive
        archive.close()
        return self._get(helper, name, _inside("/v", path) + "/.")

    def _get(self, helper: Helper, name: str, path: str) -> Archive:
        missing = NotFound(f"{path.removeprefix('/v')[1:] or '/'} does not exist in volume {name}")
        try:
            return self._engine.get_archive(helper.id, path)
        except NotFound:
            raise missing from None
        except EngineFailure:
            # The engine fails a read below a file with an error of its own: such a path does not exist.
            if self._below_a_file(helper, path):
                raise missing from None
            raise

    def _below_a_file(self, helper: Helper, path: str) -> bool:
        parts = path.removeprefix("/v/").split("/")
        for depth in range(1, len(parts)):
            try:
                archive = self._engine.get_archive(helper.id, "/v/" + "/".join(parts[:depth]))
            except NotFound:
                return False
            archive.close()
            if not archive.stat.is_dir:
                return True
        return False

    def _ensure_dir(self, helper: Helper, path: str) -> None:
        """Make `path` (and missing parents) inside the volume, leaving existing ones as they are.
        Walked from the top: the engine is never asked for a path below a file (it fails such a
        read with an error of its own, not a 404), so a file in the way is a 422 naming it."""
        parent = ""
        for part in path.split("/") if path else ():
            here = posixpath.join(parent, part)
            try:
                archive = self._engine.get_archive(helper.id, _inside("/v", here))
                archive.close()
                if not archive.stat.is_dir:
                    raise InvalidInput("path", f"{here} is not a directory")
            except NotFound:
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w") as tar:
                    info = tarfile.TarInfo(part)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                self._engine.put_archive(helper.id, _inside("/v", parent), buf.getvalue())
            parent = here

    def _pause(self, name: str) -> Held:
        """Pause the running containers that can write to the volume, recorded first as an intent
        (its own lock, no one else's), so that if dockvol dies before `_finish` they are unpaused
        by the reconciler, not left paused."""
        writers = [  # every project's: a container of another that writes here makes a torn copy too
            c.id
            for c in unscoped(self._engine).list_containers(volume=name)
            if c.state == "running" and any(m.name == name and not m.read_only for m in c.mounts)
        ]
        held = self._intents.hold("volume.pause", [f"pause/{secrets.token_hex(8)}"], paused=writers)
        held.intent.begin()
        try:
            for cid in writers:
                self._engine.pause_container(cid)
        except BaseException:
            held.end(failed=True)
            raise
        return held

    def _finish(self, helper: Helper | None, paused: Held | None) -> None:
        if helper is not None:
            helper.close()
        if paused is not None:
            paused.end(failed=True)  # "failed": the recoverer is what unpauses

    def _recover_pause(self, intent: Intent) -> None:
        for cid in intent.args["paused"]:
            with contextlib.suppress(NotFound, Conflict):  # gone, or not paused (any more)
                self._engine.unpause_container(cid)


def _closing_both(archive: Archive, helper: Helper) -> Callable[[], None]:
    """A download's cleanup: its archive stream, then its helper, even when closing the first fails."""

    def close() -> None:
        try:
            archive.close()
        finally:
            helper.close()

    return close


def _inside(root: str, path: str) -> str:
    if any(len(part.encode()) > NAME_MAX for part in path.split("/")):
        raise NotFound(f"{path} cannot exist: a name is longer than {NAME_MAX} bytes")
    return f"{root}/{path}" if path else root
