"""Operations stay atomic as the caller sees them: killed at every engine step, then recovered
by the reconciler, each leaves its resource in its old or its new state and nothing behind;
racing requests are serialised. Against the in-memory engine."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.domain import intents as intents_module
from service.domain import labels as label
from service.domain.intents import Intents
from service.errors import EngineUnavailable
from tests.support import files_of, race, tar_of

MUTATIONS = (
    "create_volume",
    "create_container",
    "start_container",
    "stop_container",
    "rename_container",
    "remove_container",
    "remove_volume",
    "put_archive",
)


class Killed(BaseException):
    """The process dies here: nothing after this line of the operation runs, not even its cleanup."""


def kill_at(monkeypatch, engine, step):
    """Make the `step`-th mutating engine call (counting from 1) kill the process; recoveries that
    would run on the way out are suppressed, as a killed process runs none."""
    count = {"n": 0}
    for name in MUTATIONS:
        real = getattr(engine, name)

        def wrapped(*args, _real=real, **kwargs):
            count["n"] += 1
            if count["n"] == step:
                raise Killed()
            return _real(*args, **kwargs)

        monkeypatch.setattr(engine, name, wrapped)
    monkeypatch.setattr(Intents, "_recover_now", lambda self, intent: None)
    return count


def restart(monkeypatch, app, engine):
    """A new process: the old one's operations are not live, its owner is dead; run one pass."""
    monkeypatch.undo()
    intents_module._LIVE.clear()
    monkeypatch.setattr(intents_module, "_dead", lambda intent: True)
    intents = app.extensions["dockvol"].intents
    return intents.retry_own() + intents.recover_dead()  # what the elected reconciler's pass does


def leftovers(engine):
    """What no finished operation may leave: locks, helpers, containers stood aside."""
    return sorted(
        c.name
        for c in engine.containers.values()
        if c.labels.get(label.ROLE) in ("lock", "helper") or c.name.startswith("dockvol-aside-")
    )


def binding_body(**extra):
    return {"image": "busybox:stable", "command": ["sleep", "3600"], "network": "none", **extra}


@pytest.fixture
def running(client, as_writer, bind_root):
    body = binding_body(
        name="app",
        mounts=[
            {"type": "volume", "target": "/data"},
            {"type": "bind", "source": f"{bind_root}/www", "target": "/www"},
        ],
    )
    assert client.post("/api/v1/bindings", json=body, headers=as_writer).status_code == 201
    return client.get("/api/v1/bindings/app", headers=as_writer).get_json()


def steps_of(monkeypatch, engine, call):
    counted = kill_at(monkeypatch, engine, step=10_000)
    call()
    monkeypatch.undo()
    return counted["n"]


class TestReplaceKilledAtEveryStep:
    NEW = binding_body(
        name="app",
        image="busybox:stable",
        command=["sleep", "7200"],
        mounts=[{"type": "volume", "target": "/data"}, {"type": "volume", "target": "/cache"}],
    )

    def put(self, client, as_writer):
        return client.put("/api/v1/bindings/app", json=self.NEW, headers=as_writer)

    def test_every_step(self, app, client, as_writer, engine, running, monkeypatch):
        old_data = next(m["name"] for m in running["mounts"] if m["target"] == "/data")
        # Count the steps with a replace that runs to the end, then kill a fresh one at each.
        total = steps_of(monkeypatch, engine, lambda: self.put(client, as_writer))
        assert total >= 6
        assert client.get("/api/v1/bindings/app", headers=as_writer).get_json()["command"] == ["sleep", "7200"]
        for step in range(1, total + 1):
            assert (
                client.put(
                    "/api/v1/bindings/app",
                    json=binding_body(
                        name="app",
                        mounts=[
                            {"type": "volume", "target": "/data"},
                            {"type": "bind", "source": running["mounts"][1]["source"], "target": "/www"},
                        ],
                    ),
                    headers=as_writer,
                ).status_code
                == 200
            )
            before = client.get("/api/v1/bindings/app", headers=as_writer).get_json()
            volumes_before = set(engine.volumes)
            kill_at(monkeypatch, engine, step)
            with pytest.raises(Killed):
                self.put(client, as_writer)
            restart(monkeypatch, app, engine)
            after = client.get("/api/v1/bindings/app", headers=as_writer)
            assert after.status_code == 200, f"step {step}: the binding is gone"
            shown = after.get_json()
            assert shown["command"] in (before["command"], ["sleep", "7200"]), f"step {step}"
            new_state = shown["command"] == ["sleep", "7200"]
            assert shown["state"] == "running", f"step {step}: {shown['state']}"
            data = next(m["name"] for m in shown["mounts"] if m["target"] == "/data")
            assert data == old_data, f"step {step}: the anonymous volume was not carried"
            assert leftovers(engine) == [], f"step {step}"
            bindings = [c for c in engine.containers.values() if c.labels.get(label.ROLE) == "binding"]
            assert len(bindings) == 1, f"step {step}: {[c.name for c in bindings]}"
            added = set(engine.volumes) - volumes_before
            cache = {m["name"] for m in shown["mounts"] if m["target"] == "/cache"}
            assert added == (cache if new_state else set()), f"step {step}: volumes left {added - cache}"
            assert volumes_before <= set(engine.volumes), f"step {step}: data lost"


