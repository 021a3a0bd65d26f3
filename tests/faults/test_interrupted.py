"""dockvol killed (SIGKILL to its whole process group) after each engine change an operation
makes, then the service that keeps running on the same engine recovers: the resource is in its
old or its new state, under its name, with its data, and nothing is left behind.

The step is exact: the service under test holds still right after its N-th change to the engine
(DOCKVOL_TEST_HOLD_AFTER, a test-only hook), and the test kills it there. Steps are counted until
an operation runs to its end without reaching the hold."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from tests.e2e.conftest import service_env
from tests.support import IMAGE, TEST_LABEL, engine_host, files_of, tar_of, unique

from .conftest import ADMIN, READER, WRITER

RECOVERY_SECONDS = 30
MAX_STEPS = 20


def leftovers(sdk, name):
    """dockvol's own containers an operation on `name` may leave: locks, helpers, asides."""
    return [
        c.name
        for c in sdk.containers.list(all=True, filters={"label": "dockvol.managed=true"})
        if c.labels.get("dockvol.role") in ("lock", "helper") or c.name.startswith("dockvol-aside-")
    ]


def held_service(start_service, tmp_path, step, bind_root):
    release = tmp_path / f"release-{step}"
    return start_service(
        service_env(
            engine_host(),
            DOCKVOL_WORKERS="1",
            DOCKVOL_TEST_HOLD_AFTER=f"{step}:{release}",
            DOCKVOL_BIND_ROOTS=json.dumps([str(bind_root)]),
        )
    )


def run_until_held(svc, send, step):
    """Send the request; True if the service held at `step` (then it is killed), False if the
    operation finished first (there is no such step)."""

    def call():
        try:
            send(svc)
        except requests.RequestException:
            pass  # killed mid-request: no answer is what a killed service gives

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    marker = f"test hold after engine change {step} "
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if marker in svc.log_path.read_text():
            svc.kill()
            return True
        if not thread.is_alive():
            svc.stop()
            return False
        time.sleep(0.02)
    svc.kill()
    raise AssertionError(f"step {step}: neither held nor finished")


def eventually(check, what):
    began = time.monotonic()
    last = None
    while time.monotonic() - began < RECOVERY_SECONDS:
        try:
            last = check()
            if last is True:
                return time.monotonic() - began
        except (requests.RequestException, AssertionError) as exc:
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"{what}: not recovered after {RECOVERY_SECONDS} s: {last}")


def binding_body(name, command, *mounts):
    return {
        "name": name,
        "image": IMAGE,
        "command": command,
        "network": "none",
        "labels": {TEST_LABEL: "1"},
        "mounts": [{"type": "volume", "target": t} for t in mounts],
    }


def test_put_killed_at_every_step(service, start_service, sdk, tmp_path, bind_root):
    name = unique("replace")
    assert (
        requests.post(
            service.url("/api/v1/bindings"),
            json=binding_body(name, ["sleep", "3600"], "/data"),
            headers=WRITER,
            timeout=60,
        ).status_code
        == 201
    )
    sdk.containers.get(name).exec_run(["sh", "-c", "echo precious > /data/file"])
    data_volume = next(m["Name"] for m in sdk.containers.get(name).attrs["Mounts"])
    recoveries = []
    for step in range(1, MAX_STEPS):
        new = ["sleep", str(4000 + step)]
        before = requests.get(service.url(f"/api/v1/bindings/{name}"), headers=READER, timeout=30).json()["command"]
        svc = held_service(start_service, tmp_path, step, bind_root)
        put = lambda s: requests.put(
            s.url(f"/api/v1/bindings/{name}"),
            json=binding_body(name, new, "/data", "/cache"),
            headers=WRITER,
            timeout=60,
        )
        if not run_until_held(svc, put, step):
            break

        def recovered():
            r = requests.get(service.url(f"/api/v1/bindings/{name}"), headers=READER, timeout=30)
            assert r.status_code == 200, f"step {step}: {r.status_code}"
            shown = r.json()
            assert shown["command"] in (before, new), shown["command"]
            assert shown["state"] == "running", shown["state"]
            assert not leftovers(sdk, name), leftovers(sdk, name)
            assert len(sdk.containers.list(all=True, filters={"label": f"dockvol.binding={name}"})) == 1
            out = sdk.containers.get(name).exec_run(["cat", "/data/file"]).output
            assert out == b"precious\n", out
            assert (
                next(m["Name"] for m in sdk.containers.get(name).attrs["Mounts"] if m["Destination"] == "/data")
                == data_volume
            )
            return True

        recoveries.append(eventually(recovered, f"PUT killed after step {step}"))
    else:
        pytest.fail("the PUT never ran to its end")
    assert step > 5, f"only {step - 1} steps"
    print(f"PUT killed at each of {step - 1} steps: recovered in at most {max(recoveries):.1f} s")


def test_create_with_anonymous_volumes_killed_at_every_step(service, start_service, sdk, tmp_path, bind_root):
    recoveries = []
    for step in range(1, MAX_STEPS):
        name = unique(f"create{step}")
        svc = held_service(start_service, tmp_path, step, bind_root)
        post = lambda s: requests.post(
            s.url("/api/v1/bindings"),
            json=binding_body(name, ["sleep", "3600"], "/a", "/b"),
            headers=WRITER,
            timeout=60,
        )
        if not run_until_held(svc, post, step):
            break

        def recovered():
            r = requests.get(service.url(f"/api/v1/bindings/{name}"), headers=READER, timeout=30)
            owned = [v.name for v in sdk.volumes.list(filters={"label": f"dockvol.binding={name}"})]
            assert not leftovers(sdk, name), leftovers(sdk, name)
            if r.status_code == 200:
                assert r.json()["state"] == "running"
                assert sorted(owned) == sorted(m["name"] for m in r.json()["mounts"])
            else:
                assert r.status_code == 404 and owned == [], (r.status_code, owned)
            return True

        recoveries.append(eventually(recovered, f"create killed after step {step}"))
    assert step > 3, f"only {step - 1} steps"
    print(f"create killed at each of {step - 1} steps: recovered in at most {max(recoveries):.1f} s")


