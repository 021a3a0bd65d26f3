"""Hostile archives against PUT /volumes/{name}/archive, under gunicorn and a real engine: link
chains that leave the volume are refused before anything is written, and an archive of many
small entries costs bounded memory and answers 413 past the entries cap."""

from __future__ import annotations

import gzip
import io
import tarfile
import time

import pytest
import requests

from tests.e2e.conftest import service_env
from tests.support import TEST_LABEL, engine_host, unique

from .conftest import ADMIN


def tar_of(entries, compress=False):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for kind, name, arg in entries:
            info = tarfile.TarInfo(name)
            if kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, arg
                tar.addfile(info)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
            else:
                info.size = len(arg)
                tar.addfile(info, io.BytesIO(arg))
    return gzip.compress(buf.getvalue()) if compress else buf.getvalue()


def volume(svc, files):
    name = unique("arch")
    assert (
        requests.post(
            svc.url("/api/v1/volumes"), json={"name": name, "labels": {TEST_LABEL: "1"}}, headers=ADMIN, timeout=30
        ).status_code
        == 201
    )
    put(svc, name, tar_of([("file", n, d) for n, d in files.items()]), 200)
    return name


def put(svc, name, body, status):
    r = requests.put(
        svc.url(f"/api/v1/volumes/{name}/archive"),
        data=body,
        timeout=300,
        headers={**ADMIN, "Content-Type": "application/gzip" if body[:2] == b"\x1f\x8b" else "application/x-tar"},
    )
    assert r.status_code == status, r.text[:500]
    return r


def exported(svc, name):
    r = requests.get(
        svc.url(f"/api/v1/volumes/{name}/archive"), headers={**ADMIN, "Accept-Encoding": "identity"}, timeout=60
    )
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        return {m.name: (m.type, m.linkname) for m in tar}


@pytest.fixture(scope="module")
def svc(service):
    return service


@pytest.mark.parametrize(
    "chain",
    [
        [("sym", "a", "."), ("sym", "a/b", ".."), ("file", "a/b/ESC", b"out")],
        [("sym", "x", "y"), ("sym", "y", ".."), ("file", "x/f", b"out")],
    ],
)
def test_link_chains_out_of_the_volume_are_422_before_anything_is_written(svc, chain):
    name = volume(svc, {"keep.txt": b"kept"})
    before = exported(svc, name)
    r = put(svc, name, tar_of([("file", "fine.txt", b"ok"), *chain]), 422)
    assert "leaves the volume" in r.json()["detail"]
    assert exported(svc, name) == before


def worker_rss(svc) -> dict[int, int]:
    import subprocess

    out = subprocess.run(["ps", "-o", "pid=,rss=", "--ppid", str(svc.proc.pid)], capture_output=True, text=True).stdout
    return {int(p): int(r) for p, r in (line.split() for line in out.splitlines())}


def test_300000_empty_entries_cost_bounded_memory_and_the_cap_answers_413(svc, start_service):
    entries = [("file", f"d{i // 1000}/f{i}", b"") for i in range(300_000)]
    # A FIFO at the very end: the whole archive is read and checked, then refused, never extracted.
    body = tar_of([*entries, ("fifo", "last", None)], compress=True)
    name = volume(svc, {"keep.txt": b"kept"})
    before = worker_rss(svc)
    started = time.monotonic()
    r = put(svc, name, body, 422)
    elapsed = time.monotonic() - started
    after = worker_rss(svc)
    growth = max(after.get(pid, 0) - rss for pid, rss in before.items()) / 1024
    print(
        f"\n300,000 empty entries ({len(body) / 1e6:.1f} MB tar.gz) checked through gunicorn in {elapsed:.1f} s; "
        f"worker RSS growth {growth:.1f} MiB"
    )
    assert "FIFO" in r.json()["detail"]
    assert growth < 64, f"worker grew {growth:.1f} MiB"

    capped = start_service(service_env(engine_host(), DOCKVOL_MAX_IMPORT_ENTRIES="100000"))
    started = time.monotonic()
    r = put(capped, name, body, 413)
    print(f"entries cap 100,000: 413 after {time.monotonic() - started:.1f} s")
    assert "more than 100000 entries" in r.json()["detail"]
    assert sorted(n for n, (kind, _) in exported(svc, name).items() if kind == tarfile.REGTYPE) == ["./keep.txt"]
