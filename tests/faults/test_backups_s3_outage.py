"""An S3 repository that goes away mid-upload (DESIGN.md section 12): the S3 server is cut off
(a relay in front of moto, closed with every connection, so the bucket's objects survive) while
restic uploads. While it is away no completed backup appears; once it is back the run ends, and
whatever it ended as, a completed backup is whole and a retry completes."""

from __future__ import annotations

import os
import time

import requests

from tests import s3
from tests.support import files_of, unique

from .conftest import ADMIN, READER, WRITER
from .test_backups_interrupted import backups_of, until_ended
from .test_interrupted import _contents, _volume

FILES = {f"blob{i}.bin": os.urandom(8 << 20) for i in range(4)}  # several of restic's packs


def whole(service, backup):
    r = requests.get(service.url(f"/api/v1/backups/{backup['id']}/archive"), headers=READER, timeout=120)
    return files_of(r.content) == FILES


def test_s3_cut_mid_upload_leaves_no_partial_backup_and_a_retry_completes(service, s3_endpoint):
    relay = s3.Relay(int(s3_endpoint.rsplit(":", 1)[1]))
    try:
        name = unique("s3cut")
        _volume(service, name, FILES)
        repo = unique("s3").removeprefix("dvtest-")
        body = {
            "name": repo,
            "kind": "s3",
            "s3": {"endpoint": relay.endpoint, "bucket": "dockvol-outage"},
            "credentials": {"access_key_id": s3.ACCESS_KEY, "secret_access_key": s3.SECRET_KEY},
            "password": "pw",
        }
        made = requests.post(service.url("/api/v1/repositories"), json=body, headers=ADMIN, timeout=120)
        assert made.status_code == 201, made.text

        r = requests.post(service.url("/api/v1/backups"), json={"volume": name, "repository": repo}, headers=WRITER)
        assert r.status_code == 202, r.text
        url = r.headers["Location"]
        deadline, sent = time.monotonic() + 60, relay.sent
        while relay.sent - sent < 2 << 20:  # restic is uploading the volume's data
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.01)
        relay.cut()  # mid-upload: restic's requests fail, it retries
        run = requests.get(service.url(url), headers=READER, timeout=30).json()
        assert run["status"] == "running", f"ended before the cut: {run}"
        cut_at = time.monotonic()
        while time.monotonic() - cut_at < 8:
            assert [b for b in backups_of(service, name) if b["status"] == "completed"] == []
            time.sleep(0.5)
        relay.restore()
        until_ended(service, url)
        ended = requests.get(service.url(url), headers=READER, timeout=30).json()
        assert ended["status"] in ("completed", "failed"), ended
        for b in backups_of(service, name):
            assert b["status"] != "completed" or whole(service, b), b

        r = requests.post(service.url("/api/v1/backups"), json={"volume": name, "repository": repo}, headers=WRITER)
        assert r.status_code == 202, r.text
        until_ended(service, r.headers["Location"])
        retried = requests.get(service.url(r.headers["Location"]), headers=READER, timeout=30).json()
        assert retried["status"] == "completed" and whole(service, retried), retried
        assert _contents(service, name) == FILES
        print(f"S3 cut for 8 s mid-upload: the run ended {ended['status']}, the retry completed")
    finally:
        relay.cut()
