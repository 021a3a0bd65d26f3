"""Volume data over the Flask test client and the in-memory engine."""

from __future__ import annotations

import gzip
import io
import tarfile
import threading
import time

import pytest

from service.app import create_app
from service.config import Settings
from service.domain import labels as label
from service.errors import EngineFailure
from tests.contract.engine_contract import make_tar

from .conftest import TOKENS, bearer
from .engine_state import snapshot

TREE = [
    ("html", "dir", None, 0o755),
    ("html/index.html", "file", b"<h1>hi</h1>\n", 0o644),
    ("html/empty", "dir", None, 0o700),
    ("current", "symlink", "html/index.html", 0o777),
    ("secret", "file", b"s3", 0o600),
]


def tar_entries(data: bytes) -> dict:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {
            m.name: (m.type, m.mode & 0o7777, m.linkname, tar.extractfile(m).read() if m.isreg() else b"") for m in tar
        }


def helpers_left(engine) -> list[str]:
    return [c.name for c in engine.containers.values() if c.labels.get(label.ROLE) == "helper"]


@pytest.fixture
def filled(client, as_writer, as_admin, engine):
    assert client.post("/api/v1/volumes", json={"name": "site"}, headers=as_writer).status_code == 201
    r = client.put(
        "/api/v1/volumes/site/archive", data=make_tar(TREE), content_type="application/x-tar", headers=as_admin
    )
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"volume": "site", "path": "/", "entries": 5}
    assert helpers_left(engine) == []
    return "site"


def export(client, headers, name="site", query=""):
    r = client.get(f"/api/v1/volumes/{name}/archive{query}", headers={**headers, "Accept-Encoding": "identity"})
    assert r.status_code == 200, r.data[:300]
    return r


def test_round_trip_through_a_fresh_volume(client, as_reader, as_writer, as_admin, engine, filled):
    out = export(client, as_reader)
    assert out.content_type == "application/x-tar"
    assert 'filename="site.tar"' in out.headers["Content-Disposition"]
    client.post("/api/v1/volumes", json={"name": "restored"}, headers=as_writer)
    assert (
        client.put(
            "/api/v1/volumes/restored/archive", data=out.data, content_type="application/x-tar", headers=as_admin
        ).status_code
        == 200
    )
    again = export(client, as_reader, "restored")
    original, restored = tar_entries(out.data), tar_entries(again.data)
    assert original == restored
    assert original["./html/index.html"][1:] == (0o644, "", b"<h1>hi</h1>\n")
    assert original["./current"][2] == "html/index.html"
    assert original["./html/empty"][1] == 0o700
    assert helpers_left(engine) == []


