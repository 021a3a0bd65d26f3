"""Backups end to end (DESIGN.md section 12): dockvol under gunicorn, the real engine, restic and
a local repository. Back up, change, back up again (deduplicated), restore into a new volume;
another dockvol attaches the repository with its password and restores from it; another
project's backups are missing ones."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.support import IMAGE, engine_host, tar_of, unique

from .conftest import ADMIN, READER, WRITER, auth, backup_env, service_env
from .test_volume_data_http import export, new_volume, snapshot

PASSWORD = "correct horse battery staple"
# A volume restic cuts into several chunks (0.5 to 8 MiB each), with small files around it.
FILL = (
    "mkdir -p /v/html /v/empty && echo hi > /v/html/index.html && chown 1000:1001 /v/html/index.html"
    " && ln -s html/index.html /v/current && dd if=/dev/urandom of=/v/blob bs=1M count=12 2>/dev/null"
)


def ended(service, url, headers=READER, within=120.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        r = requests.get(service.url(url), headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        if r.json()["status"] != "running":
            return r.json()
        time.sleep(0.2)
    raise AssertionError(f"{url}: still running after {within} s")


def back_up(service, volume, repository):
    r = requests.post(
        service.url("/api/v1/backups"), json={"volume": volume, "repository": repository}, headers=WRITER, timeout=60
    )
    assert r.status_code == 202, r.text
    done = ended(service, r.headers["Location"])
    assert done["status"] == "completed", done
    return done


def restore(service, backup, volume, headers=ADMIN):
    r = requests.post(
        service.url("/api/v1/restores"), json={"backup": backup, "volume": volume}, headers=headers, timeout=60
    )
    assert r.status_code == 202, r.text
    return ended(service, r.headers["Location"], headers)


def new_repository(service, path, password=PASSWORD, name=None):
    name = name or unique("repo").removeprefix("dvtest-").lower()
    r = requests.post(
        service.url("/api/v1/repositories"),
        json={"name": name, "path": str(path), "password": password},
        headers=ADMIN,
        timeout=60,
    )
    return name, r


@pytest.fixture
def filled(service, sdk):
    name = new_volume(service)
    sdk.containers.run(
        IMAGE, ["sh", "-c", FILL], remove=True, network_mode="none", volumes={name: {"bind": "/v", "mode": "rw"}}
    )
    return name


def test_back_up_change_back_up_and_restore_into_a_new_volume(service, filled, backup_root, sdk):
    repo, made = new_repository(service, backup_root / unique("r"))
    assert made.status_code == 201, made.text
    before = snapshot(export(service, filled))
    first = back_up(service, filled, repo)
    assert first["size_bytes"] > 12 << 20 and first["added_bytes"] > 12 << 20

    tar = tar_of({"html/index.html": b"changed\n"})
    r = requests.put(service.url(f"/api/v1/volumes/{filled}/archive"), data=tar, headers=ADMIN, timeout=60)
    assert r.status_code == 200, r.text
    second = back_up(service, filled, repo)
    assert second["added_bytes"] < second["size_bytes"] / 3, second  # the blob's chunks: deduplicated

    listed = requests.get(service.url("/api/v1/backups"), params={"volume": filled}, headers=READER, timeout=60)
    assert [b["id"] for b in listed.json()] == [second["id"], first["id"]]

    copy = unique("restored")
    done = restore(service, first["id"], copy)
    assert done["status"] == "completed", done
    assert snapshot(export(service, copy)) == before  # modes, owners, links, the empty directory
    assert sdk.volumes.get(copy).attrs["Labels"]["dockvol.project"] == "default"
    archive = requests.get(service.url(f"/api/v1/backups/{first['id']}/archive"), headers=READER, timeout=60)
    assert snapshot(archive.content) == before
    again = requests.post(
        service.url("/api/v1/restores"), json={"backup": first["id"], "volume": copy}, headers=ADMIN, timeout=60
    )
    assert again.status_code == 409


def test_another_dockvol_attaches_the_repository_and_restores(service, start_service, filled, backup_root, tmp_path):
    path = backup_root / unique("shared")
    repo, made = new_repository(service, path)
    assert made.status_code == 201, made.text
    done = back_up(service, filled, repo)
    before = snapshot(export(service, filled))

    tokens = {"e2e-admin": {"scopes": ["admin"], "project": "*"}, "e2e-web": {"scopes": ["admin"], "project": "web"}}
    other = start_service(
        service_env(
            engine_host(),
            DOCKVOL_TOKENS=json.dumps(tokens),
            DOCKVOL_PROJECTS=json.dumps({"web": {}}),
            **backup_env(backup_root, tmp_path / "other-state"),
        )
    )
    _, wrong = new_repository(other, path, "not the password", "found")
    assert wrong.status_code == 422 and wrong.json()["errors"] == {
        "password": ["the password opens none of the repository's keys"]
    }
    assert requests.get(other.url("/api/v1/repositories"), headers=ADMIN, timeout=30).json() == []
    _, attached = new_repository(other, path, PASSWORD, "found")
    assert attached.status_code == 201, attached.text
    assert attached.json()["status"]["backups"] == 1

    listed = requests.get(other.url("/api/v1/backups"), headers=ADMIN, timeout=60).json()
    assert [(b["id"], b["volume"], b["repository"], b["status"]) for b in listed] == [
        (done["id"], filled, "found", "completed")
    ]
    copy = unique("attached")
    assert restore(other, done["id"], copy)["status"] == "completed"
    assert snapshot(export(service, copy)) == before

    web = auth("e2e-web")  # another project: its backups and repositories are missing ones
    assert requests.get(other.url(f"/api/v1/backups/{done['id']}"), headers=web, timeout=30).status_code == 404
    assert requests.get(other.url("/api/v1/repositories/found"), headers=web, timeout=30).status_code == 404
    assert requests.get(other.url("/api/v1/backups"), headers=web, timeout=30).json() == []
    refused = requests.post(
        other.url("/api/v1/restores"), json={"backup": done["id"], "volume": unique("x")}, headers=web, timeout=30
    )
    assert refused.status_code == 404


def test_a_backup_is_told_in_events_under_gunicorn(service, filled, backup_root):
    """The records feed runs in gunicorn's workers (started with the view): a run is heard from
    its start to its end."""
    import subprocess

    repo, made = new_repository(service, backup_root / unique("ev"))
    assert made.status_code == 201, made.text
    curl = subprocess.Popen(
        ["curl", "-sN", "--max-time", "60", "-H", f"Authorization: {READER['Authorization']}",
         service.url("/api/v1/events?resource=backup")],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        time.sleep(1)  # connected
        back_up(service, filled, repo)
        heard, event = [], None
        for line in curl.stdout:
            if line.startswith("event: "):
                event = line.split(": ", 1)[1].strip()
            if line.startswith("data: "):
                data = json.loads(line[6:])
                heard.append((event, data["object"]["status"]))
                if data["object"]["status"] == "completed":
                    break
        assert heard[0][0] == "created" and heard[-1][1] == "completed", heard
    finally:
        curl.kill()
        curl.wait()
        curl.stdout.close()
