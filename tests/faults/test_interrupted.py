"""Every multi-step operation interrupted after each change it makes to the engine, in two ways:

- `kill`: dockvol is killed (SIGKILL to its whole process group), as an OOM kill or a power cut
  would; the service that keeps running on the same engine recovers.
- `engine`: the engine stops there (as a host reboot or an engine upgrade would); the operation
  goes on against no engine and fails; the engine starts again and dockvol recovers.
- `workers` (some tests): gunicorn's workers alone are killed (SIGKILL), as an OOM kill of one
  process would; the master starts new ones.

Then the resource is in its old or its new state, under its name, with its data, and nothing is
left behind. The step is exact: the service under test holds still right after its N-th change to
the engine (tests/fakes/holding.py, a test-only app factory). Steps are counted until an operation runs
to its end without reaching the hold."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
import requests

from service.fleet import forwarding
from tests.e2e.conftest import free_port, service_env
from tests.fakes.holding import held_app
from tests.support import IMAGE, TEST_LABEL, engine_host, files_of, sleeper, tar_of, unique

from .conftest import ADMIN, READER, WRITER

RECOVERY_SECONDS = 30
MAX_STEPS = 20
FAULTS = pytest.mark.parametrize("fault", ["kill", "engine"])
# Each step restarts dockvol (and the engine: a few seconds; test containers end on SIGTERM): an operation
# of 13 steps takes about 4 minutes on a busy machine, past the suite's 300 s default.
LONG = pytest.mark.timeout(900)


def leftovers(sdk, name):
    """dockvol's own containers an operation on `name` may leave: locks, helpers, asides."""
    return [
        c.name
        for c in sdk.containers.list(all=True, filters={"label": "dockvol.managed=true"})
        if c.labels.get("dockvol.role") in ("lock", "helper") or c.name.startswith("dockvol-aside-")
    ]


class Interrupt:
    """One operation's run, interrupted by `fault` after its `step`-th engine change."""

    def __init__(self, fault, engine_ctl, start_service, tmp_path, bind_root):
        self.fault, self.engine_ctl = fault, engine_ctl
        self.start_service, self.tmp_path, self.bind_root = start_service, tmp_path, bind_root
        self.svc = None

    def run(self, step, send, port=None, **env):
        """Send the request to a service that holds at `step`; True if it held there (and the
        fault was done), False if the operation finished first (there is no such step). `port`
        and `env`: the service's own, when it needs more than the others."""
        release = self.tmp_path / f"release-{self.fault}-{step}"
        env = service_env(
            engine_host(), DOCKVOL_WORKERS="1", DOCKVOL_BIND_ROOTS=json.dumps([str(self.bind_root)]), **env
        )
        svc = self.svc = self.start_service(env, port, held_app(step, release))

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
                if self.fault == "kill":
                    svc.kill()
                elif self.fault == "workers":
                    svc.kill_workers()
                    release.touch()  # the worker the master starts instead must not hold at this step too
                else:
                    self.engine_ctl("stop")
                    try:
                        release.touch()
                        thread.join(60)  # the operation goes on against no engine, and fails
                    finally:  # even when the test is cut short: the tests after it need the engine
                        self.engine_ctl("start")
                return True
            if not thread.is_alive():
                svc.stop()
                return False
            time.sleep(0.02)
        svc.kill()
        raise AssertionError(f"step {step}: neither held nor finished")

    def done(self):
        """The interrupted service has recovered (or was killed): stop it."""
        self.svc.stop()


@pytest.fixture
def interrupt(fault, engine_ctl, start_service, tmp_path, bind_root):
    return Interrupt(fault, engine_ctl, start_service, tmp_path, bind_root)


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


@FAULTS
@LONG
def test_put_interrupted_at_every_step(service, interrupt, sdk, fault):
    name = unique("replace")
    assert (
        requests.post(
            service.url("/api/v1/bindings"),
            json=binding_body(name, sleeper(), "/data"),
            headers=WRITER,
            timeout=60,
        ).status_code
        == 201
    )
    sdk.containers.get(name).exec_run(["sh", "-c", "echo precious > /data/file"])
    data_volume = next(m["Name"] for m in sdk.containers.get(name).attrs["Mounts"])
    recoveries = []
    for step in range(1, MAX_STEPS):
        new = sleeper(4000 + step)
        before = requests.get(service.url(f"/api/v1/bindings/{name}"), headers=READER, timeout=30).json()["command"]
        put = lambda s: requests.put(
            s.url(f"/api/v1/bindings/{name}"),
            json=binding_body(name, new, "/data", "/cache"),
            headers=WRITER,
            timeout=60,
        )
        if not interrupt.run(step, put):
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

        recoveries.append(eventually(recovered, f"PUT ({fault}) after step {step}"))
        interrupt.done()
    else:
        pytest.fail("the PUT never ran to its end")
    assert step > 5, f"only {step - 1} steps"
    print(f"PUT interrupted ({fault}) at each of {step - 1} steps: recovered in at most {max(recoveries):.1f} s")


