"""Volume data over HTTP against gunicorn and a real engine: round trips, clone, rename, browse,
usage, refused archives, and helpers that never outlive their request."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import tarfile
import time

import pytest
import requests

from tests.contract.engine_contract import make_tar
from tests.support import IMAGE, TEST_LABEL, unique

from .conftest import ADMIN, READER, WRITER

FILL = (
    "mkdir -p /v/html/empty /v/deep/a/b && echo hi > /v/html/index.html && chmod 640 /v/html/index.html"
    " && chown 1000:1001 /v/html/index.html && ln -s html/index.html /v/current && chmod 700 /v/html/empty"
    " && dd if=/dev/urandom of=/v/deep/a/b/blob bs=1024 count=3000 2>/dev/null && touch /v/.hidden"
)
PLAIN = {**READER, "Accept-Encoding": "identity"}


def snapshot(tar_bytes: bytes) -> dict:
    """Every entry's type, mode, owner, link target and content digest."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for m in tar:
            digest = hashlib.sha256(tar.extractfile(m).read()).hexdigest() if m.isreg() else None
            out[m.name] = (m.type, m.mode & 0o7777, m.uid, m.gid, m.linkname, digest)
    return out


def new_volume(service, name=None):
    name = name or unique("data")
    r = requests.post(
        service.url("/api/v1/volumes"), json={"name": name, "labels": {TEST_LABEL: "e2e"}}, headers=WRITER, timeout=30
    )
    assert r.status_code == 201, r.text
    return name


def export(service, name, **params):
    r = requests.get(service.url(f"/api/v1/volumes/{name}/archive"), params=params, headers=PLAIN, timeout=120)
    assert r.status_code == 200, r.text
    return r.content


def helpers(sdk) -> list[str]:
    """Names of the helper containers there now (one engine call: none can vanish mid-way)."""
    return [c["Names"][0] for c in sdk.api.containers(all=True, filters={"label": "dockvol.role=helper"})]


@pytest.fixture
def filled(service, sdk):
    name = new_volume(service)
    sdk.containers.run(
        IMAGE,
        ["sh", "-c", FILL],
        remove=True,
        network_mode="none",
        volumes={name: {"bind": "/v", "mode": "rw"}},
        labels={TEST_LABEL: "e2e"},
    )
    return name


def test_round_trip_keeps_content_modes_owners_and_links(service, sdk, filled):
    original = export(service, filled)
    fresh = new_volume(service)
    r = requests.put(service.url(f"/api/v1/volumes/{fresh}/archive"), data=original, headers=ADMIN, timeout=120)
    assert r.status_code == 200, r.text
    before, after = snapshot(original), snapshot(export(service, fresh))
    assert before == after
    assert before["./html/index.html"][1:4] == (0o640, 1000, 1001)
    assert before["./current"][4] == "html/index.html"
    assert before["./html/empty"][1] == 0o700
    assert helpers(sdk) == []


def test_clone_is_identical_and_rename_moves_it(service, sdk, filled):
    copy = unique("copy")
    r = requests.post(
        service.url(f"/api/v1/volumes/{filled}/clone"),
        json={"name": copy, "labels": {TEST_LABEL: "e2e"}},
        headers=WRITER,
        timeout=120,
    )
    assert r.status_code == 201, r.text
    original = snapshot(export(service, filled))
    assert snapshot(export(service, copy)) == original
    renamed = unique("renamed")
    r = requests.post(
        service.url(f"/api/v1/volumes/{copy}/rename"), json={"name": renamed}, headers=WRITER, timeout=120
    )
    assert r.status_code == 200, r.text
    assert requests.get(service.url(f"/api/v1/volumes/{copy}"), headers=READER, timeout=30).status_code == 404
    assert snapshot(export(service, renamed)) == original
    assert helpers(sdk) == []


def test_browse_and_usage(service, sdk, filled):
    listing = requests.get(service.url(f"/api/v1/volumes/{filled}/files"), headers=READER, timeout=30).json()
    assert {e["name"]: e["type"] for e in listing["entries"]} == {
        ".hidden": "file",
        "current": "symlink",
        "deep": "directory",
        "html": "directory",
    }
    r = requests.get(
        service.url(f"/api/v1/volumes/{filled}/files"), params={"path": "html/index.html"}, headers=PLAIN, timeout=30
    )
    assert r.content == b"hi\n" and r.headers["Content-Type"] == "application/octet-stream"
    usage = requests.get(service.url(f"/api/v1/volumes/{filled}/usage"), headers=READER, timeout=60).json()
    assert usage == {"name": filled, "bytes": 3000 * 1024 + 3, "files": 3, "directories": 5, "symlinks": 1}
    assert helpers(sdk) == []


