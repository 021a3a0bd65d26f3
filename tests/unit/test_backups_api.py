"""/api/v1/repositories, /backups and /restores over HTTP: the mapping only (statuses, headers,
documents); the rules are tested where they live (usecases/test_backups.py)."""

from __future__ import annotations

import dataclasses
import time

import pytest

from service.app import create_app
from tests import s3
from tests.contract.engine_contract import make_tar
from tests.support import files_of

pytestmark = pytest.mark.slow  # restic derives its key at every call: about half a second each


@pytest.fixture
def settings(settings, tmp_path):
    (tmp_path / "backups").mkdir()
    return dataclasses.replace(settings, backup_roots=(str(tmp_path / "backups"),))


@pytest.fixture
def client(engine, settings):
    return create_app(settings, engine=engine).test_client()


@pytest.fixture
def repository(client, as_admin, tmp_path):
    body = {"name": "offsite", "path": str(tmp_path / "backups" / "offsite"), "password": "sesame"}
    made = client.post("/api/v1/repositories", json=body, headers=as_admin)
    assert made.status_code == 201, made.json
    return made


def ended(client, url, headers):
    for _ in range(600):
        got = client.get(url, headers=headers)
        if got.json["status"] != "running":
            return got
        time.sleep(0.05)
    raise AssertionError(f"{url} still running")


def test_a_repository_is_made_by_an_admin_and_never_shows_its_password(client, repository, as_writer, tmp_path):
    assert repository.headers["Location"] == "/api/v1/repositories/offsite"
    doc = repository.json
    assert "password" not in doc and doc["kind"] == "local" and doc["project"] == "default"
    assert doc["status"]["reachable"] is True and doc["status"]["backups"] == 0
    body = {"name": "other", "path": str(tmp_path / "backups" / "o"), "password": "x"}
    assert client.post("/api/v1/repositories", json=body, headers=as_writer).status_code == 403
    assert b"sesame" not in client.get("/api/v1/repositories/offsite", headers=as_writer).data


def test_a_backup_answers_202_and_its_run_becomes_the_snapshot(client, repository, as_writer, as_admin):
    assert client.post("/api/v1/volumes", json={"name": "site"}, headers=as_writer).status_code == 201
    tar = make_tar([("a.txt", "file", b"hello", 0o644)])
    assert client.put("/api/v1/volumes/site/archive", data=tar, headers=as_admin).status_code == 200
    started = client.post("/api/v1/backups", json={"volume": "site", "repository": "offsite"}, headers=as_writer)
    assert started.status_code == 202 and started.json["status"] == "running"
    run = started.headers["Location"]
    done = ended(client, run, as_writer)
    assert done.json["status"] == "completed" and done.json["node"]
    backup_id = done.json["id"]
    assert client.get("/api/v1/projects/default", headers=as_writer).json["usage"]["backups"] == 1
    assert done.headers["Content-Location"] == f"/api/v1/backups/{backup_id}"
    listed = client.get("/api/v1/backups?volume=site&status=completed", headers=as_writer)
    assert [b["id"] for b in listed.json] == [backup_id]
    archive = client.get(f"/api/v1/backups/{backup_id}/archive", headers=as_writer)
    assert archive.content_type == "application/x-tar" and files_of(archive.data) == {"a.txt": b"hello"}

    body = {"backup": backup_id, "volume": "site-copy"}
    assert client.post("/api/v1/restores", json=body, headers=as_writer).status_code == 403
    assert client.post("/api/v1/restores", json={**body, "replace": True}, headers=as_admin).status_code == 404
    restore = client.post("/api/v1/restores", json=body, headers=as_admin)
    assert restore.status_code == 202 and restore.json["replace"] is False
    assert ended(client, restore.headers["Location"], as_writer).json["status"] == "completed"
    assert client.put("/api/v1/volumes/site/archive", data=make_tar([("b", "file", b"b", 0o644)]), headers=as_admin)
    over = client.post("/api/v1/restores", json={**body, "volume": "site", "replace": True}, headers=as_admin)
    assert over.status_code == 202 and over.json["replace"] is True
    assert ended(client, over.headers["Location"], as_writer).json["status"] == "completed"
    assert files_of(client.get("/api/v1/volumes/site/archive", headers=as_admin).data) == {"a.txt": b"hello"}

    assert client.delete(f"/api/v1/backups/{backup_id}", headers=as_writer).status_code == 403
    assert client.delete(f"/api/v1/backups/{backup_id}", headers=as_admin).status_code == 204
    assert client.get(f"/api/v1/backups/{backup_id}", headers=as_writer).status_code == 404


def test_missing_things_are_404_and_a_repository_can_be_forgotten(client, repository, as_writer, as_admin):
    for url in ("/api/v1/backups/run-0000", "/api/v1/backups/" + "0" * 64, "/api/v1/restores/x"):
        assert client.get(url, headers=as_writer).status_code == 404, url
    started = client.post("/api/v1/backups", json={"volume": "ghost", "repository": "offsite"}, headers=as_writer)
    assert started.status_code == 404
    assert client.delete("/api/v1/repositories/offsite", headers=as_admin).status_code == 204
    assert client.get("/api/v1/repositories/offsite", headers=as_writer).status_code == 404


