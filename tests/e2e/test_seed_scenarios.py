"""The seed's three scenarios over HTTP, against gunicorn and a real engine.

1. A Docker-managed volume: `docker run -v /data busybox`.
2. A bind mount: `docker run -v /data/volumes/b2:/data busybox`.
3. Copying volume settings: `--volumes-from infracon --network container:infracon`.
"""

from __future__ import annotations

import io
import os
import pathlib

import pytest
import requests

from tests.support import IMAGE, TEST_LABEL, unique

from .conftest import READER, WRITER
from .engine_checks import assert_hardened, run_in, wait_for_file

SLEEP = ["sleep", "3600"]


def post(service, path, body):
    return requests.post(service.url(path), json=body, headers=WRITER, timeout=60)


def binding(service, name, mounts, command=SLEEP, **extra):
    body = {"name": name, "image": IMAGE, "command": command, "mounts": mounts, "labels": {TEST_LABEL: "e2e"}, **extra}
    r = post(service, "/api/v1/bindings", body)
    assert r.status_code == 201, r.text
    return r.json()


def mount_at(representation, target):
    return next(m for m in representation["mounts"] if m["target"] == target)


def test_seed_1_a_docker_managed_volume(service, sdk):
    name = unique("b1")
    made = binding(service, name, [{"type": "volume", "target": "/data"}])
    assert_hardened(sdk, name)
    shown = requests.get(service.url(f"/api/v1/bindings/{name}"), headers=READER, timeout=30).json()
    data = mount_at(shown, "/data")
    assert made["state"] == shown["state"] == "running"
    assert len(data["name"]) == 64 and data["type"] == "volume" and data["driver"] == "local"
    assert data["source"] == sdk.volumes.get(data["name"]).attrs["Mountpoint"]
    assert run_in(sdk, name, "sh", "-c", "echo kept > /data/file")[0] == 0
    assert pathlib.Path(data["source"], "file").read_text() == "kept\n"

    assert requests.delete(service.url(f"/api/v1/bindings/{name}"), headers=WRITER, timeout=30).status_code == 204
    assert sdk.volumes.get(data["name"])  # removing the container never removes its volumes
    assert pathlib.Path(data["source"], "file").read_text() == "kept\n"
    volume = requests.get(service.url(f"/api/v1/volumes/{data['name']}"), headers=READER, timeout=30).json()
    assert (volume["anonymous"], volume["in_use"]) == (True, False)


def test_seed_2_a_host_path_both_ways(service, sdk, bind_root):
    name = unique("b2")
    host_dir = bind_root / name
    command = ["sh", "-c", "echo from-container > /data/c.txt; exec sleep 3600"]
    binding(service, name, [{"type": "bind", "source": str(host_dir), "target": "/data"}], command=command)
    assert_hardened(sdk, name)
    assert wait_for_file(host_dir / "c.txt") == "from-container\n"
    (host_dir / "h.txt").write_text("from-host\n")
    assert run_in(sdk, name, "cat", "/data/h.txt") == (0, "from-host\n")

    assert requests.delete(service.url(f"/api/v1/bindings/{name}"), headers=WRITER, timeout=30).status_code == 204
    assert (host_dir / "c.txt").read_text() == "from-container\n"
    assert (host_dir / "h.txt").read_text() == "from-host\n"


def test_a_named_volume_outlives_its_binding(service, sdk):
    volume = unique("site")
    assert post(service, "/api/v1/volumes", {"name": volume, "labels": {TEST_LABEL: "e2e"}}).status_code == 201
    first = unique("writer")
    binding(service, first, [{"type": "volume", "source": volume, "target": "/srv"}])
    assert run_in(sdk, first, "sh", "-c", "echo old-data > /srv/page")[0] == 0
    r = requests.delete(service.url(f"/api/v1/volumes/{volume}"), headers=WRITER, timeout=30)
    assert r.status_code == 409
    assert r.json()["used_by"][0]["binding"] == first
    requests.delete(service.url(f"/api/v1/bindings/{first}"), headers=WRITER, timeout=30)

    second = unique("reader")
    binding(service, second, [{"type": "volume", "source": volume, "target": "/srv", "read_only": True}])
    assert run_in(sdk, second, "cat", "/srv/page") == (0, "old-data\n")
    assert run_in(sdk, second, "sh", "-c", "echo x > /srv/other")[0] != 0


@pytest.fixture(scope="module")
def second_image(sdk):
    tag = f"{TEST_LABEL}/busybox:v2"
    sdk.images.build(
        fileobj=io.BytesIO(f"FROM {IMAGE}\nLABEL dvtest=v2\n".encode()), tag=tag, rm=True, network_mode="none"
    )
    yield tag
    sdk.images.remove(tag, force=True)


