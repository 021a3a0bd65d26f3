"""Hostile archives against PUT /volumes/{name}/archive, under gunicorn and a real engine: link
chains that leave the volume, and archives that Python's tarfile and the engine's reader would read
differently, are refused before anything is written; an archive of many small entries costs
bounded memory and answers 413 past the entries cap."""

from __future__ import annotations

import gzip
import io
import subprocess
import tarfile
import time

import pytest
import requests

from tests.e2e.conftest import service_env
from tests.support import TEST_LABEL, engine_host, unique
from tests.unit.test_archives import END, block, pax, symlink

from .conftest import ADMIN


def tar_of(entries, compress=False):
    """entries: (kind, name, arg) with kind file (arg: bytes), sym or hard (arg: target), dir, fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for kind, name, arg in entries:
            info = tarfile.TarInfo(name)
            if kind in ("sym", "hard"):
                info.type, info.linkname = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[kind], arg
            elif kind in ("dir", "fifo"):
                info.type = {"dir": tarfile.DIRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            else:
                info.size = len(arg)
            tar.addfile(info, io.BytesIO(arg) if kind == "file" else None)
    return gzip.compress(buf.getvalue()) if compress else buf.getvalue()


@pytest.fixture(scope="module")
def svc(service, sdk):  # sdk: its teardown removes what a failed test left behind
    return service


@pytest.fixture
def volume(svc):
    name = unique("arch")
    body = {"name": name, "labels": {TEST_LABEL: "1"}}
    r = requests.post(svc.url("/api/v1/volumes"), json=body, headers=ADMIN, timeout=30)
    assert r.status_code == 201, r.text
    put(svc, name, tar_of([("file", "keep.txt", b"kept")]), 200)
    yield name
    assert requests.delete(svc.url(f"/api/v1/volumes/{name}"), headers=ADMIN, timeout=30).status_code == 204


def put(svc, name, body, status):
    kind = "application/gzip" if body[:2] == b"\x1f\x8b" else "application/x-tar"
    r = requests.put(
        svc.url(f"/api/v1/volumes/{name}/archive"), data=body, timeout=300, headers={**ADMIN, "Content-Type": kind}
    )
    assert r.status_code == status, r.text[:500]
    return r


def exported(svc, name):
    r = requests.get(
        svc.url(f"/api/v1/volumes/{name}/archive"), headers={**ADMIN, "Accept-Encoding": "identity"}, timeout=60
    )
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        return {m.name: (m.type, m.linkname, tar.extractfile(m).read() if m.isreg() else None) for m in tar}


FINE = block(tarfile.TarInfo("fine"))
EVIL = symlink("evil", "/etc")
ATTACKS = {
    # Each one wrote outside the volume, or an absolute symlink into it, on engine 20.10.
    "chain": tar_of([("sym", "a", "."), ("sym", "a/b", ".."), ("file", "a/b/ESC", b"out")]),
    "chain-of-two": tar_of([("sym", "x", "y"), ("sym", "y", ".."), ("file", "x/f", b"out")]),
    "hard-link-to-a-symlink": tar_of([("sym", "d/up", ".."), ("hard", "h", "d/up"), ("file", "h/ESC", b"out")]),
    "link-under-a-replaced-directory": tar_of(
        [
            ("dir", "p/q/r/s", None),
            ("dir", "d", None),
            ("sym", "d/l", "../p/q/r/s"),
            ("file", "d", b""),
            ("dir", "d", None),
            ("sym", "d/l/m", ".."),
            ("sym", "d/l/m/n", "../.."),
            ("file", "d/l/m/n/ESC", b"out"),
        ]
    ),
    "global-pax-header": pax({"path": "benign", "linkpath": "benign"}, tarfile.XGLTYPE) + block(EVIL) + END,
    "nul-in-a-checksum": FINE + block(EVIL)[:148] + b"\0" + block(EVIL)[149:] + END,
    "second-gzip-stream": gzip.compress(FINE) + gzip.compress(block(EVIL) + END),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attacks_are_422_before_anything_is_written(svc, volume, attack):
    before = exported(svc, volume)
    r = put(svc, volume, ATTACKS[attack], 422)
    assert r.headers["Content-Type"] == "application/problem+json"
    print(f"\n{attack}: {r.json()['detail']}")
    assert exported(svc, volume) == before


def test_what_reaches_the_engine_is_what_was_checked(svc, volume):
    """Two extended headers: Python applies the first's names over the second's, the engine's
    reader only the second (evil -> /etc). The engine gets the checked copy: benign -> fine."""
    archive = pax({"path": "benign", "linkpath": "fine"}) + pax({"path": "evil", "linkpath": "/etc"})
    put(svc, volume, archive + block(symlink("x", "x")) + END, 200)
    content = exported(svc, volume)
    assert content["./benign"][:2] == (tarfile.SYMTYPE, "fine")
    assert not [name for name in content if "evil" in name]


def worker_rss(svc) -> dict[int, int]:
    """KiB of resident memory of each gunicorn worker (the master's children)."""
    out = subprocess.run(["pgrep", "-P", str(svc.proc.pid)], capture_output=True, text=True).stdout
    rss = {}
    for pid in map(int, out.split()):
        with open(f"/proc/{pid}/status") as status:
            rss[pid] = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return rss


def test_300000_empty_entries_cost_bounded_memory_and_the_cap_answers_413(svc, volume, start_service):
    entries = [("file", f"d{i // 1000}/f{i}", b"") for i in range(300_000)]
    # A FIFO at the very end: the whole archive is read and checked, then refused, never extracted.
    body = tar_of([*entries, ("fifo", "last", None)], compress=True)
    before = worker_rss(svc)
    started = time.monotonic()
    r = put(svc, volume, body, 422)
    elapsed = time.monotonic() - started
    after = worker_rss(svc)
    growth = max(after.get(pid, 0) - rss for pid, rss in before.items()) / 1024
    print(
        f"\n300,000 empty entries ({len(body) / 1e6:.1f} MB tar.gz) checked through gunicorn in {elapsed:.1f} s; "
        f"worker RSS {', '.join(f'{before[p] / 1024:.0f} -> {after.get(p, 0) / 1024:.0f}' for p in before)} MiB, "
        f"growth {growth:.1f} MiB"
    )
    assert "FIFO" in r.json()["detail"]
    assert growth < 64, f"worker grew {growth:.1f} MiB"

    capped = start_service(service_env(engine_host(), DOCKVOL_MAX_IMPORT_ENTRIES="10000"))
    started = time.monotonic()
    r = put(capped, volume, body, 413)
    elapsed = time.monotonic() - started
    print(f"entries cap 10,000: 413 after {elapsed:.1f} s")
    assert "more than 10000 entries" in r.json()["detail"]
    assert elapsed < 10
    assert exported(svc, volume) == {".": (tarfile.DIRTYPE, "", None), "./keep.txt": (tarfile.REGTYPE, "", b"kept")}