@pytest.mark.parametrize("step", range(1, 8))
def test_create_killed_at_any_step_leaves_all_or_nothing(app, client, as_writer, engine, monkeypatch, step):
    body = binding_body(name="fresh", mounts=[{"type": "volume", "target": "/a"}, {"type": "volume", "target": "/b"}])
    kill_at(monkeypatch, engine, step)
    try:
        r = client.post("/api/v1/bindings", json=body, headers=as_writer)
        finished = r.status_code == 201
    except Killed:
        finished = False
    restart(monkeypatch, app, engine)
    got = client.get("/api/v1/bindings/fresh", headers=as_writer)
    if got.status_code == 200:
        assert got.get_json()["state"] == "running"
        assert {n for n, v in engine.volumes.items() if v.labels.get(label.BINDING) == "fresh"} == {
            m["name"] for m in got.get_json()["mounts"]
        }
    else:
        assert not finished and got.status_code == 404
        assert engine.volumes == {}, f"step {step}: orphan volumes {list(engine.volumes)}"
    assert leftovers(engine) == []


@pytest.mark.parametrize("step", range(1, 7))
def test_cascade_delete_killed_at_any_step_finishes_or_leaves_the_group(
    app, client, as_writer, engine, monkeypatch, step
):
    assert client.post("/api/v1/sharing-groups", json={"name": "web"}, headers=as_writer).status_code == 201
    for m in ("nginx", "tomcat"):
        assert (
            client.post(
                "/api/v1/bindings",
                json={"name": m, "image": "busybox:stable", "sharing_group": "web"},
                headers=as_writer,
            ).status_code
            == 201
        )
    kill_at(monkeypatch, engine, step)
    try:
        client.delete("/api/v1/sharing-groups/web?cascade=true", headers=as_writer)
    except Killed:
        pass
    restart(monkeypatch, app, engine)
    group = client.get("/api/v1/sharing-groups/web", headers=as_writer)
    members = [
        c.name
        for c in engine.containers.values()
        if c.labels.get(label.GROUP) == "web" and c.labels.get(label.ROLE) == "binding"
    ]
    if group.status_code == 200:
        assert sorted(group.get_json()["members"]) == ["nginx", "tomcat"] == sorted(members)
    else:
        assert members == []
    assert leftovers(engine) == []


def test_twenty_concurrent_puts_are_serialised(client, as_writer, engine, running):
    def put(i):
        body = binding_body(
            name="app", command=["sleep", str(1000 + i)], mounts=[{"type": "volume", "target": "/data"}]
        )
        return client.put("/api/v1/bindings/app", json=body, headers=as_writer).status_code

    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(put, range(20)))
    assert set(codes) <= {200, 409} and codes.count(200) >= 1, codes
    shown = client.get("/api/v1/bindings/app", headers=as_writer).get_json()
    assert shown["state"] == "running"
    assert [c.name for c in engine.containers.values() if c.labels.get(label.ROLE) == "binding"] == ["app"]
    assert leftovers(engine) == []