def test_put_to_a_new_image_keeps_named_and_anonymous_data(service, sdk, second_image):
    volume = unique("named")
    post(service, "/api/v1/volumes", {"name": volume, "labels": {TEST_LABEL: "e2e"}})
    name = unique("upgrade")
    mounts = [{"type": "volume", "target": "/data"}, {"type": "volume", "source": volume, "target": "/srv"}]
    before = binding(service, name, mounts)
    assert run_in(sdk, name, "sh", "-c", "echo anon > /data/a; echo named > /srv/n")[0] == 0

    etag = requests.get(service.url(f"/api/v1/bindings/{name}"), headers=READER, timeout=30).headers["ETag"]
    body = {"image": second_image, "command": SLEEP, "mounts": mounts, "labels": {TEST_LABEL: "e2e"}}
    r = requests.put(
        service.url(f"/api/v1/bindings/{name}"), json=body, headers={**WRITER, "If-Match": etag}, timeout=60
    )
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["id"] != before["id"] and after["image"] == second_image and after["state"] == "running"
    assert mount_at(after, "/data")["name"] == mount_at(before, "/data")["name"]
    assert run_in(sdk, name, "cat", "/data/a", "/srv/n") == (0, "anon\nnamed\n")
    assert_hardened(sdk, name)
    assert [c.name for c in sdk.containers.list(all=True, filters={"label": f"dockvol.binding={name}"})] == [name]


@pytest.mark.parametrize("case", ["symlink-out", "sibling", "system", "relative", "dotdot"])
def test_refused_bind_sources_make_nothing(service, sdk, bind_root, tmp_path, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    if case == "symlink-out":
        link = bind_root / unique("link")
        link.symlink_to(outside)
        source = f"{link}/sub"
    else:
        source = {"sibling": f"{bind_root}2/x", "system": "/etc", "relative": "data/x", "dotdot": f"{bind_root}/../x"}[
            case
        ]
    volumes_before = {v.name for v in sdk.volumes.list()}
    entries_before = set(os.listdir(bind_root))
    name = unique("refused")
    body = {
        "name": name,
        "image": IMAGE,
        "mounts": [{"type": "volume", "target": "/a"}, {"type": "bind", "source": source, "target": "/b"}],
    }
    r = post(service, "/api/v1/bindings", body)
    assert r.status_code in (403, 422), r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert not sdk.containers.list(all=True, filters={"name": name})
    assert {v.name for v in sdk.volumes.list()} == volumes_before
    assert set(os.listdir(bind_root)) == entries_before
    assert list(outside.iterdir()) == []
    assert not os.path.exists(f"{bind_root}2")


def test_a_container_that_cannot_start_leaves_nothing(service, sdk, bind_root):
    name = unique("nostart")
    volumes_before = {v.name for v in sdk.volumes.list()}
    body = {
        "name": name,
        "image": IMAGE,
        "command": ["/no/such/program"],
        "mounts": [
            {"type": "volume", "target": "/a"},
            {"type": "bind", "source": f"{bind_root}/{name}", "target": "/b"},
        ],
    }
    r = post(service, "/api/v1/bindings", body)
    assert r.status_code == 422, r.text
    assert not sdk.containers.list(all=True, filters={"name": name})
    assert {v.name for v in sdk.volumes.list()} == volumes_before
    assert not (bind_root / name).exists()


def test_seed_3_copying_volume_settings(service, sdk, bind_root):
    group = unique("infracon")
    html = bind_root / group
    r = post(
        service,
        "/api/v1/sharing-groups",
        {
            "name": group,
            "mounts": [{"type": "bind", "source": str(html), "target": "/data/web/html"}],
            "share": ["network"],
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["infra"]["state"] == "running"
    assert_hardened(sdk, group)
    assert sdk.api.inspect_container(group)["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    (html / "index.html").write_text("hello from the host\n")

    nginx, tomcat = unique("nginx"), unique("tomcat")
    binding(service, nginx, [], sharing_group=group, sharing_mode="rw", network=None)
    binding(service, tomcat, [], sharing_group=group, sharing_mode="ro", network=None)
    for member in (nginx, tomcat):
        assert_hardened(sdk, member)
        assert run_in(sdk, member, "cat", "/data/web/html/index.html") == (0, "hello from the host\n")
    assert run_in(sdk, nginx, "sh", "-c", "echo from-nginx > /data/web/html/n.txt")[0] == 0
    assert (html / "n.txt").read_text() == "from-nginx\n"
    assert run_in(sdk, tomcat, "sh", "-c", "echo x > /data/web/html/t.txt")[0] != 0
    net = {c: run_in(sdk, c, "readlink", "/proc/1/ns/net")[1] for c in (group, nginx, tomcat)}
    assert net[group].startswith("net:[") and net[group] == net[nginx] == net[tomcat]

    shown = requests.get(service.url(f"/api/v1/sharing-groups/{group}"), headers=READER, timeout=30).json()
    assert shown["members"] == sorted([nginx, tomcat])
    r = requests.delete(service.url(f"/api/v1/sharing-groups/{group}"), headers=WRITER, timeout=30)
    assert r.status_code == 409
    assert len(sdk.containers.list(all=True, filters={"label": f"dockvol.group={group}"})) == 3
    r = requests.delete(service.url(f"/api/v1/sharing-groups/{group}?cascade=true"), headers=WRITER, timeout=60)
    assert r.status_code == 204
    assert not sdk.containers.list(all=True, filters={"label": f"dockvol.group={group}"})
    assert (html / "index.html").read_text() == "hello from the host\n"
    assert (html / "n.txt").exists()
