"""The event-fed view of the engine (service/engine/viewed.py) against the in-memory engine and
its event stream: it answers reads as the engine would, never from a view it cannot vouch for."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest

from service.engine import viewed
from service.engine.port import ContainerSpec, EngineEvent, MountSpec
from service.engine.viewed import View, ViewedEngine
from service.engine.written import SLOTS, UNKNOWN, Written, digest
from service.errors import NotFound
from tests.fakes.memory import InMemoryEngine


@pytest.fixture
def engine():
    e = InMemoryEngine()
    e.create_volume("before", "local", {}, {"team": "web"})
    return e


@pytest.fixture
def view(engine):
    v = View(engine)
    v.start_in_background()
    yield primed(v)
    v.stop()
    engine.down = True  # ends the stream the view follows
    v._thread.join(5)


def fresh(ve: ViewedEngine) -> ViewedEngine:
    """`ve` in a new read scope: what one GET request sees."""
    ve.new_scope(reading=True)
    return ve


@contextmanager
def writing(ve: ViewedEngine) -> Iterator[ViewedEngine]:
    """`ve` in a write scope: one POST, PUT or DELETE request, settled before it is answered."""
    ve.new_scope(reading=False)
    yield ve
    ve.settle()
    ve.end_scope()


def primed(view: View) -> View:
    deadline = time.monotonic() + 5
    while not view.stats()["primed"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert view.stats()["primed"]
    return view


def same(engine, viewed_engine):
    """The view's answers equal the engine's, for every read and filter the domain uses."""
    assert sorted(fresh(viewed_engine).list_volumes(), key=str) == sorted(engine.list_volumes(), key=str)
    assert fresh(viewed_engine).list_volumes(["team=web"]) == engine.list_volumes(["team=web"])
    assert sorted(fresh(viewed_engine).list_containers(), key=str) == sorted(engine.list_containers(), key=str)
    for v in engine.list_volumes():
        assert fresh(viewed_engine).inspect_volume(v.name) == v
        assert fresh(viewed_engine).list_containers(volume=v.name) == engine.list_containers(volume=v.name)
    for c in engine.list_containers():
        assert fresh(viewed_engine).list_containers(name=c.name) == [c]


def test_a_primed_view_answers_every_read_without_asking_the_engine(engine, view):
    ve = ViewedEngine(engine, view)
    engine.calls.clear()
    assert [v.name for v in fresh(ve).list_volumes()] == ["before"]
    assert fresh(ve).inspect_volume("before").labels == {"team": "web"}
    with pytest.raises(NotFound):
        fresh(ve).inspect_volume("missing")
    assert sum(engine.calls.values()) == 0


def test_every_write_is_seen_by_the_next_read(engine, view):
    """Each read right after an answered write reflects it; none is ever stale."""
    ve = ViewedEngine(engine, view)
    with writing(ve):
        ve.create_volume("data", "local", {}, {})
    assert fresh(ve).inspect_volume("data").name == "data"
    with writing(ve):
        cid = ve.create_container(
            ContainerSpec("app", "busybox:stable", mounts=(MountSpec("volume", "/data", "data"),))
        )
    assert [c.id for c in fresh(ve).list_containers(volume="data")] == [cid]
    with writing(ve):
        ve.start_container(cid)
    assert fresh(ve).list_containers(name="app")[0].state == "running"
    with writing(ve):
        ve.rename_container(cid, "app2")
    assert fresh(ve).list_containers(name="app") == [] and fresh(ve).list_containers(name="app2")[0].id == cid
    with writing(ve):
        ve.pause_container(cid)
    assert fresh(ve).list_containers(name="app2")[0].state == "paused"
    with writing(ve):
        ve.unpause_container(cid)
        ve.stop_container(cid)
    assert fresh(ve).list_containers(name="app2")[0].state == "exited"
    with writing(ve):
        ve.remove_container(cid)
        ve.remove_volume("data")
    assert fresh(ve).list_containers() == []
    with pytest.raises(NotFound):
        fresh(ve).inspect_volume("data")
    same(engine, ve)


def test_changes_made_to_the_engine_directly_reach_reads_without_being_waited_for(engine, view):
    """`docker volume create` answered no one here: reads show it once the stream brings it."""
    ve = ViewedEngine(engine, view)
    engine.create_volume("direct", "local", {}, {})
    deadline = time.monotonic() + 5
    while "direct" not in {v.name for v in fresh(ve).list_volumes()}:
        assert time.monotonic() < deadline, "the stream never brought it"
        time.sleep(0.01)
    engine.calls.clear()
    assert fresh(ve).inspect_volume("direct").name == "direct"
    assert sum(engine.calls.values()) == 0
    same(engine, ve)


def test_concurrent_writers_and_readers_never_read_stale(engine, view):
    ve = ViewedEngine(engine, view)
    stale: list[str] = []

    def writer_reader(n: int) -> None:
        for i in range(50):
            name = f"v{n}-{i}"
            with writing(ve):
                ve.create_volume(name, "local", {}, {})
            if name not in {v.name for v in fresh(ve).list_volumes()}:
                stale.append(f"create {name}")
            with writing(ve):
                ve.remove_volume(name)
            try:
                fresh(ve).inspect_volume(name)
                stale.append(f"delete {name}")
            except NotFound:
                pass

    threads = [threading.Thread(target=writer_reader, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stale == []
    same(engine, ve)


def test_two_workers_sharing_the_ring_never_read_what_the_other_wrote_stale(engine, tmp_path, monkeypatch):
    """Each worker has its own view; a write answered by one is read by the other at once, even
    when the other's view is slow to apply it (the read waits for it)."""
    ring = str(tmp_path / "written")
    workers = []
    for _ in range(2):
        view = View(engine)
        view.share(ring)
        view.start_in_background()
        workers.append(ViewedEngine(engine, primed(view)))
    one, other = workers
    slow = other.view.apply
    monkeypatch.setattr(other.view, "apply", lambda e: (time.sleep(0.02), slow(e)))
    sources: list[str] = []
    other.view.observe = lambda what, value: what.startswith("read_") and sources.append(what)
    stale = []
    try:
        for i in range(30):
            with writing(one):
                one.create_volume(f"w{i}", "local", {}, {"i": str(i)})
            engine.calls.clear()
            try:
                if fresh(other).inspect_volume(f"w{i}").labels != {"i": str(i)}:
                    stale.append(f"create w{i}")
            except NotFound:
                stale.append(f"create w{i}: not found")
            assert engine.calls["events"] == 0  # no proof asked of the engine: it waited for its view
            with writing(other):
                other.remove_volume(f"w{i}")
            with pytest.raises(NotFound):
                fresh(one).inspect_volume(f"w{i}")
    finally:
        for w in workers:
            w.view.stop()
        engine.down = True
    assert stale == []
    assert sources.count("read_view") == 30 and "read_engine" not in sources