def test_a_volume_delete_racing_a_binding_that_mounts_it_never_both_succeed(client, as_writer, engine):
    for round_ in range(10):
        name = f"site-{round_}"
        assert client.post("/api/v1/volumes", json={"name": name}, headers=as_writer).status_code == 201
        body = binding_body(name=f"user-{round_}", mounts=[{"type": "volume", "source": name, "target": "/srv"}])
        codes = tuple(
            race(
                lambda: client.delete(f"/api/v1/volumes/{name}", headers=as_writer).status_code,
                lambda: client.post("/api/v1/bindings", json=body, headers=as_writer).status_code,
            )
        )
        assert codes in ((204, 422), (409, 201)), f"round {round_}: {codes}"
        if codes[1] == 201:
            assert label.is_managed(engine.volumes[name].labels)  # the volume it checked, not a stand-in
    assert leftovers(engine) == []


def test_a_cascade_delete_racing_a_new_member_leaves_no_member_outside_a_group(client, as_writer, engine):
    for round_ in range(10):
        group = f"g{round_}"
        assert client.post("/api/v1/sharing-groups", json={"name": group}, headers=as_writer).status_code == 201
        body = {"name": f"m{round_}", "image": "busybox:stable", "sharing_group": group}
        codes = tuple(
            race(
                lambda: client.delete(f"/api/v1/sharing-groups/{group}?cascade=true", headers=as_writer).status_code,
                lambda: client.post("/api/v1/bindings", json=body, headers=as_writer).status_code,
            )
        )
        assert codes in ((204, 422), (204, 201)), codes
        assert [c.name for c in engine.containers.values() if c.labels.get(label.GROUP) == group] == []
    assert leftovers(engine) == []


def contents(client, headers, name):
    r = client.get(f"/api/v1/volumes/{name}/archive", headers={**headers, "Accept-Encoding": "identity"})
    return files_of(r.get_data()) if r.status_code == 200 else r.status_code


@pytest.fixture
def filled(client, as_admin):
    assert client.post("/api/v1/volumes", json={"name": "src"}, headers=as_admin).status_code == 201
    r = client.put(
        "/api/v1/volumes/src/archive",
        data=tar_of({"a.txt": b"alpha", "b.txt": b"beta"}),
        headers={**as_admin, "Content-Type": "application/x-tar"},
    )
    assert r.status_code == 200, r.get_json()
    return contents(client, as_admin, "src")


@pytest.mark.parametrize("operation", ["clone", "rename"])
def test_clone_and_rename_killed_at_any_step_leave_one_whole_copy(
    app, client, as_admin, engine, monkeypatch, filled, operation
):
    total = None
    for step in range(1, 20):
        kill_at(monkeypatch, engine, step)
        try:
            r = client.post(f"/api/v1/volumes/src/{operation}", json={"name": "dst"}, headers=as_admin)
            finished = r.status_code in (200, 201)
        except Killed:
            finished = False
        restart(monkeypatch, app, engine)
        src, dst = contents(client, as_admin, "src"), contents(client, as_admin, "dst")
        listed = {v["name"] for v in client.get("/api/v1/volumes", headers=as_admin).get_json()}
        if operation == "clone":
            assert src == filled and dst in (404, filled), f"step {step}: {src} {dst}"
        else:
            assert (src, dst) in ((filled, 404), (404, filled)), f"step {step}: {src} {dst}"
        assert listed == {n for n, c in (("src", src), ("dst", dst)) if c != 404}
        assert leftovers(engine) == [], f"step {step}"
        if finished:
            total = step
            break
        for name in ("dst",) if operation == "clone" or src != 404 else ():
            client.delete(f"/api/v1/volumes/{name}", headers=as_admin)
        if operation == "rename" and src == 404:  # it went through: put things back for the next step
            assert client.post("/api/v1/volumes/dst/rename", json={"name": "src"}, headers=as_admin).status_code == 200
    assert total and total > 3


ENGINE_CALLS = (
    *MUTATIONS,
    "list_volumes",
    "inspect_volume",
    "list_containers",
    "container_state",
    "get_archive",
    "image_present",
    "pause_container",
    "unpause_container",
)