@pytest.mark.parametrize(
    "entries, status",
    [
        ([("/abs", "file", b"x", 0o644)], 422),
        ([("a/../../x", "file", b"x", 0o644)], 422),
        ([("l", "symlink", "../../../etc", 0o777)], 422),
        ([("big", "file", b"z" * 20000, 0o644)], 413),
    ],
)
def test_refused_archives_leave_the_volume_unchanged(start_service, bind_root, sdk, entries, status):
    from tests.support import engine_host

    from .conftest import service_env

    svc = start_service(service_env(engine_host(), DOCKVOL_MAX_IMPORT_BYTES="16384"))
    name = new_volume(svc)
    requests.put(
        svc.url(f"/api/v1/volumes/{name}/archive"),
        data=make_tar([("keep", "file", b"k", 0o644)]),
        headers=ADMIN,
        timeout=30,
    )
    before = snapshot(export(svc, name))
    r = requests.put(
        svc.url(f"/api/v1/volumes/{name}/archive"),
        data=make_tar([("fine", "file", b"f", 0o644), *entries]),
        headers=ADMIN,
        timeout=30,
    )
    assert r.status_code == status, r.text
    assert snapshot(export(svc, name)) == before
    assert helpers(sdk) == []


def test_a_device_node_is_refused(service, sdk, filled):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("null")
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        tar.addfile(info)
    before = snapshot(export(service, filled))
    r = requests.put(service.url(f"/api/v1/volumes/{filled}/archive"), data=buf.getvalue(), headers=ADMIN, timeout=30)
    assert r.status_code == 422
    assert snapshot(export(service, filled)) == before


def wait_until(check, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_an_aborted_download_leaves_no_helper(service, sdk, filled):
    r = requests.get(service.url(f"/api/v1/volumes/{filled}/archive"), headers=PLAIN, stream=True, timeout=60)
    assert r.raw.read(64 * 1024)
    assert helpers(sdk) != []
    r.close()  # the client goes away halfway
    assert wait_until(lambda: helpers(sdk) == []), helpers(sdk)


def test_a_killed_worker_leaves_no_helper(start_service, sdk, bind_root):
    from tests.support import engine_host

    from .conftest import service_env

    svc = start_service(service_env(engine_host(), DOCKVOL_WORKERS="1"))
    name = new_volume(svc)
    # 64 MiB: more than loopback's buffers hold, so the export is still running (its helper there)
    # when the client has read its first 64 KiB; with 3 MiB a quick server had finished already.
    sdk.containers.run(
        IMAGE,
        ["sh", "-c", FILL + " && dd if=/dev/zero of=/v/big bs=1M count=64 2>/dev/null"],
        remove=True,
        network_mode="none",
        volumes={name: {"bind": "/v", "mode": "rw"}},
        labels={TEST_LABEL: "e2e"},
    )
    r = requests.get(svc.url(f"/api/v1/volumes/{name}/archive"), headers=PLAIN, stream=True, timeout=60)
    assert r.raw.read(64 * 1024)
    assert helpers(sdk) != []
    with open(f"/proc/{svc.proc.pid}/task/{svc.proc.pid}/children") as f:
        (worker,) = [int(p) for p in f.read().split()]
    os.kill(worker, signal.SIGKILL)
    r.close()
    assert wait_until(lambda: helpers(sdk) == []), helpers(sdk)
    assert f"worker {worker} left cleanly" not in svc.log_path.read_text()  # the master's process swept


def test_workers_that_stop_gracefully_clean_up_after_themselves(start_service):
    """A worker that stops gracefully removes its own helpers and live metrics, so the master
    starts no process to do it (that process is for killed workers, the test above)."""
    from tests.support import engine_host

    from .conftest import service_env

    svc = start_service(service_env(engine_host(), DOCKVOL_WORKERS="2"))
    metrics = svc.log_path.parent / "metrics"

    def workers() -> list[int]:
        with open(f"/proc/{svc.proc.pid}/task/{svc.proc.pid}/children") as f:
            return [int(p) for p in f.read().split()]

    assert wait_until(
        lambda: len(workers()) == 2 and all((metrics / f"gauge_livesum_{p}.db").exists() for p in workers())
    )
    pids = workers()
    new_volume(svc)
    svc.stop()
    log = svc.log_path.read_text()
    for pid in pids:
        assert f"worker {pid} left cleanly" in log, log[-2000:]
        assert not (metrics / f"gauge_livesum_{pid}.db").exists()
    assert not list(metrics.glob("left-cleanly-*"))