def test_cascade_delete_killed_at_every_step(service, start_service, sdk, tmp_path, bind_root):
    recoveries = []
    for step in range(1, MAX_STEPS):
        group = unique(f"group{step}")
        assert (
            requests.post(
                service.url("/api/v1/sharing-groups"), json={"name": group}, headers=WRITER, timeout=60
            ).status_code
            == 201
        )
        members = [unique(f"m{step}") for _ in range(2)]
        for m in members:
            body = {"name": m, "image": IMAGE, "command": ["sleep", "3600"], "sharing_group": group}
            assert (
                requests.post(service.url("/api/v1/bindings"), json=body, headers=WRITER, timeout=60).status_code == 201
            )
        svc = held_service(start_service, tmp_path, step, bind_root)
        delete = lambda s: requests.delete(
            s.url(f"/api/v1/sharing-groups/{group}?cascade=true"), headers=WRITER, timeout=60
        )
        if not run_until_held(svc, delete, step):
            break

        def recovered():
            r = requests.get(service.url(f"/api/v1/sharing-groups/{group}"), headers=READER, timeout=30)
            left = [c.name for c in sdk.containers.list(all=True, filters={"label": f"dockvol.group={group}"})]
            assert not leftovers(sdk, group), leftovers(sdk, group)
            if r.status_code == 200:
                assert sorted(r.json()["members"]) == sorted(members)
            else:
                assert left == [], left
            return True

        recoveries.append(eventually(recovered, f"cascade delete killed after step {step}"))
    assert step > 3
    print(f"cascade delete killed at each of {step - 1} steps: recovered in at most {max(recoveries):.1f} s")


def _contents(service, name):
    r = requests.get(
        service.url(f"/api/v1/volumes/{name}/archive"), headers={**ADMIN, "Accept-Encoding": "identity"}, timeout=60
    )
    return files_of(r.content) if r.status_code == 200 else r.status_code


def _volume(service, name, files):
    body = {"name": name, "labels": {TEST_LABEL: "1"}}
    assert requests.post(service.url("/api/v1/volumes"), json=body, headers=ADMIN, timeout=60).status_code == 201
    r = requests.put(
        service.url(f"/api/v1/volumes/{name}/archive"),
        data=tar_of(files),
        headers={**ADMIN, "Content-Type": "application/x-tar"},
        timeout=60,
    )
    assert r.status_code == 200, r.text


def test_clone_killed_at_every_step(service, start_service, sdk, tmp_path, bind_root):
    source = unique("src")
    files = {"a.txt": b"alpha", "b.txt": b"beta" * 1000}
    _volume(service, source, files)
    recoveries = []
    for step in range(1, MAX_STEPS):
        target = unique(f"copy{step}")
        svc = held_service(start_service, tmp_path, step, bind_root)
        clone = lambda s: requests.post(
            s.url(f"/api/v1/volumes/{source}/clone"),
            json={"name": target, "labels": {TEST_LABEL: "1"}},
            headers=WRITER,
            timeout=60,
        )
        if not run_until_held(svc, clone, step):
            break

        def recovered():
            assert not leftovers(sdk, source), leftovers(sdk, source)
            assert _contents(service, source) == files
            copy = _contents(service, target)
            assert copy in (404, files), copy
            in_use = requests.get(service.url(f"/api/v1/volumes/{source}"), headers=READER, timeout=30).json()["in_use"]
            assert in_use is False
            return True

        recoveries.append(eventually(recovered, f"clone killed after step {step}"))
    assert step > 3
    print(f"clone killed at each of {step - 1} steps: recovered in at most {max(recoveries):.1f} s")


def test_import_killed_at_every_step(service, start_service, sdk, tmp_path, bind_root):
    name = unique("imp")
    old = {"keep.txt": b"old", "over.txt": b"old content"}
    new = {"over.txt": b"new content", "added.txt": b"added"}
    _volume(service, name, old)
    recoveries = []
    for step in range(1, MAX_STEPS):
        svc = held_service(start_service, tmp_path, step, bind_root)
        put = lambda s: requests.put(
            s.url(f"/api/v1/volumes/{name}/archive"),
            data=tar_of(new),
            headers={**ADMIN, "Content-Type": "application/x-tar"},
            timeout=60,
        )
        if not run_until_held(svc, put, step):
            break

        def recovered():
            assert not leftovers(sdk, name), leftovers(sdk, name)
            now = _contents(service, name)
            assert now in (old, {**old, **new}), now
            assert (
                requests.get(service.url(f"/api/v1/volumes/{name}"), headers=READER, timeout=30).json()["in_use"]
                is False
            )
            return True

        recoveries.append(eventually(recovered, f"import killed after step {step}"))
        _volume_reset = requests.delete(service.url(f"/api/v1/volumes/{name}"), headers=ADMIN, timeout=60)
        assert _volume_reset.status_code == 204
        _volume(service, name, old)
    assert step > 2
    print(f"import killed at each of {step - 1} steps: recovered in at most {max(recoveries):.1f} s")