def test_an_s3_repository_shows_where_it_lies_and_never_its_keys(client, as_admin, s3_endpoint, tmp_path):
    keys = {"access_key_id": s3.ACCESS_KEY, "secret_access_key": s3.SECRET_KEY}
    place = {"endpoint": s3_endpoint, "bucket": "dockvol-api", "prefix": "p"}
    body = {"name": "cloud", "kind": "s3", "s3": place, "credentials": keys, "password": "sesame"}
    made = client.post("/api/v1/repositories", json=body, headers=as_admin)
    assert made.status_code == 201, made.json
    doc = made.json
    assert doc["kind"] == "s3" and doc["path"] is None and doc["status"]["reachable"] is True
    assert doc["s3"] == {"endpoint": s3_endpoint, "bucket": "dockvol-api", "prefix": "p", "region": ""}
    listed = client.get("/api/v1/repositories", headers=as_admin).data
    assert s3.SECRET_KEY.encode() not in made.data + listed and b"sesame" not in listed
    bad = [
        {**body, "credentials": None},  # s3 needs its keys
        {key: v for key, v in body.items() if key != "credentials"},
        {**body, "path": str(tmp_path / "backups" / "x")},  # one place only
        {**body, "s3": {**place, "endpoint": f"{s3_endpoint}/evil"}},  # no path in the endpoint
        {**body, "s3": {**place, "bucket": "ab"}},  # buckets of 3+ characters
        {**body, "credentials": {**keys, "secret_access_key": "x\n[other]"}},  # nothing ends a line
        {"name": "l", "path": str(tmp_path / "backups" / "l"), "password": "x", "s3": place},
    ]
    for b in bad:
        assert client.post("/api/v1/repositories", json=b, headers=as_admin).status_code == 422, b


def test_backups_are_counted_timed_and_their_last_success_kept(client, repository, as_writer, as_admin):
    def metric(text: str, name: str, **labels: str) -> float:
        for line in text.splitlines():
            if line.split("{")[0].split(" ")[0] == name and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = client.get("/metrics").get_data(as_text=True)
    assert client.post("/api/v1/volumes", json={"name": "metered"}, headers=as_writer).status_code == 201
    tar = make_tar([("a.txt", "file", b"hello" * 1000, 0o644)])
    assert client.put("/api/v1/volumes/metered/archive", data=tar, headers=as_admin).status_code == 200
    started = client.post("/api/v1/backups", json={"volume": "metered", "repository": "offsite"}, headers=as_writer)
    done = ended(client, started.headers["Location"], as_writer).json
    assert done["status"] == "completed"
    text = client.get("/metrics").get_data(as_text=True)
    total = "dockvol_backups_total"
    assert metric(text, total, status="completed") - metric(before, total, status="completed") == 1
    added = metric(text, "dockvol_backup_added_bytes_total") - metric(before, "dockvol_backup_added_bytes_total")
    assert added == done["added_bytes"] > 0
    count = "dockvol_backup_duration_seconds_count"
    assert metric(text, count) - metric(before, count) == 1
    last = metric(text, "dockvol_backup_last_success_timestamp_seconds", policy="", volume="metered")
    assert time.time() - 60 < last <= time.time()


@pytest.fixture
def tokens_of_two_projects(settings):
    from tests.unit.conftest import TOKENS

    tokens = {**TOKENS, "web": {"scopes": ["read"], "project": "web"}}
    return dataclasses.replace(settings, tokens=tokens)


def test_backup_runs_and_restores_are_told_in_events_to_their_project_only(
    engine, tokens_of_two_projects, as_admin, tmp_path, monkeypatch
):
    from service.http import events as events_module
    from tests.unit.test_events import Stream

    monkeypatch.setattr(events_module, "HEARTBEAT", 0.1)
    app = create_app(tokens_of_two_projects, engine=engine)
    services = app.extensions["dockvol"]
    services.view.start_in_background()
    try:
        deadline = time.monotonic() + 5
        while not services.view.stats()["primed"] and time.monotonic() < deadline:
            time.sleep(0.01)
        client = app.test_client()
        body = {"name": "offsite", "path": str(tmp_path / "backups" / "o"), "password": "pw"}
        assert client.post("/api/v1/repositories", json=body, headers=as_admin).status_code == 201
        assert client.post("/api/v1/volumes", json={"name": "evented"}, headers=as_admin).status_code == 201
        services.record_feed.poll()  # the base: nothing recorded yet
        admin = Stream(client, as_admin, "?resource=backup&resource=restore")
        web = Stream(client, {"Authorization": "Bearer web"}, "?resource=backup&resource=restore")
        started = client.post("/api/v1/backups", json={"volume": "evented", "repository": "offsite"}, headers=as_admin)
        run = started.json["id"]
        ended(client, started.headers["Location"], as_admin)
        services.record_feed.poll()
        told = admin.next()
        assert (told["event"], told["data"]["resource"], told["data"]["name"]) == ("created", "backup", run)
        assert told["data"]["object"]["status"] == "completed" and told["data"]["project"] == "default"
        restore = client.post("/api/v1/restores", json={"backup": run, "volume": "evented-copy"}, headers=as_admin)
        ended(client, restore.headers["Location"], as_admin)
        services.record_feed.poll()
        told = admin.next()
        assert (told["event"], told["data"]["resource"]) == ("created", "restore")
        assert told["data"]["object"]["status"] == "completed"
        with pytest.raises(AssertionError, match="no event in time"):
            web.next(seconds=0.5)  # another project hears nothing of them
        admin.close()
        web.close()
    finally:
        services.view.stop()
