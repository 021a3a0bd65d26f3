"""Members of sharing groups are started again after an engine restart or an infrastructure
container's own restart, against the in-memory engine."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from service.domain.reconcile import Reconciler
from service.engine.port import ContainerState


@pytest.fixture
def reconciler(app):
    return app.extensions["dockvol"].reconciler


@pytest.fixture
def group(client, as_writer):
    assert client.post("/api/v1/sharing-groups", json={"name": "web"}, headers=as_writer).status_code == 201
    for name, restart in (("nginx", "unless-stopped"), ("tomcat", "always"), ("oneshot", "no")):
        body = {"name": name, "image": "busybox:stable", "sharing_group": "web", "restart": restart}
        assert client.post("/api/v1/bindings", json=body, headers=as_writer).status_code == 201


def by_name(engine, name):
    return next(c for c in engine.containers.values() if c.name == name)


def set_state(engine, name, status, started_at, error=""):
    c = by_name(engine, name)
    engine.containers[c.id] = replace(c, state=status)
    engine.states[c.id] = ContainerState(status, started_at, error)


def test_members_that_could_not_start_before_their_group_are_started(engine, reconciler, group):
    # After an engine restart: the infrastructure container runs again, members failed to join it.
    set_state(engine, "web", "running", "2020-01-02T00:00:05.5Z")
    for name in ("nginx", "tomcat", "oneshot"):
        set_state(engine, name, "exited", "2020-01-02T00:00:04Z", "cannot join network of a non running container")
    assert sorted(reconciler.reconcile()) == ["nginx", "tomcat"]
    assert {n: by_name(engine, n).state for n in ("nginx", "tomcat", "oneshot")} == {
        "nginx": "running",
        "tomcat": "running",
        "oneshot": "exited",
    }
    assert reconciler.reconcile() == []  # nothing more to do


def test_running_members_older_than_their_group_are_restarted(engine, reconciler, group):
    set_state(engine, "nginx", "running", "2020-01-02T00:00:01.123456789Z")
    set_state(engine, "tomcat", "running", "2020-01-02T00:00:09Z")
    set_state(engine, "web", "running", "2020-01-02T00:00:05Z")  # restarted on its own after nginx started
    assert reconciler.reconcile() == ["nginx"]
    assert engine.calls["stop_container"] == 1


def test_a_member_stopped_on_purpose_stays_stopped(client, as_writer, engine, reconciler, group):
    assert client.post("/api/v1/bindings/nginx/stop", headers=as_writer).status_code == 200
    assert reconciler.reconcile() == []
    assert by_name(engine, "nginx").state == "exited"


def test_nothing_is_done_while_the_group_is_down(engine, reconciler, group):
    set_state(engine, "web", "exited", "2020-01-02T00:00:05Z")
    set_state(engine, "nginx", "exited", "2020-01-02T00:00:04Z", "cannot join network")
    assert reconciler.reconcile() == []


def test_the_background_loop_reacts_to_the_group_starting(engine, reconciler, group):
    import os
    import uuid

    set_state(engine, "nginx", "exited", "2020-01-02T00:00:04Z", "cannot join network of a non running container")
    set_state(engine, "web", "exited", "2020-01-02T00:00:03Z")
    # Its own engine key: the election is per host, and other tests' apps in this process hold theirs.
    watcher = Reconciler(engine, reconciler._planner, reconciler._intents, f"unix:///{uuid.uuid4().hex}.sock")
    stop = threading.Event()
    threading.Thread(target=watcher.watch_members, args=(stop,), daemon=True).start()
    try:
        engine.start_container("web")  # as the engine's restart policy would
        for _ in range(100):
            if by_name(engine, "nginx").state == "running":
                break
            threading.Event().wait(0.05)
        assert by_name(engine, "nginx").state == "running"
    finally:
        stop.set()
        if watcher._elected_fd is not None:
            os.close(watcher._elected_fd)


def test_one_reconciler_per_engine_and_host_is_elected(engine, app):
    import os

    ours = app.extensions["dockvol"].reconciler
    first, second = (Reconciler(engine, ours._planner, ours._intents, "unix:///elect.sock") for _ in range(2))
    try:
        assert first.elected() and not second.elected()
    finally:
        os.close(first._elected_fd)
