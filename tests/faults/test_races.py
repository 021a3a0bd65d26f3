"""Racing requests over HTTP, against gunicorn's two workers and a real engine: the end state is
one a serial order of the same requests could give, and nothing is lost or left behind."""

from __future__ import annotations

import requests

from tests.support import IMAGE, TEST_LABEL, files_of, race, sleeper, tar_of, unique

from .conftest import ADMIN, READER, WRITER


def locks_and_asides(sdk):
    return [
        c.name
        for c in sdk.containers.list(all=True, filters={"label": "dockvol.managed=true"})
        if c.labels.get("dockvol.role") in ("lock", "helper") or c.name.startswith("dockvol-aside-")
    ]


def test_deleting_a_volume_while_a_binding_mounts_it(service, sdk):
    for _ in range(5):
        volume, user = unique("vol"), unique("user")
        assert (
            requests.post(
                service.url("/api/v1/volumes"),
                json={"name": volume, "labels": {TEST_LABEL: "1"}},
                headers=WRITER,
                timeout=30,
            ).status_code
            == 201
        )
        body = {
            "name": user,
            "image": IMAGE,
            "command": sleeper(),
            "network": "none",
            "mounts": [{"type": "volume", "source": volume, "target": "/srv"}],
        }
        codes = race(
            lambda: requests.delete(service.url(f"/api/v1/volumes/{volume}"), headers=WRITER, timeout=60).status_code,
            lambda: requests.post(service.url("/api/v1/bindings"), json=body, headers=WRITER, timeout=60).status_code,
        )
        assert codes in ([204, 422], [409, 201]), codes
        if codes[1] == 201:
            shown = requests.get(service.url(f"/api/v1/volumes/{volume}"), headers=READER, timeout=30).json()
            assert shown["managed"] and shown["used_by"][0]["container"] == user
        else:
            assert volume not in [v.name for v in sdk.volumes.list()]
    assert locks_and_asides(sdk) == []


def test_a_cascade_delete_while_a_member_joins(service, sdk):
    for _ in range(4):
        group, member = unique("grp"), unique("mem")
        assert (
            requests.post(
                service.url("/api/v1/sharing-groups"), json={"name": group}, headers=WRITER, timeout=60
            ).status_code
            == 201
        )
        body = {"name": member, "image": IMAGE, "command": sleeper(), "sharing_group": group}
        codes = race(
            lambda: (
                requests.delete(
                    service.url(f"/api/v1/sharing-groups/{group}?cascade=true"), headers=WRITER, timeout=60
                ).status_code
            ),
            lambda: requests.post(service.url("/api/v1/bindings"), json=body, headers=WRITER, timeout=60).status_code,
        )
        assert codes in ([204, 422], [204, 201]), codes
        assert sdk.containers.list(all=True, filters={"label": f"dockvol.group={group}"}) == []
    assert locks_and_asides(sdk) == []


def _files(service, name):
    r = requests.get(
        service.url(f"/api/v1/volumes/{name}/archive"), headers={**ADMIN, "Accept-Encoding": "identity"}, timeout=60
    )
    return sorted(files_of(r.content)) if r.status_code == 200 else r.status_code


def test_a_rename_while_an_import_writes_loses_nothing(service, sdk):
    for _ in range(4):
        source, target = unique("src"), unique("dst")
        assert (
            requests.post(
                service.url("/api/v1/volumes"),
                json={"name": source, "labels": {TEST_LABEL: "1"}},
                headers=ADMIN,
                timeout=30,
            ).status_code
            == 201
        )
        codes = race(
            lambda: (
                requests.put(
                    service.url(f"/api/v1/volumes/{source}/archive"),
                    data=tar_of({"new.txt": b"new"}),
                    headers={**ADMIN, "Content-Type": "application/x-tar"},
                    timeout=60,
                ).status_code
            ),
            lambda: (
                requests.post(
                    service.url(f"/api/v1/volumes/{source}/rename"), json={"name": target}, headers=ADMIN, timeout=60
                ).status_code
            ),
        )
        moved = _files(service, target)
        assert _files(service, source) == 404, codes
        assert (codes, moved) in (([200, 200], ["new.txt"]), ([404, 200], [])), (codes, moved)
    assert locks_and_asides(sdk) == []


def test_twenty_concurrent_puts_of_one_binding(service, sdk):
    name = unique("puts")
    body = {
        "name": name,
        "image": IMAGE,
        "command": sleeper(),
        "network": "none",
        "mounts": [{"type": "volume", "target": "/data"}],
    }
    assert requests.post(service.url("/api/v1/bindings"), json=body, headers=WRITER, timeout=60).status_code == 201
    sdk.containers.get(name).exec_run(["sh", "-c", "echo kept > /data/file"])

    def put(i):
        return lambda: (
            requests.put(
                service.url(f"/api/v1/bindings/{name}"),
                json={**body, "command": sleeper(5000 + i)},
                headers=WRITER,
                timeout=120,
            ).status_code
        )

    codes = race(*[put(i) for i in range(20)])
    assert set(codes) <= {200, 409} and 200 in codes, codes
    shown = requests.get(service.url(f"/api/v1/bindings/{name}"), headers=READER, timeout=30).json()
    assert shown["state"] == "running"
    assert len(sdk.containers.list(all=True, filters={"label": f"dockvol.binding={name}"})) == 1
    assert sdk.containers.get(name).exec_run(["cat", "/data/file"]).output == b"kept\n"
    assert locks_and_asides(sdk) == []
    print(f"\n20 concurrent PUTs: {codes.count(200)} x 200, {codes.count(409)} x 409 (busy)")