@FAULTS
@LONG
def test_create_with_anonymous_volumes_interrupted_at_every_step(service, interrupt, sdk, fault):
    recoveries = []
    for step in range(1, MAX_STEPS):
        name = unique(f"create{step}")
        post = lambda s: requests.post(
            s.url("/api/v1/bindings"),
            json=binding_body(name, sleeper(), "/a", "/b"),
            headers=WRITER,
            timeout=60,
        )
        if not interrupt.run(step, post):
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

        recoveries.append(eventually(recovered, f"create ({fault}) after step {step}"))
        interrupt.done()
    assert step > 3, f"only {step - 1} steps"
    print(f"create interrupted ({fault}) at each of {step - 1} steps: recovered in at most {max(recoveries):.1f} s")


@FAULTS
@LONG
def test_cascade_delete_interrupted_at_every_step(service, interrupt, sdk, fault):
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
            body = {"name": m, "image": IMAGE, "command": sleeper(), "sharing_group": group}
            assert (
                requests.post(service.url("/api/v1/bindings"), json=body, headers=WRITER, timeout=60).status_code == 201
            )
        delete = lambda s: requests.delete(
            s.url(f"/api/v1/sharing-groups/{group}?cascade=true"), headers=WRITER, timeout=60
        )
        if not interrupt.run(step, delete):
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

        recoveries.append(eventually(recovered, f"cascade delete ({fault}) after step {step}"))
        interrupt.done()
    assert step > 3
    print(
        f"cascade delete interrupted ({fault}) at each of {step - 1} steps:"
        f" recovered in at most {max(recoveries):.1f} s"
    )


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


@FAULTS
@LONG
def test_clone_interrupted_at_every_step(service, interrupt, sdk, fault):
    source = unique("src")
    files = {"a.txt": b"alpha", "b.txt": b"beta" * 1000}
    _volume(service, source, files)
    recoveries = []
    for step in range(1, MAX_STEPS):
        target = unique(f"copy{step}")
        clone = lambda s: requests.post(
            s.url(f"/api/v1/volumes/{source}/clone"),
            json={"name": target, "labels": {TEST_LABEL: "1"}},
            headers=WRITER,
            timeout=60,
        )
        if not interrupt.run(step, clone):
            break

        def recovered():
            assert not leftovers(sdk, source), leftovers(sdk, source)
            assert _contents(service, source) == files
            copy = _contents(service, target)
            assert copy in (404, files), copy
            in_use = requests.get(service.url(f"/api/v1/volumes/{source}"), headers=READER, timeout=30).json()["in_use"]
            assert in_use is False
            return True

        recoveries.append(eventually(recovered, f"clone ({fault}) after step {step}"))
        interrupt.done()
    assert step > 3
    print(f"clone interrupted ({fault}) at each of {step - 1} steps: recovered in at most {max(recoveries):.1f} s")


@FAULTS
@LONG
def test_cross_node_clone_interrupted_at_every_step_on_the_copys_node(service, interrupt, sdk, fault, tmp_path):
    """The copy's side of a clone between nodes (fleet mode): an instance, itself its only peer,
    is asked (as another node's instance would ask it) to make a copy from the source node's
    export. Killed, or its engine stopped, at each step, the copy is gone or whole."""
    source = unique("xsrc")
    files = {"a.txt": b"alpha", "d/b.txt": b"beta" * 10_000}
    _volume(service, source, files)
    secret = tmp_path / "fleet-secret"
    secret.write_bytes(b"faults-tier-fleet-secret-0123456789")
    node = sdk.info()["Name"]
    recoveries = []
    for step in range(1, MAX_STEPS):
        copy = unique(f"xcopy{step}")
        port = free_port()
        order = {"name": copy, "labels": {TEST_LABEL: "1"}, "pause": False, "source": source, "source_node": node}

        def receive(s):
            caller = forwarding.Caller("e2e-writer", frozenset({"write"}))
            signed = forwarding.sign(secret.read_bytes(), caller, node, "POST", "/fleet/v1/clones", time.time())
            return requests.post(s.url("/fleet/v1/clones"), json=order, headers={forwarding.HEADER: signed}, timeout=60)

        fleet = {"DOCKVOL_FLEET": "swarm", "DOCKVOL_FLEET_SECRET_FILE": str(secret)}
        if not interrupt.run(step, receive, port, DOCKVOL_FLEET_PEERS=f"127.0.0.1:{port}", **fleet):
            break

        def recovered():
            assert not leftovers(sdk, source), leftovers(sdk, source)
            assert _contents(service, source) == files
            now = _contents(service, copy)
            assert now in (404, files), now
            return True

        recoveries.append(eventually(recovered, f"cross-node clone ({fault}) after step {step}"))
        interrupt.done()
    assert step > 4  # the lock, the source's helper, the copy, its helper, its archive
    print(f"cross-node clone interrupted ({fault}) at each of {step - 1} steps: recovered in {max(recoveries):.1f} s")


