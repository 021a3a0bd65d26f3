"""Backups into S3 end to end (DESIGN.md section 12): an S3 server on loopback (moto), dockvol under
gunicorn and the real engine. Back up into a bucket, restore from it, and a second dockvol attaches
the same bucket with its keys and password and restores from it too."""

from __future__ import annotations

import requests

from tests import s3
from tests.support import engine_host, unique

from . import test_backups
from .conftest import ADMIN, backup_env, service_env
from .test_backups import PASSWORD, back_up, restore
from .test_volume_data_http import export, snapshot

filled = test_backups.filled  # the fixture: a volume of small files, links and a 12 MiB blob

KEYS = {"access_key_id": s3.ACCESS_KEY, "secret_access_key": s3.SECRET_KEY}


def s3_repository(service, endpoint, bucket, name, password=PASSWORD):
    body = {
        "name": name,
        "kind": "s3",
        "s3": {"endpoint": endpoint, "bucket": bucket, "prefix": "dockvol"},
        "credentials": KEYS,
        "password": password,
    }
    return requests.post(service.url("/api/v1/repositories"), json=body, headers=ADMIN, timeout=120)


def test_back_up_to_s3_restore_and_attach_from_a_second_service(
    service, start_service, filled, backup_root, tmp_path, s3_endpoint
):
    bucket = unique("b").lower().replace("_", "-")
    made = s3_repository(service, s3_endpoint, bucket, "cloud")
    assert made.status_code == 201, made.text
    assert s3.SECRET_KEY not in made.text and made.json()["s3"]["bucket"] == bucket
    before = snapshot(export(service, filled))
    done = back_up(service, filled, "cloud")
    assert done["repository"] == "cloud" and done["size_bytes"] > 12 << 20

    copy = unique("from-s3")
    assert restore(service, done["id"], copy)["status"] == "completed"
    assert snapshot(export(service, copy)) == before

    other = start_service(service_env(engine_host(), **backup_env(backup_root, tmp_path / "other-state")))
    assert s3_repository(other, s3_endpoint, bucket, "found", "not the password").status_code == 422
    attached = s3_repository(other, s3_endpoint, bucket, "found")
    assert attached.status_code == 201, attached.text
    assert attached.json()["status"]["backups"] == 1
    again = unique("attached")
    assert restore(other, done["id"], again)["status"] == "completed"
    assert snapshot(export(other, again)) == before
