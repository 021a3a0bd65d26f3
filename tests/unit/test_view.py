"""The event-fed view of the engine (service/engine/viewed.py) against the in-memory engine and
its event stream: it answers reads as the engine would, never from a view it cannot vouch for."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from service.engine import viewed
from service.engine.memory import InMemoryEngine
from service.engine.port import ContainerSpec, EngineEvent, MountSpec
from service.engine.viewed import View, ViewedEngine
from service.errors import NotFound


@pytest.fixture
def engine():
    e = InMemoryEngine()
    e.create_volume("before", "local", {}, {"team": "web"})
    return e


@pytest.fixture
def view(engine):
    v = View(engine)
    v.start_in_background()
    deadline = time.monotonic() + 5
    while not v.stats()["primed"] and time.monotonic() < deadline:
        time.sleep(0.01)
    yield v
    v.stop()
    engine.down = True  # ends the stream the view follows
    v._thread.join(5)


def fresh(ve: ViewedEngine) -> ViewedEngine:
    """`ve` in a new read scope: what one GET request sees."""
    ve.new_scope(reading=True)
    return ve


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


def test_a_primed_view_answers_every_read_without_asking_the_engine_for_lists(engine, view):
    ve = ViewedEngine(engine, view)
    engine.calls.clear()
    assert [v.name for v in fresh(ve).list_volumes()] == ["before"]
    assert fresh(ve).inspect_volume("before").labels == {"team": "web"}
    with pytest.raises(NotFound):
        fresh(ve).inspect_volume("missing")
    assert engine.calls["list_volumes"] == engine.calls["inspect_volume"] == 0
    assert engine.calls["events"] == 3  # one check that the view is current per read


def test_every_change_is_seen_by_the_next_read(engine, view):
    """Writes made to the engine directly (as another worker or `docker` would): each read right
    after one reflects it; none is ever stale."""
    ve = ViewedEngine(engine, view)
    engine.create_volume("data", "local", {}, {})
    assert fresh(ve).inspect_volume("data").name == "data"
    cid = engine.create_container(
        ContainerSpec("app", "busybox:stable", mounts=(MountSpec("volume", "/data", "data"),))
    )
    assert [c.id for c in fresh(ve).list_containers(volume="data")] == [cid]
    engine.start_container(cid)
    assert fresh(ve).list_containers(name="app")[0].state == "running"
    engine.rename_container(cid, "app2")
    assert fresh(ve).list_containers(name="app") == [] and fresh(ve).list_containers(name="app2")[0].id == cid
    engine.pause_container(cid)
    assert fresh(ve).list_containers(name="app2")[0].state == "paused"
    engine.unpause_container(cid)
    engine.stop_container(cid)
    assert fresh(ve).list_containers(name="app2")[0].state == "exited"
    engine.remove_container(cid)
    engine.remove_volume("data")
    assert fresh(ve).list_containers() == []
    with pytest.raises(NotFound):
        fresh(ve).inspect_volume("data")
    same(engine, ve)


def test_concurrent_writers_and_readers_never_read_stale(engine, view):
    ve = ViewedEngine(engine, view)
    stale: list[str] = []

    def writer_reader(n: int) -> None:
        for i in range(50):
            name = f"v{n}-{i}"
            engine.create_volume(name, "local", {}, {})
            if name not in {v.name for v in fresh(ve).list_volumes()}:
                stale.append(f"create {name}")
            engine.remove_volume(name)
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
    engine.create_volume("late", "local", {}, {})
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
    engine.create_volume("late", "local", {}, {})
    fresh(ve).inspect_volume("late")  # the view has applied it
    with engine._started:  # "early" was stamped before "late", and is queued after it
        engine.volumes["early"] = replace(engine.volumes["late"], name="early")
        engine.events_log.append(EngineEvent("volume", "create", "early", engine.events_log[-1].at - 1000))
        engine._started.notify_all()
    engine.calls.clear()
    assert fresh(ve).inspect_volume("early").name == "early"  # not the view's NotFound: from the engine
    assert engine.calls["inspect_volume"] == 1
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


def test_a_read_scope_proves_the_view_current_once_and_reads_the_engine_after_its_own_write(engine, view):
    ve = ViewedEngine(engine, view)
    ve.new_scope(reading=True)
    engine.calls.clear()
    ve.list_volumes()
    ve.list_containers(volume="before")
    assert engine.calls["events"] == 1 and engine.calls["list_volumes"] == 0
    ve.create_volume("mine", "local", {}, {})  # a GET's helper, say: from here on, the engine
    assert ve.list_volumes(["team=web"]) == engine.list_volumes(["team=web"])
    assert engine.calls["events"] == 1 and engine.calls["list_volumes"] == 2
    other = ViewedEngine(engine, view)  # another request's scope, on another worker
    other.new_scope(reading=True)
    assert other.inspect_volume("mine").name == "mine"
    assert engine.calls["events"] == 2