def test_a_reader_that_fell_more_than_the_ring_behind_proves_its_view_with_the_engine(engine, view, monkeypatch):
    monkeypatch.setattr(view, "written", Written())
    ve = ViewedEngine(engine, view)
    view.written.append([(time.time_ns(), 1 + i) for i in range(SLOTS)])
    view.written.append([(time.time_ns(), 1)])  # lapped: what the first one was is gone
    engine.calls.clear()
    assert fresh(ve).inspect_volume("before").name == "before"
    assert engine.calls["events"] == 1 and engine.calls["inspect_volume"] == 0
    assert fresh(ve).inspect_volume("before").name == "before"  # proven up to there: no second proof
    assert engine.calls["events"] == 1


def test_a_write_whose_changes_could_not_be_asked_makes_readers_prove_their_view(engine, view):
    ve = ViewedEngine(engine, view)
    with writing(ve):
        ve.create_volume("mine", "local", {}, {})
        engine.down = True  # the engine went away after the write: the writer cannot ask what changed
    engine.down = False
    assert view.written.since(view.written.count() - 1)[1] == [(pytest.approx(time.time_ns(), abs=5e9), UNKNOWN)]
    primed(view)
    engine.calls.clear()
    assert fresh(ve).inspect_volume("mine").name == "mine"
    assert engine.calls["events"] + engine.calls["inspect_volume"] >= 1  # proven, or read from the engine