def engine_away_after(monkeypatch, engine, step):
    """After the `step`-th mutating engine call, every engine call fails as with the engine
    stopped, until monkeypatch.undo() (the engine is back); the process lives on."""
    count = {"n": 0}
    for name in ENGINE_CALLS:
        real = getattr(engine, name)

        def wrapped(*args, _real=real, _name=name, **kwargs):
            if count["n"] >= step:
                raise EngineUnavailable("the engine is away")
            if _name in MUTATIONS:
                count["n"] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(engine, name, wrapped)
    return count


@pytest.mark.parametrize("operation", ["clone", "rename"])
def test_clone_and_rename_that_lose_the_engine_at_any_step_are_recovered_by_their_own_process(
    app, client, as_admin, engine, monkeypatch, filled, operation
):
    """Including right after the first of its two locks: the release that fails then is retried."""
    for step in range(1, 20):
        engine_away_after(monkeypatch, engine, step)
        r = client.post(f"/api/v1/volumes/src/{operation}", json={"name": "dst"}, headers=as_admin)
        monkeypatch.undo()
        if r.status_code in (200, 201):
            break
        assert r.status_code == 503, (step, r.get_json())
        app.extensions["dockvol"].intents.retry_own()  # this process's reconciler, once the engine is back
        src, dst = contents(client, as_admin, "src"), contents(client, as_admin, "dst")
        if operation == "clone":
            assert src == filled and dst in (404, filled), f"step {step}: {src} {dst}"
        else:
            assert (src, dst) in ((filled, 404), (404, filled)), f"step {step}: {src} {dst}"
        assert leftovers(engine) == [], f"step {step}"
        if dst != 404 and src != 404:
            client.delete("/api/v1/volumes/dst", headers=as_admin)
        elif src == 404:
            assert client.post("/api/v1/volumes/dst/rename", json={"name": "src"}, headers=as_admin).status_code == 200
    else:
        pytest.fail("never ran to its end")
    assert step > 3


def test_a_rename_racing_an_import_loses_neither(client, as_admin, engine, filled):
    codes = tuple(
        race(
            lambda: (
                client.put(
                    "/api/v1/volumes/src/archive",
                    data=tar_of({"new.txt": b"new"}),
                    headers={**as_admin, "Content-Type": "application/x-tar"},
                ).status_code
            ),
            lambda: client.post("/api/v1/volumes/src/rename", json={"name": "moved"}, headers=as_admin).status_code,
        )
    )
    moved = contents(client, as_admin, "moved")
    if codes == (200, 200):  # the import went first, then the rename carried it over
        assert moved == {**filled, "new.txt": b"new"}
    else:  # the rename went first: the import found no volume
        assert codes == (404, 200) and moved == filled, codes
    assert contents(client, as_admin, "src") == 404
    assert leftovers(engine) == []


OLD = {"keep.txt": b"old", "over.txt": b"old content"}
NEW = {"over.txt": b"new content", "added.txt": b"added"}


@pytest.fixture
def imported(client, as_admin):
    assert client.post("/api/v1/volumes", json={"name": "data"}, headers=as_admin).status_code == 201
    r = client.put(
        "/api/v1/volumes/data/archive", data=tar_of(OLD), headers={**as_admin, "Content-Type": "application/x-tar"}
    )
    assert r.status_code == 200
    return "data"


def import_new(client, as_admin):
    return client.put(
        "/api/v1/volumes/data/archive", data=tar_of(NEW), headers={**as_admin, "Content-Type": "application/x-tar"}
    )


def test_an_import_killed_at_any_step_leaves_old_or_new_content(app, client, as_admin, engine, monkeypatch, imported):
    for step in range(1, 30):
        kill_at(monkeypatch, engine, step)
        try:
            finished = import_new(client, as_admin).status_code == 200
        except Killed:
            finished = False
        restart(monkeypatch, app, engine)
        now = contents(client, as_admin, "data")
        assert now in (OLD, {**OLD, **NEW}), f"step {step}: {now}"
        assert set(engine.volumes) == {"data"} and leftovers(engine) == [], f"step {step}: {list(engine.volumes)}"
        if finished:
            break
        assert client.delete("/api/v1/volumes/data", headers=as_admin).status_code == 204  # back to OLD
        assert client.post("/api/v1/volumes", json={"name": "data"}, headers=as_admin).status_code == 201
        r = client.put(
            "/api/v1/volumes/data/archive", data=tar_of(OLD), headers={**as_admin, "Content-Type": "application/x-tar"}
        )
        assert r.status_code == 200
    assert finished and step > 6, step


