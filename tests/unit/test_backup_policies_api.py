"""/api/v1/backup-policies over HTTP, with restic against a real local repository (one `restic
init` for the module: each test attaches a copy of it)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time

import pytest

from service.app import create_app
from tests.contract.engine_contract import make_tar

pytestmark = pytest.mark.slow  # restic derives its key at every call: about half a second each

BODY = {
    "name": "nightly",
    "repository": "offsite",
    "volumes": ["site"],
    "schedule": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"},
    "retention": {"keep_last": 2},
}


@pytest.fixture(scope="module")
def initialised(tmp_path_factory):
    """One empty restic repository, made once (restic init costs seconds)."""
    root = tmp_path_factory.mktemp("restic")
    (root / "password").write_text("sesame")
    subprocess.run(
        ["restic", "init", "--quiet", f"--repo={root / 'repo'}", f"--password-file={root / 'password'}"],
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(root)},
    )
    return root / "repo"


@pytest.fixture
def settings(settings, tmp_path):
    (tmp_path / "backups").mkdir()
    return dataclasses.replace(settings, backup_roots=(str(tmp_path / "backups"),))


@pytest.fixture
def client(engine, settings, initialised, tmp_path, as_admin, as_writer):
    client = create_app(settings, engine=engine).test_client()
    shutil.copytree(initialised, tmp_path / "backups" / "offsite")
    body = {"name": "offsite", "path": str(tmp_path / "backups" / "offsite"), "password": "sesame"}
    assert client.post("/api/v1/repositories", json=body, headers=as_admin).status_code == 201
    assert client.post("/api/v1/volumes", json={"name": "site"}, headers=as_writer).status_code == 201
    tar = make_tar([("a.txt", "file", b"hello", 0o644)])
    assert client.put("/api/v1/volumes/site/archive", data=tar, headers=as_admin).status_code == 200
    return client


def ended(client, urls, headers):
    for _ in range(600):
        got = [client.get(u, headers=headers).json for u in urls]
        if all(g["status"] != "running" for g in got):
            return got
        time.sleep(0.05)
    raise AssertionError(f"{urls} still running")


def test_a_policy_is_made_by_a_writer_and_shows_its_next_runs_with_their_offset(client, as_writer, as_reader):
    assert client.post("/api/v1/backup-policies", json=BODY, headers=as_reader).status_code == 403
    made = client.post("/api/v1/backup-policies", json=BODY, headers=as_writer)
    assert made.status_code == 201, made.json
    assert made.headers["Location"] == "/api/v1/backup-policies/nightly" and made.headers["ETag"]
    doc = made.json
    assert doc["schedule"] == {"cron": "30 2 * * *", "timezone": "Europe/Berlin", "jitter_seconds": 0}
    assert doc["project"] == "default" and doc["paused"] is False and doc["starting_deadline_seconds"] == 3600
    assert doc["retention"]["keep_last"] == 2 and doc["last_run"] is None and doc["selector"] is None
    assert len(doc["next_runs"]) == 3
    assert all(t[11:19] == "02:30:00" and t[19:] in ("+01:00", "+02:00") for t in doc["next_runs"])
    assert client.post("/api/v1/backup-policies", json=BODY, headers=as_writer).status_code == 409
    listed = client.get("/api/v1/backup-policies", headers=as_reader).json
    assert [p["name"] for p in listed] == ["nightly"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedule": {"cron": "61 2 * * *"}}, "schedule.cron"),
        ({"schedule": {"cron": "30 2 * * *", "timezone": "Mars/Olympus"}}, "schedule.timezone"),
        ({"repository": "nowhere"}, "repository"),
        ({"selector": {"labels": ["tier=db"]}}, "volumes"),
        ({"retention": {"keep_within": "1w"}}, "retention"),
        ({"quiesce": "stop"}, "quiesce"),
    ],
)
def test_what_does_not_read_is_422_naming_its_field(client, as_writer, change, field):
    answer = client.post("/api/v1/backup-policies", json={**BODY, **change}, headers=as_writer)
    assert answer.status_code == 422, answer.json
    assert field.split(".")[0] in str(answer.json)
    assert client.get("/api/v1/backup-policies/nightly", headers=as_writer).status_code == 404


def test_put_holds_if_match_and_delete_keeps_the_backups(client, as_writer):
    made = client.post("/api/v1/backup-policies", json=BODY, headers=as_writer)
    etag = made.headers["ETag"]
    paused = {**BODY, "paused": True}
    stale = client.put("/api/v1/backup-policies/nightly", json=paused, headers={**as_writer, "If-Match": '"old"'})
    assert stale.status_code == 412
    changed = client.put("/api/v1/backup-policies/nightly", json=paused, headers={**as_writer, "If-Match": etag})
    assert changed.status_code == 200 and changed.json["paused"] is True and changed.json["next_runs"] == []
    assert changed.headers["ETag"] != etag
    renamed = client.put("/api/v1/backup-policies/nightly", json={**paused, "name": "other"}, headers=as_writer)
    assert renamed.status_code == 422

    runs = client.post("/api/v1/backup-policies/nightly/runs", headers=as_writer)
    assert runs.status_code == 202 and [b["policy"] for b in runs.json] == ["nightly"]
    [done] = ended(client, [f"/api/v1/backups/{b['id']}" for b in runs.json], as_writer)
    assert done["status"] == "completed" and done["policy"] == "nightly" and done["scheduled_at"] is None
    gone = client.delete("/api/v1/backup-policies/nightly", headers={**as_writer, "If-Match": '"old"'})
    assert gone.status_code == 412
    assert client.delete("/api/v1/backup-policies/nightly", headers=as_writer).status_code == 204
    assert client.get("/api/v1/backup-policies/nightly", headers=as_writer).status_code == 404
    assert [b["id"] for b in client.get("/api/v1/backups?policy=nightly", headers=as_writer).json] == [done["id"]]


def test_runs_apply_retention_to_the_policy_s_own_backups_only(client, as_writer):
    assert client.post("/api/v1/backup-policies", json=BODY, headers=as_writer).status_code == 201
    by_hand = client.post("/api/v1/backups", json={"volume": "site", "repository": "offsite"}, headers=as_writer)
    ended(client, [by_hand.headers["Location"]], as_writer)
    made = []
    for _ in range(3):
        runs = client.post("/api/v1/backup-policies/nightly/runs", headers=as_writer)
        assert runs.status_code == 202
        made += [b["id"] for b in ended(client, [f"/api/v1/backups/{runs.json[0]['id']}"], as_writer)]
        time.sleep(1.1)  # restic's snapshot times are kept to the second here
    listed = client.get("/api/v1/backups?policy=nightly", headers=as_writer).json
    assert sorted(b["id"] for b in listed) == sorted(made[1:])  # keep_last 2, after each run
    everything = client.get("/api/v1/backups?volume=site", headers=as_writer).json
    assert len(everything) == 3  # the backup made by hand stays
    last = client.get("/api/v1/backup-policies/nightly", headers=as_writer).json["last_run"]
    assert last["status"] == "completed"

    keep_one = {**BODY, "retention": {"keep_last": 1}}
    assert client.put("/api/v1/backup-policies/nightly", json=keep_one, headers=as_writer).status_code == 200
    dry = client.post("/api/v1/backup-policies/nightly/prune", json={"dry_run": True}, headers=as_writer)
    assert dry.status_code == 200, dry.json
    assert dry.json == {"keep": [{"backup": made[2], "reasons": ["keep_last"]}], "remove": [made[1]], "dry_run": True}
    assert len(client.get("/api/v1/backups?policy=nightly", headers=as_writer).json) == 2
    done = client.post("/api/v1/backup-policies/nightly/prune", json={}, headers=as_writer)
    assert done.json["remove"] == [made[1]] and done.json["dry_run"] is False
    assert [b["id"] for b in client.get("/api/v1/backups?policy=nightly", headers=as_writer).json] == [made[2]]


def test_a_selector_picks_the_policy_project_s_volumes_by_label(client, as_writer):
    for name, labels in [("db1", {"tier": "db"}), ("db2", {"tier": "db"}), ("web", {"tier": "web"})]:
        assert (
            client.post("/api/v1/volumes", json={"name": name, "labels": labels}, headers=as_writer).status_code == 201
        )
    body = {**BODY, "volumes": None, "selector": {"labels": ["tier=db"]}}
    made = client.post("/api/v1/backup-policies", json=body, headers=as_writer)
    assert made.status_code == 201, made.json
    assert made.json["selector"] == {"labels": ["tier=db"]} and made.json["volumes"] is None
    runs = client.post("/api/v1/backup-policies/nightly/runs", headers=as_writer)
    assert sorted(b["volume"] for b in runs.json) == ["db1", "db2"]
    ended(client, [f"/api/v1/backups/{b['id']}" for b in runs.json], as_writer)