def test_the_ring_keeps_what_was_appended_across_processes(tmp_path):
    path = str(tmp_path / "written")
    ring = Written(path)
    pid = os.fork()
    if pid == 0:  # another worker
        try:
            Written(path).append([(10, 11), (20, 21)])
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert ring.since(0) == (2, [(10, 11), (20, 21)])
    ring.append([(30, 31)])
    assert Written(path).since(1) == (3, [(20, 21), (30, 31)])
    ring.append([(i, i) for i in range(SLOTS)])
    assert ring.since(3) == (3 + SLOTS, [(i, i) for i in range(SLOTS)])
    assert ring.since(2) == (3 + SLOTS, None)  # overwritten: the reader must find out another way
    caught_up = ring.count()
    ring.append([(i, i) for i in range(SLOTS + 1)])  # one append larger than the ring
    assert ring.since(caught_up) == (caught_up + SLOTS + 1, None)  # not the last SLOTS as if they were all
    assert digest(1, "volume", "create", "x") == digest(1, "volume", "create", "x") != UNKNOWN


def test_a_view_that_is_not_primed_sends_reads_to_the_engine(engine):
    view = View(engine)  # never started
    ve = ViewedEngine(engine, view)
    engine.calls.clear()
    assert [v.name for v in fresh(ve).list_volumes()] == ["before"]
    assert engine.calls["list_volumes"] == 1


def test_a_view_behind_the_engine_for_longer_than_it_may_wait_sends_reads_to_the_engine(engine, view, monkeypatch):
    ve = ViewedEngine(engine, view)
    monkeypatch.setattr(viewed, "CATCH_UP", 0.05)
    held = threading.Event()
    real_apply = view.apply
    monkeypatch.setattr(view, "apply", lambda event: (held.wait(5), real_apply(event)))
    with writing(ve):
        ve.create_volume("late", "local", {}, {})
    engine.calls.clear()
    assert fresh(ve).inspect_volume("late").name == "late"  # from the engine: the view has not applied it yet
    assert engine.calls["inspect_volume"] == 1
    held.set()