@pytest.mark.parametrize("fault", ["kill", "engine"])
def test_an_import_into_new_directories_interrupted_at_any_step_leaves_old_or_new_content(
    app, client, as_admin, engine, monkeypatch, imported, fault
):
    """The directories a path names are made one by one from the top, after the upload is staged:
    killed, or the engine lost, between any two of them, the import goes forward, whole."""
    new = {f"deep/er/{name}": data for name, data in NEW.items()}
    for step in range(1, 40):
        if fault == "kill":
            kill_at(monkeypatch, engine, step)
        else:
            engine_away_after(monkeypatch, engine, step)
        try:
            r = client.put(
                "/api/v1/volumes/data/archive?path=deep/er",
                data=tar_of(NEW),
                headers={**as_admin, "Content-Type": "application/x-tar"},
            )
            finished = r.status_code == 200
        except Killed:
            finished = False
        if fault == "kill":
            restart(monkeypatch, app, engine)
        else:
            monkeypatch.undo()
            app.extensions["dockvol"].intents.retry_own()
        now = contents(client, as_admin, "data")
        assert now in (OLD, {**OLD, **new}), f"step {step}: {now}"
        assert set(engine.volumes) == {"data"} and leftovers(engine) == [], f"step {step}: {list(engine.volumes)}"
        if finished:
            break
        assert client.delete("/api/v1/volumes/data", headers=as_admin).status_code == 204  # back to OLD
        assert client.post("/api/v1/volumes", json={"name": "data"}, headers=as_admin).status_code == 201
        r = client.put(
            "/api/v1/volumes/data/archive", data=tar_of(OLD), headers={**as_admin, "Content-Type": "application/x-tar"}
        )
        assert r.status_code == 200
    assert finished and step > 8, step


def test_an_import_killed_half_way_through_extracting_is_finished_not_left_mixed(
    app, client, as_admin, engine, monkeypatch, imported
):
    real_put = engine.put_archive

    def cut_short(container, path, data):
        mounted = {m.name for m in engine._find(container).mounts}
        if "data" in mounted and path == "/v":  # extracting into the volume itself: die half-way
            real_put(container, path, tar_of({"over.txt": b"new c"}))  # one file cut mid-write
            raise Killed()
        return real_put(container, path, data)

    monkeypatch.setattr(engine, "put_archive", cut_short)
    monkeypatch.setattr(Intents, "_recover_now", lambda self, intent: None)
    with pytest.raises(Killed):
        import_new(client, as_admin)
    assert contents(client, as_admin, "data")["over.txt"] == b"new c"  # what a kill leaves, until...
    restart(monkeypatch, app, engine)
    assert contents(client, as_admin, "data") == {**OLD, **NEW}  # ...the recovery extracts it again, whole
    assert set(engine.volumes) == {"data"} and leftovers(engine) == []


def test_containers_paused_for_an_export_are_unpaused_when_dockvol_dies_mid_stream(
    app, client, as_writer, engine, monkeypatch, imported
):
    body = binding_body(name="writer", mounts=[{"type": "volume", "source": "data", "target": "/data"}])
    assert client.post("/api/v1/bindings", json=body, headers=as_writer).status_code == 201
    r = client.get("/api/v1/volumes/data/archive?pause=true", headers=as_writer)
    assert r.status_code == 200
    assert next(c for c in engine.containers.values() if c.name == "writer").state == "paused"
    # The process dies with the stream unread: nothing of the request's own cleanup runs.
    restart(monkeypatch, app, engine)
    assert next(c for c in engine.containers.values() if c.name == "writer").state == "running"
    assert [c.name for c in engine.containers.values() if c.labels.get(label.ROLE) == "lock"] == []


def test_a_paused_export_read_to_the_end_unpauses_and_leaves_nothing(client, as_writer, engine, imported):
    body = binding_body(name="writer", mounts=[{"type": "volume", "source": "data", "target": "/data"}])
    assert client.post("/api/v1/bindings", json=body, headers=as_writer).status_code == 201
    r = client.get("/api/v1/volumes/data/archive?pause=true", headers={**as_writer, "Accept-Encoding": "identity"})
    assert files_of(r.get_data()) == OLD
    r.close()
    assert next(c for c in engine.containers.values() if c.name == "writer").state == "running"
    assert leftovers(engine) == []


