"""Volume data (service/domain/volume_data.py), called directly: import, clone, rename, receive
and the reads, and what each refusal or failure leaves alone (docs/design.md sections 3 and 6)."""

from __future__ import annotations

import io
import tarfile
from contextlib import closing

import pytest

from service.domain.volume_data import Download, Listing
from service.errors import Conflict, EngineFailure, Forbidden, InvalidInput, NotFound, TooLarge

from ..engine_state import snapshot
from .conftest import leftovers, spec, tar, volume

TREE = (
    ("html", "dir", None, 0o755),
    ("html/index.html", "file", b"<h1>hi</h1>\n", 0o644),
    ("current", "symlink", "html/index.html", 0o777),
    ("secret", "file", b"s3", 0o600),
)


@pytest.fixture
def site(volumes, data):
    volumes.create("site", "local", {}, {"team": "web"})
    assert data.import_("site", "", tar(*TREE)) == 4
    return "site"


def files(engine, name):
    return snapshot(engine).files[name]


class TestImport:
    def test_lands_every_entry_and_leaves_no_staging_or_helper(self, engine, site):
        content = files(engine, site)
        assert content["html/index.html"][3] == b"<h1>hi</h1>\n"
        assert content["current"][:3] == ("2", 0o777, "html/index.html")
        assert set(engine.volumes) == {site}
        assert leftovers(engine) == []

    def test_at_a_path_makes_the_missing_directories(self, engine, data, site):
        data.import_(site, "deep/er", tar(("f", "file", b"x", 0o644)))
        assert files(engine, site)["deep/er/f"][3] == b"x"

    @pytest.mark.parametrize(
        "entries",
        [
            [("/etc/passwd", "file", b"x", 0o644)],
            [("a/../../x", "file", b"x", 0o644)],
            [("a", "dir", None, 0o755), ("a/l", "symlink", "../../outside", 0o777)],
            [("l", "symlink", "/etc/shadow", 0o777)],
            [("a", "symlink", ".", 0o777), ("a/b", "symlink", "..", 0o777), ("a/b/ESC", "file", b"x", 0o644)],
        ],
        ids=["absolute", "dotdot", "link-out", "link-absolute", "link-chain"],
    )
    def test_an_archive_that_escapes_is_refused_and_the_volume_is_unchanged(
        self, engine, data, site, tmp_path, entries
    ):
        before = snapshot(engine, tmp_path)
        with pytest.raises(InvalidInput):
            data.import_(site, "", tar(("fine", "file", b"ok", 0o644), *entries))
        assert snapshot(engine, tmp_path) == before

    def test_an_archive_over_the_cap_is_too_large_and_changes_nothing(self, engine, data, site, tmp_path):
        data._max = 4096
        before = snapshot(engine, tmp_path)
        with pytest.raises(TooLarge):
            data.import_(site, "", tar(("big", "file", b"x" * 5000, 0o644)))
        assert snapshot(engine, tmp_path) == before

    def test_a_volume_dockvol_did_not_make_is_forbidden_and_unchanged(self, engine, data, tmp_path):
        engine.create_volume("theirs", "local", {}, {})
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden):
            data.import_("theirs", "", tar(*TREE))
        assert snapshot(engine, tmp_path) == before

    def test_a_path_that_is_a_file_is_invalid_and_changes_nothing(self, engine, data, site, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(InvalidInput, match="not a directory"):
            data.import_(site, "secret", tar(("f", "file", b"x", 0o644)))
        assert snapshot(engine, tmp_path) == before

    def test_a_missing_volume_is_not_found(self, engine, data, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(NotFound):
            data.import_("ghost", "", tar(*TREE))
        assert snapshot(engine, tmp_path) == before


class TestClone:
    def test_copies_every_file_with_the_new_labels_and_leaves_the_source(self, engine, data, site):
        before = snapshot(engine)
        copy = data.clone(site, "site-copy", {"copy": "yes"}, pause=False)
        assert (copy.name, copy.labels, copy.managed) == ("site-copy", {"copy": "yes"}, True)
        after = snapshot(engine)
        assert after.files["site-copy"] == after.files[site] == before.files[site]
        assert after.volumes[site] == before.volumes[site]
        assert leftovers(engine) == []

    def test_to_an_existing_name_is_a_conflict_and_changes_neither(self, volumes, engine, data, site, tmp_path):
        volumes.create("taken", "local", {}, {})
        before = snapshot(engine, tmp_path)
        with pytest.raises(Conflict, match="taken exists already"):
            data.clone(site, "taken", {}, pause=False)
        assert snapshot(engine, tmp_path) == before

    def test_of_a_missing_volume_is_not_found_and_makes_nothing(self, engine, data, site, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(NotFound):
            data.clone("ghost", "ghost-copy", {}, pause=False)
        assert snapshot(engine, tmp_path) == before

    def test_a_failed_copy_leaves_no_half_copy_and_the_source_as_it_was(
        self, engine, data, site, tmp_path, monkeypatch
    ):
        def broken(*a, **k):
            raise EngineFailure("the engine refused the request")

        monkeypatch.setattr(engine, "put_archive", broken)
        before = snapshot(engine, tmp_path)
        with pytest.raises(EngineFailure):
            data.clone(site, "half", {}, pause=False)
        assert snapshot(engine, tmp_path) == before

    def test_pause_pauses_only_running_writers_and_resumes_them(self, bindings, engine, data, site, monkeypatch):
        bindings.create(spec("writer", mounts=(volume("/d", site),)))
        bindings.create(spec("reader", mounts=(volume("/d", site, read_only=True),)))
        seen = {}
        real_get = engine.get_archive

        def look(*a, **k):
            seen.update({c.name: c.state for c in engine.containers.values() if c.name in ("writer", "reader")})
            return real_get(*a, **k)

        monkeypatch.setattr(engine, "get_archive", look)
        data.clone(site, "snap", {}, pause=True)
        assert seen == {"writer": "paused", "reader": "running"}
        assert {c.name: c.state for c in engine.containers.values()} == {"writer": "running", "reader": "running"}


class TestRename:
    def test_moves_content_and_labels_and_removes_the_original(self, engine, data, site):
        before = snapshot(engine)
        renamed = data.rename(site, "site-v2")
        assert (renamed.name, renamed.labels) == ("site-v2", {"team": "web"})
        after = snapshot(engine)
        assert set(after.volumes) == {"site-v2"}
        assert after.files["site-v2"] == before.files[site]
        assert leftovers(engine) == []

    def test_a_volume_in_use_is_a_conflict_naming_its_user_and_nothing_changes(self, engine, data, site, tmp_path):
        engine.add_container("user", {site: "/data"})
        before = snapshot(engine, tmp_path)
        with pytest.raises(Conflict, match="in use by user"):
            data.rename(site, "site-v2")
        assert snapshot(engine, tmp_path) == before

    def test_to_an_existing_name_is_a_conflict_and_changes_neither(self, volumes, engine, data, site, tmp_path):
        volumes.create("taken", "local", {}, {})
        before = snapshot(engine, tmp_path)
        with pytest.raises(Conflict):
            data.rename(site, "taken")
        assert snapshot(engine, tmp_path) == before

    def test_a_volume_dockvol_did_not_make_is_forbidden_and_stays(self, engine, data, tmp_path):
        engine.create_volume("theirs", "local", {}, {})
        before = snapshot(engine, tmp_path)
        with pytest.raises(Forbidden):
            data.rename("theirs", "mine")
        assert snapshot(engine, tmp_path) == before

    def test_when_the_original_cannot_be_removed_it_stays_and_the_copy_goes(
        self, engine, data, site, tmp_path, monkeypatch
    ):
        real_remove = engine.remove_volume

        def refuse_the_original(name):
            if name == site:
                raise EngineFailure("the engine refused the request")
            real_remove(name)

        monkeypatch.setattr(engine, "remove_volume", refuse_the_original)
        before = snapshot(engine, tmp_path)
        with pytest.raises(EngineFailure):
            data.rename(site, "site-v2")
        assert snapshot(engine, tmp_path) == before


class TestReceive:
    def test_a_new_volume_filled_from_the_archive(self, engine, data):
        received = data.receive("copy", {"from": "node-2"}, lambda: tar(*TREE))
        assert (received.name, received.labels) == ("copy", {"from": "node-2"})
        assert files(engine, "copy")["secret"][3] == b"s3"
        assert leftovers(engine) == []

    def test_an_existing_name_is_a_conflict_and_stays(self, engine, data, site, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(Conflict):
            data.receive(site, {}, lambda: tar(("x", "file", b"x", 0o644)))
        assert snapshot(engine, tmp_path) == before

    def test_an_archive_that_escapes_makes_nothing(self, engine, data, site, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(InvalidInput):
            data.receive("copy", {}, lambda: tar(("a", "symlink", "..", 0o777), ("a/x", "file", b"x", 0o644)))
        assert snapshot(engine, tmp_path) == before


class TestReads:
    def test_export_files_and_usage_change_nothing_and_leave_no_helper(self, engine, data, site, tmp_path):
        before = snapshot(engine, tmp_path)
        download = data.export(site, "", pause=False)
        with closing(download.body):
            exported = b"".join(download.body)
        listing = data.files(site, "html")
        assert isinstance(listing, Listing) and [e.name for e in listing.entries] == ["index.html"]
        one = data.files(site, "secret")
        assert isinstance(one, Download)
        with closing(one.body):
            assert b"".join(one.body) == b"s3"
        usage = data.usage(site)
        assert (usage.files, usage.directories, usage.symlinks, usage.bytes) == (2, 1, 1, 14)
        assert snapshot(engine, tmp_path) == before
        with tarfile.open(fileobj=io.BytesIO(exported)) as exported_tar:
            assert sorted(exported_tar.getnames()) == [".", "./current", "./html", "./html/index.html", "./secret"]

    def test_a_missing_path_is_not_found_and_leaves_no_helper(self, engine, data, site, tmp_path):
        before = snapshot(engine, tmp_path)
        with pytest.raises(NotFound):
            data.files(site, "nothing")
        with pytest.raises(NotFound):
            data.export(site, "nothing", pause=False)
        assert snapshot(engine, tmp_path) == before