def test_after_the_stream_breaks_the_view_lists_again_and_misses_nothing(engine, view):
    ve = ViewedEngine(engine, view)
    engine.down = True  # the engine restarts: the stream ends
    deadline = time.monotonic() + 5
    while view.stats()["primed"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not view.stats()["primed"]
    engine.down = False
    engine.volumes.clear()  # what happened while it was away carries no event the view could see
    engine.create_volume("after", "local", {}, {})
    assert [v.name for v in fresh(ve).list_volumes()] == ["after"]  # from the engine until the view is back
    deadline = time.monotonic() + 5
    while not view.stats()["primed"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert view.relists == 2
    same(engine, ve)


def test_an_event_stamped_earlier_but_arriving_later_is_waited_for(engine, view, monkeypatch):
    """The engine stamps events before it queues them: under load one can arrive after a newer one."""
    ve = ViewedEngine(engine, view)
    monkeypatch.setattr(viewed, "CATCH_UP", 0.2)
    held = threading.Event()
    real_apply = view.apply
    monkeypatch.setattr(view, "apply", lambda e: (e.id != "early" or held.wait(5), real_apply(e)))
    with writing(ve):
        ve.create_volume("late", "local", {}, {})
        with engine._started:  # "early" was stamped before "late", and is queued after it
            engine.volumes["early"] = replace(engine.volumes["late"], name="early")
            engine.events_log.append(EngineEvent("volume", "create", "early", engine.events_log[-1].at - 1000))
            engine._started.notify_all()
    sources: list[str] = []
    view.observe = lambda what, value: what.startswith("read_") and sources.append(what)
    assert fresh(ve).inspect_volume("early").name == "early"  # not the view's NotFound: from the engine
    assert sources == ["read_engine"]
    held.set()


def test_outside_a_read_scope_reads_go_to_the_engine(engine, view):
    """Operations that change things, and the reconciler, read the engine itself."""
    ve = ViewedEngine(engine, view)
    ve.new_scope(reading=False)
    engine.calls.clear()
    ve.list_volumes()
    ve.end_scope()
    ve.list_containers()
    assert engine.calls["list_volumes"] == engine.calls["list_containers"] == 1 and engine.calls["events"] == 0


def test_a_get_that_writes_reads_the_engine_after_its_write_and_publishes_it(engine, view):
    ve = ViewedEngine(engine, view)
    ve.new_scope(reading=True)
    engine.calls.clear()
    ve.list_volumes()
    ve.list_containers(volume="before")
    assert sum(engine.calls.values()) == 0
    ve.create_volume("mine", "local", {}, {})  # a GET's helper, say: from here on, the engine
    assert ve.list_volumes(["team=web"]) == engine.list_volumes(["team=web"])
    assert engine.calls["list_volumes"] == 2
    ve.end_scope()  # published as the scope ends (a streamed answer writes after its headers)
    assert engine.calls["events"] == 1
    sources: list[str] = []
    view.observe = lambda what, value: what.startswith("read_") and sources.append(what)
    other = ViewedEngine(engine, view)  # another request's scope
    assert fresh(other).inspect_volume("mine").name == "mine"
    assert sources == ["read_view"]


def test_a_write_outside_any_request_is_published_at_once(engine, view):
    """The reconciler's recoveries answer no one, but a read after one is done reflects it."""
    ve = ViewedEngine(engine, view)
    before = view.written.count()
    ve.create_volume("recovered", "local", {}, {})  # no scope: a background thread's write
    assert view.written.count() > before
    assert fresh(ve).inspect_volume("recovered").name == "recovered"


@pytest.mark.parametrize("api_version", ["1.41", "1.45"])
def test_a_prune_reaches_reads_whether_or_not_the_engine_records_each_volume_it_removed(api_version):
    """Engine 20.10 records one `prune` event for a whole volume prune and no `destroy` per volume."""
    engine = InMemoryEngine(api_version=api_version)
    engine.create_volume("pruned", "local", {}, {"team": "web"})
    engine.create_volume("kept", "local", {}, {})
    view = primed(_running(engine))
    ve = ViewedEngine(engine, view)
    try:
        with writing(ve):  # dockvol's own prune: seen by the very next read
            assert ve.prune_volumes(["team=web"]).volumes_deleted == ("pruned",)
        assert [v.name for v in fresh(ve).list_volumes()] == ["kept"]
        with pytest.raises(NotFound):
            fresh(ve).inspect_volume("pruned")
        engine.prune_volumes([])  # a prune made directly (the docker CLI): seen once the stream brings it
        _eventually(lambda: fresh(ve).list_volumes() == [])
        same(engine, ve)
    finally:
        _halt(engine, view)


def test_a_container_prune_made_directly_reaches_reads(engine, view):
    ve = ViewedEngine(engine, view)
    engine.create_container(ContainerSpec(name="stopped", image="busybox:stable", labels={"team": "web"}))
    _eventually(lambda: [c.name for c in fresh(ve).list_containers()] == ["stopped"])
    engine.prune_containers()
    _eventually(lambda: fresh(ve).list_containers() == [])
    same(engine, ve)


def _running(engine: InMemoryEngine) -> View:
    v = View(engine)
    v.start_in_background()
    return v


def _halt(engine: InMemoryEngine, view: View) -> None:
    view.stop()
    engine.down = True
    assert view._thread is not None
    view._thread.join(5)


def _eventually(check, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not seen in time"
        time.sleep(0.01)
