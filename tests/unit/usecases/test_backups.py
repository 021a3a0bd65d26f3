"""Repositories, backups and restores (DESIGN.md section 12), called directly: the real restic
against repositories in a temporary directory, the engine side on the in-memory engine."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from service.domain.backups.restic import Repository
from service.domain.backups.runs import BackupQuery
from service.domain.projects import acting_for
from service.errors import Conflict, EngineFailure, Forbidden, InvalidInput, NotFound
from tests import s3

from ..engine_state import snapshot
from ..test_restic import holding_the_lock
from .conftest import leftovers, spec, tar, volume

pytestmark = pytest.mark.slow  # every restic call derives its key (scrypt): about half a second each

TREE = (
    ("html", "dir", None, 0o755),
    ("html/index.html", "file", b"<h1>hi</h1>\n", 0o644),
    ("big", "file", os.urandom(8 << 20), 0o644),  # restic's chunks are 0.5 to 8 MiB
    ("current", "symlink", "html/index.html", 0o777),
)


@pytest.fixture
def backup_root(tmp_path):
    root = tmp_path / "backups"
    root.mkdir()
    return root


@pytest.fixture
def wired(wire, tmp_path, backup_root):
    """The use cases with a state dir of their own (`wired("b")`: another dockvol's, same engine)."""
    return lambda state="state": wire(state_dir=str(tmp_path / state), backup_roots=(str(backup_root),))


@pytest.fixture
def uses(wired):
    return wired()


@pytest.fixture
def site(uses):
    uses.volumes.create("site", "local", {}, {"team": "web"})
    uses.volume_data.import_("site", "", tar(*TREE))
    return "site"


@pytest.fixture
def repo(uses, backup_root):
    return uses.repositories.create("main", str(backup_root / "main"), "right horse battery")


def ended(get, within=60.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = get()
        if found.status != "running":
            return found
        time.sleep(0.05)
    raise AssertionError(f"still running after {within} s")


def backed_up(uses, volume="site", repository="main"):
    run = uses.backups.start(volume, repository)
    assert run.status == "running" and run.id.startswith("run-")
    return ended(lambda: uses.backups.get(run.id))


def files(engine, name):
    return snapshot(engine).files[name]


def test_a_backup_is_a_snapshot_and_a_restore_gives_the_volume_back(uses, engine, site, repo):
    first = backed_up(uses)
    assert first.status == "completed", first.error
    assert len(first.id) == 64 and first.size_bytes > 8 << 20 and first.added_bytes > 8 << 20
    uses.volume_data.import_(site, "", tar(("html/index.html", "file", b"changed", 0o644)))
    second = backed_up(uses)
    assert second.status == "completed" and second.added_bytes < 4 << 20  # most of the big file: deduplicated
    listed, unreachable = uses.backups.list(BackupQuery(volume="site"))
    assert [b.id for b in listed] == [second.id, first.id] and unreachable == []
    assert [b.files for b in listed] == [2, 2]  # html/index.html and big: counted on the way to restic
    assert not leftovers(engine)

    restore = uses.restores.start(first.id, "site-restored")
    done = ended(lambda: uses.restores.get(restore.id))
    assert done.status == "completed", done.error
    restored = files(engine, "site-restored")
    assert restored["html/index.html"] != files(engine, "site")["html/index.html"]
    assert restored == {**files(engine, "site"), "html/index.html": restored["html/index.html"]}
    assert uses.volumes.get("site-restored").project == "default"
    assert not leftovers(engine)


def test_another_dockvol_attaches_the_repository_and_restores_from_it(uses, wired, engine, site, repo):
    done = backed_up(uses)
    other = wired("elsewhere")
    with pytest.raises(InvalidInput, match="password"):
        other.repositories.create("found", repo.path, "wrong")
    assert other.repositories.list() == []
    other.repositories.create("found", repo.path, "right horse battery")
    listed, _ = other.backups.list(BackupQuery())
    assert [(b.id, b.volume, b.repository, b.status) for b in listed] == [(done.id, "site", "found", "completed")]
    assert listed[0].files is None  # counted by the dockvol that made it, not kept in the repository
    started = other.restores.start(done.id, "again")
    restore = ended(lambda: other.restores.get(started.id))
    assert restore.status == "completed", restore.error
    assert files(engine, "again") == files(engine, "site")


def test_another_projects_backups_are_missing_ones(uses, site, repo):
    done = backed_up(uses)  # the operator's, of a volume of `default`
    with acting_for("web"):
        with pytest.raises(NotFound):
            uses.backups.get(done.id)
        with pytest.raises(NotFound):
            uses.repositories.get("main")
        assert uses.backups.list(BackupQuery()) == ([], [])
    with acting_for("default"):
        assert uses.backups.get(done.id).id == done.id


def test_a_backup_whose_stream_fails_is_failed_and_leaves_no_snapshot(uses, engine, site, repo, monkeypatch):
    real = engine.get_archive

    class Cut:
        def __init__(self, archive):
            self.stat, self._archive = archive.stat, archive

        def __iter__(self):
            yield next(iter(self._archive))[:1000]
            raise EngineFailure("the engine went away")

        def close(self):
            self._archive.close()

    def cut(cid, path):
        return Cut(real(cid, path))

    monkeypatch.setattr(engine, "get_archive", cut)
    failed = backed_up(uses)
    assert failed.status == "failed" and "went away" in failed.error
    monkeypatch.undo()
    assert uses.repositories.restic.snapshots(uses.repositories.opened(repo)) == []
    assert not leftovers(engine)  # no helper, and the volume's lock is free: a retry runs
    assert backed_up(uses).status == "completed"


def test_a_backup_waits_while_a_retention_holds_the_repository(uses, site, repo, backup_root, tmp_path):
    """A retention's forget locks the repository exclusively for a moment; a backup that starts
    then waits for it (restic alone would refuse), and reads the volume whole."""
    password = tmp_path / "pw"
    password.write_text("right horse battery")
    holder = holding_the_lock(Repository(str(backup_root / "main"), str(password)))
    threading.Timer(3.0, holder.stdin.close).start()
    try:
        run = backed_up(uses)
    finally:
        holder.kill()
        holder.wait()
    assert run.status == "completed", run.error
    assert run.size_bytes == len(b"".join(uses.volume_data.export("site", "", pause=False).body))


def test_a_cut_runs_snapshot_is_never_listed_as_completed(uses, site, repo):
    """A run whose dockvol died after restic wrote the snapshot (before the recovery forgot it)."""
    restic, opened = uses.repositories.restic, uses.repositories.opened(repo)
    restic.backup(opened, [b"half"], "site.tar", ["dockvol", "volume=site", "project=default", "run=run-00000000"])
    uses.backups._state.write(  # as its run left it: running, by a process that is gone
        "backups",
        "run-00000000",
        {"id": "run-00000000", "volume": "site", "project": "default", "repository": "main", "status": "running",
         "started_at": "2026-01-01T00:00:00Z", "owner": f"{os.uname().nodename}:999999999"},
    )  # fmt: skip
    listed, _ = uses.backups.list(BackupQuery())
    assert [(b.id, b.status) for b in listed] == [("run-00000000", "failed")]


def test_a_restore_of_a_hostile_archive_writes_nothing(uses, engine, repo):
    evil = tar(("fine", "file", b"ok", 0o644), ("../../escape", "file", b"x", 0o644)).getvalue()
    restic, opened = uses.repositories.restic, uses.repositories.opened(repo)
    restic.backup(opened, [evil], "evil.tar", ["dockvol", "volume=evil", "project=default"])
    [backup], _ = uses.backups.list(BackupQuery())
    before = snapshot(engine)
    started = uses.restores.start(backup.id, "victim")
    done = ended(lambda: uses.restores.get(started.id))
    assert done.status == "failed" and ".." in done.error
    assert snapshot(engine) == before


def test_a_restore_goes_into_a_new_volume_only(uses, site, repo):
    done = backed_up(uses)
    with pytest.raises(Conflict, match="exists"):
        uses.restores.start(done.id, "site")


def test_a_repository_lies_under_the_backup_roots_and_keeps_its_password_to_itself(uses, backup_root, tmp_path):
    with pytest.raises(Forbidden, match="backup root"):
        uses.repositories.create("out", str(tmp_path / "elsewhere"), "pw")
    (backup_root / "junk").mkdir()
    (backup_root / "junk" / "file").write_text("x")
    with pytest.raises(InvalidInput, match="neither empty nor a restic repository"):
        uses.repositories.create("junk", str(backup_root / "junk"), "pw")
    made = uses.repositories.create("deep", str(backup_root / "a" / "b"), "sesame")
    with pytest.raises(Conflict):
        uses.repositories.create("deep", str(backup_root / "c"), "pw")
    opened = uses.repositories.opened(made)
    assert isinstance(opened, Repository) and os.stat(opened.password_file).st_mode & 0o777 == 0o600
    state = tmp_path / "state" / "repositories"
    assert os.stat(tmp_path / "state").st_mode & 0o777 == 0o700
    assert not any(b"sesame" in (state / f).read_bytes() for f in os.listdir(state) if f.endswith(".json"))
    status = uses.repositories.status(made)
    assert (status.reachable, status.backups) == (True, 0)
    uses.repositories.delete("deep")
    assert os.path.exists(backup_root / "a" / "b" / "config")  # forgotten, not destroyed
    with pytest.raises(NotFound):
        uses.repositories.get("deep")


# -- S3 repositories: an S3 server on loopback (moto), restic's S3 client -------------------------

S3_KEYS = {"access_key_id": s3.ACCESS_KEY, "secret_access_key": s3.SECRET_KEY}


def s3_repo(uses, s3_endpoint, name, bucket, password="right horse battery"):
    place = {"endpoint": s3_endpoint, "bucket": bucket, "prefix": "team/web", "region": "us-east-1"}
    return uses.repositories.create(name, None, password, s3=place, credentials=S3_KEYS)


def test_an_s3_repository_is_made_backed_up_into_restored_from_and_attached(uses, wired, engine, site, s3_endpoint):
    made = s3_repo(uses, s3_endpoint, "offsite", "dockvol-usecases")
    assert made.kind == "s3" and made.location == f"s3:{s3_endpoint}/dockvol-usecases/team/web"
    assert uses.repositories.status(made).reachable
    done = backed_up(uses, repository="offsite")
    assert done.status == "completed", done.error
    started = uses.restores.start(done.id, "from-s3")
    assert ended(lambda: uses.restores.get(started.id)).status == "completed"
    assert files(engine, "from-s3") == files(engine, "site")

    other = wired("elsewhere")  # a new dockvol, the same bucket: attached, its backups listed
    with pytest.raises(InvalidInput, match="password"):
        s3_repo(other, s3_endpoint, "found", "dockvol-usecases", password="wrong")
    s3_repo(other, s3_endpoint, "found", "dockvol-usecases")
    listed, _ = other.backups.list(BackupQuery())
    assert [(b.id, b.repository) for b in listed] == [(done.id, "found")]


def test_s3_keys_are_kept_in_a_0600_file_and_never_in_argv_env_or_record(uses, tmp_path, s3_endpoint):
    made = s3_repo(uses, s3_endpoint, "keys", "dockvol-keys")
    opened = uses.repositories.opened(made)
    assert opened.credentials_file and os.stat(opened.credentials_file).st_mode & 0o777 == 0o600
    assert s3.SECRET_KEY in Path(opened.credentials_file).read_text()
    restic = uses.repositories.restic
    shown = " ".join(restic._argv(opened, ["snapshots"])) + repr(restic._env(opened))
    assert s3.SECRET_KEY not in shown and s3.ACCESS_KEY not in shown
    state = tmp_path / "state" / "repositories"
    assert not any(s3.SECRET_KEY.encode() in (state / f).read_bytes() for f in os.listdir(state) if ".json" in f)
    with pytest.raises(Conflict):  # the same place twice
        s3_repo(uses, s3_endpoint, "again", "dockvol-keys")
    uses.repositories.delete("keys")
    assert not os.path.exists(opened.credentials_file) and not os.path.exists(opened.password_file)


# -- restore with replace ------------------------------------------------------------------------


def test_a_restore_with_replace_gives_the_volume_exactly_the_backups_content(uses, engine, site, repo):
    done = backed_up(uses)
    before = files(engine, "site")
    changed = tar(("html/index.html", "file", b"changed", 0o644), ("new", "file", b"n", 0o644))
    uses.volume_data.import_(site, "", changed)
    started = uses.restores.start(done.id, "site", replace=True)
    assert started.replace and started.status == "running"
    restored = ended(lambda: uses.restores.get(started.id))
    assert restored.status == "completed", restored.error
    assert files(engine, "site") == before  # `new`, made after the backup, is gone: no mix
    assert uses.volumes.get("site").labels == {"team": "web"} and not leftovers(engine)


def test_a_restore_with_replace_needs_an_unused_volume_of_the_backups_project(uses, engine, site, repo):
    done = backed_up(uses)
    with pytest.raises(NotFound):
        uses.restores.start(done.id, "nothing-here", replace=True)
    uses.bindings.create(spec("user", mounts=(volume("/data", "site"),)))
    with pytest.raises(Conflict, match="use"):
        uses.restores.start(done.id, "site", replace=True)
    with acting_for("web"):
        uses.volumes.create("webvol", "local", {}, {})
    with pytest.raises(InvalidInput, match="another project"):
        uses.restores.start(done.id, "webvol", replace=True)


# -- the backups quota ---------------------------------------------------------------------------


def test_the_backups_quota_counts_completed_and_running_backups_of_the_project(wire, tmp_path, backup_root, engine):
    from concurrent.futures import ThreadPoolExecutor

    from service.config import ProjectConfig
    from service.errors import QuotaExceeded

    uses = wire(
        state_dir=str(tmp_path / "state"),
        backup_roots=(str(backup_root),),
        projects={"web": ProjectConfig({"backups": 2}), "other": ProjectConfig({})},
    )
    with acting_for("web"):
        uses.volumes.create("site", "local", {}, {})
        uses.volume_data.import_("site", "", tar(*TREE[:2]))
        uses.repositories.create("main", str(backup_root / "main"), "pw")
        assert uses.backups.count("web") == 0
        assert backed_up(uses).status == "completed"
        assert uses.backups.count("web") == 1
        uses.volumes.create("more", "local", {}, {})
        # Two at once against room for one: exactly one starts.
        with ThreadPoolExecutor(2) as pool:
            tried = list(pool.map(lambda v: _start_or_refusal(uses, v), ["site", "more"]))
        assert sorted(type(t).__name__ for t in tried) == ["Backup", "QuotaExceeded"], tried
        started = next(t for t in tried if not isinstance(t, Exception))
        assert ended(lambda: uses.backups.get(started.id)).status == "completed"
        with pytest.raises(QuotaExceeded) as refused:
            uses.backups.start("site", "main")
        assert refused.value.extra == {"quota": "backups", "limit": 2, "used": 2}
        assert uses.backups.count("web") == 2
    assert uses.backups.count("other") == 0


def _start_or_refusal(uses, volume):
    with acting_for("web"):
        try:
            return uses.backups.start(volume, "main")
        except Exception as exc:
            return exc