def test_gzip_on_request_or_in_transit(client, as_reader, filled):
    r = client.get("/api/v1/volumes/site/archive?compression=gzip", headers=as_reader)
    assert r.content_type == "application/gzip"
    assert 'filename="site.tar.gz"' in r.headers["Content-Disposition"]
    assert "./secret" in tar_entries(gzip.decompress(r.data))
    r = client.get("/api/v1/volumes/site/archive", headers={**as_reader, "Accept-Encoding": "gzip"})
    assert r.headers["Content-Encoding"] == "gzip"
    assert "./secret" in tar_entries(gzip.decompress(r.data))
    refused = client.get("/api/v1/volumes/site/archive", headers={**as_reader, "Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in refused.headers  # q=0: the client does not take gzip
    assert "./secret" in tar_entries(refused.data)


def test_export_and_import_at_a_path(client, as_reader, as_writer, as_admin, filled):
    sub = export(client, as_reader, query="?path=html")
    assert set(tar_entries(sub.data)) == {".", "./index.html", "./empty"}
    client.post("/api/v1/volumes", json={"name": "other"}, headers=as_writer)
    r = client.put(
        "/api/v1/volumes/other/archive?path=deep/er", data=sub.data, content_type="application/x-tar", headers=as_admin
    )
    assert r.status_code == 200
    listed = client.get("/api/v1/volumes/other/files?path=/deep/er/", headers=as_reader).get_json()
    assert [e["name"] for e in listed["entries"]] == ["empty", "index.html"]


def test_an_upload_gzipped_is_accepted(client, as_writer, as_admin, as_reader):
    client.post("/api/v1/volumes", json={"name": "gz"}, headers=as_writer)
    r = client.put(
        "/api/v1/volumes/gz/archive",
        data=gzip.compress(make_tar(TREE)),
        content_type="application/gzip",
        headers=as_admin,
    )
    assert r.status_code == 200
    assert client.get("/api/v1/volumes/gz/usage", headers=as_reader).get_json()["files"] == 2


BAD = {
    "absolute": [("/etc/passwd", "file", b"x", 0o644)],
    "dotdot": [("a/../../x", "file", b"x", 0o644)],
    "symlink-out": [("a", "dir", None, 0o755), ("a/l", "symlink", "../../outside", 0o777)],
    "symlink-absolute": [("l", "symlink", "/etc/shadow", 0o777)],
    "link-chain": [("a", "symlink", ".", 0o777), ("a/b", "symlink", "..", 0o777), ("a/b/ESC", "file", b"x", 0o644)],
    # The file d takes the link d/l away; d/l/m -> .. then points at d, and d/n -> ../.. leaves.
    "replaced-link": [
        ("p/q/r/s", "dir", None, 0o755),
        ("d", "dir", None, 0o755),
        ("d/l", "symlink", "../p/q/r/s", 0o777),
        ("d", "file", b"", 0o644),
        ("d", "dir", None, 0o755),
        ("d/l/m", "symlink", "..", 0o777),
        ("d/l/m/n", "symlink", "../..", 0o777),
        ("d/l/m/n/ESC", "file", b"x", 0o644),
    ],
}


@pytest.mark.parametrize("case", sorted(BAD) + ["device", "fifo", "hardlink-out", "not-a-tar", "over-the-cap"])
def test_refused_archives_leave_the_volume_as_it_was(client, as_reader, as_admin, engine, filled, tmp_path, case):
    if case in BAD:
        body = make_tar([("fine", "file", b"ok", 0o644)] + BAD[case])
    elif case == "not-a-tar":
        body = b"this is not a tar" * 100
    elif case == "over-the-cap":
        body = make_tar([("big", "file", b"x" * 5000, 0o644)])
    else:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.addfile(tarfile.TarInfo("fine"), io.BytesIO(b""))
            info = tarfile.TarInfo("node")
            info.type = {"device": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE, "hardlink-out": tarfile.LNKTYPE}[case]
            info.linkname = "../../etc/passwd" if case == "hardlink-out" else ""
            tar.addfile(info)
        body = buf.getvalue()
    before = export(client, as_reader).data
    state = snapshot(engine, tmp_path)
    app = client.application
    app.extensions["dockvol"].volume_data._max = 4096 if case == "over-the-cap" else 10**9
    r = client.put("/api/v1/volumes/site/archive", data=body, content_type="application/x-tar", headers=as_admin)
    assert r.status_code == (413 if case == "over-the-cap" else 422), r.get_json()
    assert r.content_type == "application/problem+json"
    if case in ("link-chain", "replaced-link"):
        assert "leaves the volume" in r.get_json()["detail"]
    assert snapshot(engine, tmp_path) == state
    assert export(client, as_reader).data == before
    assert helpers_left(engine) == []


def test_import_needs_admin_and_a_volume_dockvol_made(client, as_writer, as_admin, engine, filled, tmp_path):
    engine.create_volume("foreign", "local", {}, {})
    before = snapshot(engine, tmp_path)
    assert (
        client.put(
            "/api/v1/volumes/site/archive", data=make_tar(TREE), content_type="application/x-tar", headers=as_writer
        ).status_code
        == 403
    )
    r = client.put(
        "/api/v1/volumes/foreign/archive", data=make_tar(TREE), content_type="application/x-tar", headers=as_admin
    )
    assert r.status_code == 403
    assert snapshot(engine, tmp_path) == before


def test_a_declared_length_over_the_cap_is_413_before_reading(engine):
    app = create_app(Settings(tokens=TOKENS, max_import_bytes=100), engine=engine)
    c = app.test_client()
    c.post("/api/v1/volumes", json={"name": "capped"}, headers=bearer("writer"))
    r = c.put(
        "/api/v1/volumes/capped/archive", data=b"x" * 1000, content_type="application/x-tar", headers=bearer("admin")
    )
    assert r.status_code == 413
    assert engine.calls["create_container"] == 0


def test_more_entries_than_the_settings_allow_is_413_and_changes_nothing(engine):
    app = create_app(Settings(tokens=TOKENS, max_import_entries=10), engine=engine)
    c = app.test_client()
    c.post("/api/v1/volumes", json={"name": "capped"}, headers=bearer("writer"))
    put = lambda n: c.put(
        "/api/v1/volumes/capped/archive",
        data=make_tar([(f"f{i}", "file", b"", 0o644) for i in range(n)]),
        content_type="application/x-tar",
        headers=bearer("admin"),
    )
    assert put(10).status_code == 200
    before = export(c, bearer("reader"), name="capped").data
    r = put(11)
    assert r.status_code == 413, r.get_json()
    assert "more than 10 entries" in r.get_json()["detail"]
    assert export(c, bearer("reader"), name="capped").data == before
    assert helpers_left(engine) == []


def test_clone_is_identical(client, as_reader, as_writer, engine, filled):
    r = client.post(
        "/api/v1/volumes/site/clone", json={"name": "site-copy", "labels": {"copy": "yes"}}, headers=as_writer
    )
    assert r.status_code == 201, r.get_json()
    assert r.headers["Location"] == "/api/v1/volumes/site-copy"
    assert r.get_json()["labels"] == {"copy": "yes"}
    assert tar_entries(export(client, as_reader, "site-copy").data) == tar_entries(export(client, as_reader).data)
    assert helpers_left(engine) == []


def test_clone_to_an_existing_name_is_409_and_changes_neither(client, as_writer, engine, filled, tmp_path):
    client.post("/api/v1/volumes", json={"name": "taken", "labels": {"v": "1"}}, headers=as_writer)
    before = snapshot(engine, tmp_path)
    r = client.post("/api/v1/volumes/site/clone", json={"name": "taken", "labels": {"v": "2"}}, headers=as_writer)
    assert r.status_code == 409
    assert snapshot(engine, tmp_path) == before


def test_a_failed_clone_leaves_no_half_copy(client, as_writer, engine, filled, tmp_path, monkeypatch):
    def broken(*a, **k):
        raise EngineFailure("the engine refused the request")

    before = snapshot(engine, tmp_path)
    monkeypatch.setattr(engine, "put_archive", broken)
    assert client.post("/api/v1/volumes/site/clone", json={"name": "half"}, headers=as_writer).status_code == 502
    assert snapshot(engine, tmp_path) == before


def test_rename_moves_the_content(client, as_reader, as_writer, engine, filled):
    before = tar_entries(export(client, as_reader).data)
    r = client.post("/api/v1/volumes/site/rename", json={"name": "site-v2"}, headers=as_writer)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["name"] == "site-v2"
    assert "site" not in engine.volumes
    assert tar_entries(export(client, as_reader, "site-v2").data) == before


def test_rename_of_a_volume_in_use_is_409_and_changes_nothing(client, as_writer, engine, filled, tmp_path):
    engine.add_container("user", {"site": "/data"})
    before = snapshot(engine, tmp_path)
    r = client.post("/api/v1/volumes/site/rename", json={"name": "site-v2"}, headers=as_writer)
    assert r.status_code == 409
    assert r.get_json()["used_by"][0]["container"] == "user"
    assert snapshot(engine, tmp_path) == before


def test_a_failed_rename_keeps_the_original_and_no_copy(client, as_writer, engine, filled, tmp_path, monkeypatch):
    real_remove = engine.remove_volume

    def refuse_the_original(name):
        if name == "site":
            raise EngineFailure("no")
        real_remove(name)

    before = snapshot(engine, tmp_path)
    monkeypatch.setattr(engine, "remove_volume", refuse_the_original)
    r = client.post("/api/v1/volumes/site/rename", json={"name": "site-v2"}, headers=as_writer)
    assert r.status_code == 502
    assert snapshot(engine, tmp_path) == before


def test_rename_of_a_foreign_volume_is_403(client, as_writer, engine, tmp_path):
    engine.create_volume("foreign", "local", {}, {})
    before = snapshot(engine, tmp_path)
    assert client.post("/api/v1/volumes/foreign/rename", json={"name": "mine"}, headers=as_writer).status_code == 403
    assert snapshot(engine, tmp_path) == before


def test_browse_lists_a_directory_and_downloads_a_file(client, as_reader, engine, filled):
    root = client.get("/api/v1/volumes/site/files", headers=as_reader).get_json()
    assert root["path"] == "/"
    assert {e["name"]: e["type"] for e in root["entries"]} == {
        "current": "symlink",
        "html": "directory",
        "secret": "file",
    }
    assert next(e for e in root["entries"] if e["name"] == "current")["link_target"] == "html/index.html"
    html = client.get("/api/v1/volumes/site/files?path=html", headers=as_reader).get_json()
    assert [(e["name"], e["mode"]) for e in html["entries"]] == [("empty", 0o700), ("index.html", 0o644)]
    r = client.get(
        "/api/v1/volumes/site/files?path=html/index.html", headers={**as_reader, "Accept-Encoding": "identity"}
    )
    assert (r.status_code, r.content_type, r.data) == (200, "application/octet-stream", b"<h1>hi</h1>\n")
    assert r.headers["Content-Length"] == "12"
    assert helpers_left(engine) == []


@pytest.mark.parametrize(
    "query, status",
    [
        ("?path=nothing", 404),
        ("?path=../../etc", 404),
        ("?path=a%00b", 422),
        ("?depth=1", 422),
        ("?path=" + "x" * 256, 404),
    ],
)
def test_browse_errors(client, as_reader, engine, filled, query, status):
    assert client.get(f"/api/v1/volumes/site/files{query}", headers=as_reader).status_code == status
    assert helpers_left(engine) == []


def test_paths_are_read_inside_the_volume(client, as_reader, filled):
    listing = client.get("/api/v1/volumes/site/files?path=../../html/./", headers=as_reader).get_json()
    assert [e["name"] for e in listing["entries"]] == ["empty", "index.html"]


def test_an_import_path_that_cannot_exist_is_422(client, as_admin, engine, filled, tmp_path):
    before = snapshot(engine, tmp_path)
    r = client.put(
        "/api/v1/volumes/site/archive?path=" + "x" * 256,
        data=make_tar(TREE),
        content_type="application/x-tar",
        headers=as_admin,
    )
    assert r.status_code == 422
    assert "path" in r.get_json()["errors"]
    assert snapshot(engine, tmp_path) == before


def test_an_import_at_a_path_that_is_a_file_is_422_and_leaves_no_lock_or_staging_volume(
    client, as_admin, as_writer, engine, filled, tmp_path
):
    before = snapshot(engine, tmp_path)
    r = client.put(
        "/api/v1/volumes/site/archive?path=secret/sub",
        data=make_tar(TREE),
        content_type="application/x-tar",
        headers=as_admin,
    )
    assert r.status_code == 422
    assert "secret is not a directory" in r.get_json()["detail"]
    assert snapshot(engine, tmp_path) == before
    started = time.monotonic()
    assert client.delete("/api/v1/volumes/site", headers=as_writer).status_code == 204  # no lock holds it
    assert time.monotonic() - started < 5


def test_usage_counts_bytes_and_files(client, as_reader, filled):
    assert client.get("/api/v1/volumes/site/usage", headers=as_reader).get_json() == {
        "name": "site",
        "bytes": 14,
        "files": 2,
        "directories": 2,
        "symlinks": 1,
    }


def test_an_aborted_download_removes_its_helper(client, as_reader, as_admin, engine, filled):
    client.put(
        "/api/v1/volumes/site/archive",
        data=make_tar([("big", "file", b"y" * (1 << 20), 0o644)]),
        content_type="application/x-tar",
        headers=as_admin,
    )
    r = client.get("/api/v1/volumes/site/archive", headers={**as_reader, "Accept-Encoding": "identity"}, buffered=False)
    chunks = r.iter_encoded()
    assert next(chunks)
    assert helpers_left(engine) != []
    r.close()
    assert helpers_left(engine) == []


def test_pause_pauses_writers_for_the_copy_and_resumes_them(client, as_reader, as_writer, engine, filled):
    client.post(
        "/api/v1/bindings",
        json={
            "name": "writer",
            "image": "busybox:stable",
            "network": "none",
            "mounts": [{"type": "volume", "source": "site", "target": "/d"}],
        },
        headers=as_writer,
    )
    client.post(
        "/api/v1/bindings",
        json={
            "name": "reader",
            "image": "busybox:stable",
            "network": "none",
            "mounts": [{"type": "volume", "source": "site", "target": "/d", "read_only": True}],
        },
        headers=as_writer,
    )
    states = lambda: {c.name: c.state for c in engine.containers.values() if c.labels.get(label.ROLE) == "binding"}  # noqa: E731
    r = client.get(
        "/api/v1/volumes/site/archive?pause=true", headers={**as_writer, "Accept-Encoding": "identity"}, buffered=False
    )
    assert states() == {"writer": "paused", "reader": "running"}
    b"".join(r.iter_encoded())
    r.close()
    assert states() == {"writer": "running", "reader": "running"}
    assert client.get("/api/v1/volumes/site/archive?pause=true", headers=as_reader).status_code == 403


def test_a_failing_export_still_removes_the_helper_and_resumes_writers(client, as_writer, engine, filled, monkeypatch):
    client.post(
        "/api/v1/bindings",
        json={
            "name": "writer",
            "image": "busybox:stable",
            "network": "none",
            "mounts": [{"type": "volume", "source": "site", "target": "/d"}],
        },
        headers=as_writer,
    )

    def broken(*a, **k):
        raise EngineFailure("the engine refused the request")

    monkeypatch.setattr(engine, "get_archive", broken)
    assert client.get("/api/v1/volumes/site/archive?pause=true", headers=as_writer).status_code == 502
    assert helpers_left(engine) == []
    assert next(c for c in engine.containers.values() if c.name == "writer").state == "running"


def test_export_answers_octet_stream_to_clients_that_ask_for_it(client, as_reader, filled):
    r = client.get(
        "/api/v1/volumes/site/archive",
        headers={**as_reader, "Accept": "application/octet-stream", "Accept-Encoding": "identity"},
    )
    assert r.content_type == "application/octet-stream"
    assert "./secret" in tar_entries(r.data)


@pytest.mark.parametrize("path", ["/archive", "/files", "/usage"])
def test_a_read_racing_a_delete_does_not_bring_the_volume_back(
    client, as_reader, as_writer, engine, filled, monkeypatch, path
):
    """The volume goes between the read's look and its helper: the engine would make it again,
    empty and unlabelled (a volume dockvol then refuses to delete). The read is a 404 instead."""
    helpers = client.application.extensions["dockvol"].volume_data._helpers
    real_open = helpers.open

    def deleted_meanwhile(mounts, *args, **kwargs):
        for volume, _, _ in mounts:
            del engine.volumes[volume]  # as a DELETE by someone else, just now
        return real_open(mounts, *args, **kwargs)

    monkeypatch.setattr(helpers, "open", deleted_meanwhile)
    r = client.get(f"/api/v1/volumes/site{path}", headers={**as_reader, "Accept-Encoding": "identity"})
    assert r.status_code == 404
    assert "site" not in engine.volumes and helpers_left(engine) == []


def test_an_export_pauses_the_writers_the_engine_has_not_those_a_view_remembers(app, client, as_writer, engine, filled):
    """GETs of volume data act on what they read, so they read the engine, not the event-fed view:
    a writer started a moment ago, that the view has not heard of yet, is paused all the same."""
    view = app.extensions["dockvol"].view
    view.start_in_background()
    deadline = time.monotonic() + 5
    while not view.stats()["primed"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    held = threading.Event()
    real_apply = view.apply
    view.apply = lambda event: (held.wait(5), real_apply(event))  # the view hears nothing more for now
    try:
        writer = engine.add_container("direct-writer", {"site": "/d"})
        engine.start_container(writer.id)
        r = client.get(
            "/api/v1/volumes/site/archive?pause=true",
            headers={**as_writer, "Accept-Encoding": "identity"},
            buffered=False,
        )
        assert engine.containers[writer.id].state == "paused"
        b"".join(r.iter_encoded())
        r.close()
        assert engine.containers[writer.id].state == "running"
    finally:
        held.set()
        view.stop()
        engine.down = True


def test_a_path_below_a_file_does_not_exist_for_reads(client, as_admin):
    """The engine fails a read below a file with an error of its own; to a client such a path is
    simply not there (404), for a download, a listing and an export alike."""
    assert client.post("/api/v1/volumes", json={"name": "vol"}, headers=as_admin).status_code == 201
    secret = make_tar([("secret", "file", b"x", 0o644)])
    r = client.put("/api/v1/volumes/vol/archive", data=secret, content_type="application/x-tar", headers=as_admin)
    assert r.status_code == 200
    for url in ("/api/v1/volumes/vol/files?path=secret/sub", "/api/v1/volumes/vol/archive?path=secret/sub/deeper"):
        r = client.get(url, headers=as_admin)
        assert r.status_code == 404 and "does not exist" in r.get_json()["detail"], (url, r.get_json())