@FAULTS
@LONG
def test_import_interrupted_at_every_step(service, interrupt, sdk, fault):
    name = unique("imp")
    old = {"keep.txt": b"old", "over.txt": b"old content"}
    new = {"over.txt": b"new content", "added.txt": b"added"}
    _volume(service, name, old)
    recoveries = []
    for step in range(1, MAX_STEPS):
        put = lambda s: requests.put(
            s.url(f"/api/v1/volumes/{name}/archive"),
            data=tar_of(new),
            headers={**ADMIN, "Content-Type": "application/x-tar"},
            timeout=60,
        )
        if not interrupt.run(step, put):
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

        recoveries.append(eventually(recovered, f"import ({fault}) after step {step}"))
        interrupt.done()
        _volume_reset = requests.delete(service.url(f"/api/v1/volumes/{name}"), headers=ADMIN, timeout=60)
        assert _volume_reset.status_code == 204
        _volume(service, name, old)
    assert step > 2
    print(f"import interrupted ({fault}) at each of {step - 1} steps: recovered in at most {max(recoveries):.1f} s")


def tree(root):
    """Every path under `root`, with its kind (links not followed)."""
    found = []
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(here, name)
            kind = "link" if os.path.islink(path) else "dir" if os.path.isdir(path) else "file"
            found.append((os.path.relpath(path, root), kind))
    return sorted(found)


@pytest.mark.parametrize("fault", ["kill", "workers"])
@LONG
def test_create_that_makes_its_bind_source_killed_at_every_step(service, interrupt, sdk, bind_root, fault):
    """A bind source whose last three directories are missing (their parent exists): killed at
    each step, the binding is whole with its source, or gone with every directory it made."""
    recoveries, outcomes = [], {}
    for step in range(1, MAX_STEPS):
        name = unique(f"mkdirs{step}")
        parent = bind_root / name
        parent.mkdir()
        source = parent / "a" / "b" / "c"
        before = tree(bind_root)
        began = int(time.time()) - 1
        body = {**binding_body(name, sleeper()), "mounts": [{"type": "bind", "source": str(source), "target": "/w"}]}
        post = lambda s: requests.post(s.url("/api/v1/bindings"), json=body, headers=WRITER, timeout=60)
        if not interrupt.run(step, post):
            break

        def recovered():
            assert not leftovers(sdk, name), leftovers(sdk, name)
            r = requests.get(service.url(f"/api/v1/bindings/{name}"), headers=READER, timeout=30)
            in_engine = sdk.containers.list(all=True, filters={"name": f"^/{name}$"})
            if r.status_code == 200:
                assert r.json()["state"] == "running", r.json()["state"]
                assert [m["source"] for m in r.json()["mounts"]] == [str(source)]
                assert source.is_dir() and len(in_engine) == 1
                outcomes[step] = "whole"
                return True
            assert r.status_code == 404, r.status_code
            listed = requests.get(service.url("/api/v1/bindings"), headers=READER, timeout=30).json()
            assert name not in [b["name"] for b in listed], "still listed"
            assert in_engine == [], in_engine
            assert tree(bind_root) == before, f"left: {sorted(set(tree(bind_root)) - set(before))}"
            outcomes[step] = "gone after its container was made" if created(sdk, name, began) else "gone"
            return True

        def counted():  # what GET /projects says the project holds, as the engine holds it
            usage = requests.get(service.url("/api/v1/projects/default"), headers=READER, timeout=30).json()["usage"]
            assert usage["bindings"] == default_bindings(sdk), usage
            return True

        recoveries.append(eventually(recovered, f"create with new directories ({fault}) after step {step}"))
        eventually(counted, f"project usage ({fault}) after step {step}")
        interrupt.done()
    else:
        pytest.fail("the create never ran to its end")
    assert step > 3, f"only {step - 1} steps"
    assert "gone after its container was made" in outcomes.values(), outcomes
    print(
        f"create with new directories interrupted ({fault}) at each of {step - 1} steps {outcomes}:"
        f" recovered in at most {max(recoveries):.1f} s"
    )


def default_bindings(sdk):
    """The bindings of the project `default` in the engine (those from before projects have no label)."""
    containers = sdk.api.containers(all=True, filters={"label": ["dockvol.managed=true", "dockvol.role=binding"]})
    return len(
        {
            c["Labels"].get("dockvol.binding", c["Names"][0])
            for c in containers
            if c["Labels"].get("dockvol.project", "default") == "default"
        }
    )


def created(sdk, name, since):
    """Whether the engine made a container of this name since then (its events say)."""
    events = sdk.events(
        since=since, until=int(time.time()) + 1, filters={"type": "container", "event": "create", "container": name}
    )
    try:
        return any(True for _ in events)
    finally:
        events.close()
