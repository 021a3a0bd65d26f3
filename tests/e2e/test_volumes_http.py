"""The volumes resource over HTTP: gunicorn, the real adapter and the private engine."""

from __future__ import annotations

import concurrent.futures
import json
import uuid

import requests

from tests.support import IMAGE, TEST_LABEL, read_soon, unique

from .conftest import ADMIN, READER, WRITER


def create(service, **body):
    body.setdefault("labels", {})[TEST_LABEL] = "e2e"
    return requests.post(service.url("/api/v1/volumes"), json=body, headers=WRITER, timeout=30)


def test_tokens_and_scopes(service, sdk):
    assert requests.get(service.url("/api/v1/volumes"), timeout=10).status_code == 401
    r = requests.get(service.url("/api/v1/volumes"), headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    name = unique("ro")
    r = requests.post(service.url("/api/v1/volumes"), json={"name": name}, headers=READER, timeout=10)
    assert r.status_code == 403
    assert not sdk.volumes.list(filters={"name": name})


def test_create_list_get_delete(service, sdk):
    name = unique("crud")
    r = create(service, name=name, labels={"team": "web"})
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"/api/v1/volumes/{name}"
    assert sdk.volumes.get(name).attrs["Labels"]["team"] == "web"

    listed = requests.get(service.url(f"/api/v1/volumes?name={name}"), headers=READER, timeout=10)
    assert [v["name"] for v in listed.json()] == [name]
    assert json.loads(listed.headers["X-Pagination"])["total"] == 1

    got = requests.get(service.url(f"/api/v1/volumes/{name}"), headers=READER, timeout=10).json()
    assert got["mountpoint"].endswith(f"/volumes/{name}/_data")
    assert (got["managed"], got["anonymous"], got["in_use"]) == (True, False, False)

    assert requests.delete(service.url(f"/api/v1/volumes/{name}"), headers=WRITER, timeout=10).status_code == 204
    assert requests.get(service.url(f"/api/v1/volumes/{name}"), headers=READER, timeout=10).status_code == 404
    assert not sdk.volumes.list(filters={"name": name})


def test_a_duplicate_name_is_409(service):
    name = unique("dup")
    assert create(service, name=name).status_code == 201
    r = create(service, name=name)
    assert r.status_code == 409
    assert r.headers["Content-Type"] == "application/problem+json"


def test_concurrent_creates_of_one_name_give_exactly_one_201(service):
    name = unique("race")
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        statuses = sorted(pool.map(lambda _: create(service, name=name).status_code, range(10)))
    assert statuses == [201] + [409] * 9


def test_deleting_a_volume_a_foreign_container_uses_is_409(service, sdk):
    name = unique("busy")
    assert create(service, name=name).status_code == 201
    container = unique("c")
    sdk.containers.create(
        IMAGE,
        ["true"],
        name=container,
        network_mode="none",
        volumes={name: {"bind": "/data", "mode": "rw"}},
        labels={TEST_LABEL: "e2e"},
    )
    r = requests.delete(service.url(f"/api/v1/volumes/{name}"), headers=WRITER, timeout=10)
    assert r.status_code == 409
    node = sdk.info()["Name"]
    assert r.json()["used_by"] == [
        {"container": container, "node": node, "binding": None, "target": "/data", "read_only": False}
    ]
    assert sdk.volumes.get(name)
    got = read_soon(  # the container was made with the engine directly: reads show it within moments
        lambda: requests.get(service.url(f"/api/v1/volumes/{name}"), headers=READER, timeout=10).json(),
        lambda v: v.get("in_use") is True,
    )
    assert got["in_use"] is True
    sdk.containers.get(container).remove()
    assert requests.delete(service.url(f"/api/v1/volumes/{name}"), headers=WRITER, timeout=10).status_code == 204


def test_a_volume_dockvol_did_not_create_is_read_only(service, sdk):
    name = unique("foreign")
    sdk.volumes.create(name, labels={TEST_LABEL: "e2e"})
    got = read_soon(
        lambda: requests.get(service.url(f"/api/v1/volumes/{name}"), headers=READER, timeout=10),
        lambda r: r.status_code == 200,
    )
    assert got.json()["managed"] is False, got.text
    assert requests.delete(service.url(f"/api/v1/volumes/{name}"), headers=WRITER, timeout=10).status_code == 403
    assert sdk.volumes.get(name)


def test_prune_dry_run_changes_nothing_and_prune_removes_what_it_listed(service, sdk):
    run = uuid.uuid4().hex[:8]
    anonymous = [create(service, labels={"run": run}).json()["name"] for _ in range(2)]
    named = unique("named")
    create(service, name=named, labels={"run": run})
    kept = create(service, labels={"run": run}).json()["name"]
    container = unique("c")
    sdk.containers.create(
        IMAGE,
        ["true"],
        name=container,
        network_mode="none",
        volumes={kept: {"bind": "/k", "mode": "rw"}},
        labels={TEST_LABEL: "e2e"},
    )

    body = {"dry_run": True, "labels": [f"run={run}"]}
    planned = requests.post(service.url("/api/v1/volumes/prune"), json=body, headers=ADMIN, timeout=30).json()
    assert planned["volumes_deleted"] == sorted(anonymous)
    assert {v.name for v in sdk.volumes.list(filters={"label": f"run={run}"})} == {*anonymous, named, kept}

    body["dry_run"] = False
    done = requests.post(service.url("/api/v1/volumes/prune"), json=body, headers=ADMIN, timeout=30).json()
    assert done["volumes_deleted"] == planned["volumes_deleted"]
    assert {v.name for v in sdk.volumes.list(filters={"label": f"run={run}"})} == {named, kept}

    body["include_named"] = True
    done = requests.post(service.url("/api/v1/volumes/prune"), json=body, headers=ADMIN, timeout=30).json()
    assert done["volumes_deleted"] == [named]
    sdk.containers.get(container).remove()


def test_anonymous_volumes_are_recognised_alike_on_every_engine(service, sdk):
    """Engine 23+ labels a container's anonymous volumes; 20.10 does not. dockvol answers alike."""
    container = sdk.containers.create(
        IMAGE, ["true"], name=unique("anon"), network_mode="none", volumes=["/data"], labels={TEST_LABEL: "e2e"}
    )
    (mount,) = container.attrs["Mounts"]
    picked = sdk.volumes.create(labels={TEST_LABEL: "e2e"}).name  # `docker volume create`, no name
    named = sdk.volumes.create(unique("named"), labels={TEST_LABEL: "e2e"}).name

    def anonymous() -> dict[str, dict]:
        listed = requests.get(service.url("/api/v1/volumes?anonymous=true&page_size=1000"), headers=READER, timeout=30)
        return {v["name"]: v for v in listed.json()}

    # made with the engine directly: reads show them within moments
    by_name = read_soon(anonymous, lambda found: mount["Name"] in found and picked in found)
    assert mount["Name"] in by_name and picked in by_name and named not in by_name
    assert by_name[mount["Name"]]["used_by"] == [
        {
            "container": container.name,
            "node": sdk.info()["Name"],
            "binding": None,
            "target": "/data",
            "read_only": False,
        }
    ]
    got = read_soon(
        lambda: requests.get(service.url(f"/api/v1/volumes/{named}"), headers=READER, timeout=30).json(),
        lambda v: "anonymous" in v,
    )
    assert got["anonymous"] is False
    container.remove(v=True)