def test_the_reconciler_sweeps_the_helpers_a_killed_process_left_outside_any_operation(app, engine):
    """A killed export (or read) leaves a helper with no operation: it would keep its volume in
    use until another helper happened to be made on this host."""
    from service.domain.helpers import Helpers, owner

    engine.create_volume("v", "local", {}, {})
    dead = subprocess.Popen(["true"])
    dead.wait()
    helpers = Helpers(engine)
    mine = helpers.open([("v", "/w", True)])
    left = helpers.open([("v", "/v", True)])
    engine.containers[left.id].labels[label.OWNER] = owner(dead.pid)  # as if that process had made it
    assert app.extensions["dockvol"].intents.recover_dead() == 1
    assert left.id not in engine.containers and mine.id in engine.containers


def test_a_helper_whose_removal_failed_is_removed_by_its_own_process_later(app, client, as_admin, engine, monkeypatch):
    """An export's helper (no operation) when the engine goes away as it ends: the process lives
    on, so no sweep of the dead's would find it; its own reconciler pass does."""
    assert client.post("/api/v1/volumes", json={"name": "vol"}, headers=as_admin).status_code == 201
    monkeypatch.setattr(engine, "remove_container", lambda *a, **k: (_ for _ in ()).throw(EngineUnavailable("away")))
    r = client.get("/api/v1/volumes/vol/archive", headers=as_admin)
    assert r.status_code == 200
    r.get_data()  # read to its end: the helper goes then
    assert leftovers(engine) != []
    app.extensions["dockvol"].intents.retry_own()  # the engine is still away: kept for the next pass
    assert leftovers(engine) != []
    monkeypatch.undo()
    app.extensions["dockvol"].intents.retry_own()
    assert leftovers(engine) == []


def test_an_export_that_loses_the_engine_as_it_begins_leaves_no_helper(app, client, as_admin, engine, monkeypatch):
    """Its helper is made, then the engine goes before the volume is looked at again."""
    assert client.post("/api/v1/volumes", json={"name": "vol"}, headers=as_admin).status_code == 201
    engine_away_after(monkeypatch, engine, 1)  # the helper's creation is the export's one change
    assert client.get("/api/v1/volumes/vol/archive", headers=as_admin).status_code == 503
    monkeypatch.undo()
    assert leftovers(engine) != []  # the engine was away: it could not go yet
    app.extensions["dockvol"].intents.retry_own()
    assert leftovers(engine) == []


def test_an_owner_label_names_a_process_of_this_host_or_of_another():
    """Locks and helpers carry their owner as host:pid; only this host's pids can be checked."""
    import socket

    from service.domain.helpers import local_pid, owner

    assert local_pid(owner(4242)) == 4242 and local_pid(owner()) is not None
    for other in ("elsewhere:4242", "", "4242", f"{socket.gethostname()}:x", f"{socket.gethostname()}:\u00b2"):
        assert local_pid(other) is None, other


@pytest.mark.parametrize("listed", ["oldest first", "newest first"])
def test_a_note_reaches_the_recovery_of_an_operation_killed_after_it_and_its_lock_goes(
    app, engine, monkeypatch, listed
):
    intents = app.extensions["dockvol"].intents
    seen = []
    intents.recoverer("test.noted", seen.append)
    with pytest.MonkeyPatch.context() as order:
        if listed == "newest first":  # as a real engine lists containers
            real_list = engine.list_containers
            order.setattr(engine, "list_containers", lambda *a, **kw: real_list(*a, **kw)[::-1])
        kill_at(monkeypatch, engine, step=3)  # the operation's lock, its note, then the change the note tells of
        with pytest.raises(Killed), intents.run("test.noted", ["thing/a"], name="a") as intent:
            intent.begin()
            intents.note(intent, made=["x", "y"])
            engine.create_volume("made", "local", {}, {})
        assert len(leftovers(engine)) == 2
        restart(monkeypatch, app, engine)
    (recovered,) = seen
    assert (recovered.op, recovered.args) == (intent.op, {"name": "a", "made": ["x", "y"]})
    assert leftovers(engine) == []
