"""GET /api/v1/events against the in-memory engine and its event stream: every change to volumes,
bindings and sharing groups, with the representation after it; filters, resuming with
Last-Event-ID, resync, heartbeats, and a client that does not read being dropped alone."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from service.domain import watch as watch_module
from service.http import events as events_module


@pytest.fixture
def watched(app, engine, monkeypatch):
    """The app with its view running (as gunicorn's workers start it)."""
    monkeypatch.setattr(events_module, "HEARTBEAT", 0.1)
    view = app.extensions["dockvol"].view
    view.start_in_background()
    deadline = time.monotonic() + 5
    while not view.stats()["primed"] and time.monotonic() < deadline:
        time.sleep(0.01)
    yield app
    view.stop()
    engine.down = True
    view._thread.join(5)


class Stream:
    """One SSE connection, read event by event."""

    def __init__(self, client, headers, query=""):
        self.response = client.get(f"/api/v1/events{query}", headers=headers, buffered=False)
        assert self.response.status_code == 200, self.response.get_data()
        assert self.response.mimetype == "text/event-stream"
        self.chunks = (c.decode() if isinstance(c, bytes) else c for c in self.response.response)
        assert next(self.chunks).startswith("retry:")

    def next(self, skip_heartbeats=True, seconds=5.0):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                chunk = next(self.chunks)
            except StopIteration:
                return None
            fields = dict(line.split(": ", 1) for line in chunk.strip().splitlines())
            if "event" not in fields:  # where the client stands (an id only): no event
                self.position = fields["id"]
                continue
            if skip_heartbeats and fields.get("event") == "heartbeat":
                continue
            fields["data"] = json.loads(fields["data"])
            return fields
        raise AssertionError("no event in time")

    def close(self):
        self.response.close()


def test_changes_to_volumes_come_as_created_updated_deleted_with_the_representation(watched, as_admin):
    client = watched.test_client()
    stream = Stream(client, as_admin)
    assert client.post("/api/v1/volumes", json={"name": "v1", "labels": {"team": "web"}}, headers=as_admin).status_code
    created = stream.next()
    assert created["event"] == "created"
    assert created["data"]["resource"] == "volume" and created["data"]["name"] == "v1"
    assert created["data"]["object"] == client.get("/api/v1/volumes/v1", headers=as_admin).get_json()
    body = {"name": "b1", "image": "busybox:stable", "command": ["sleep", "1"], "network": "none"}
    body["mounts"] = [{"type": "volume", "source": "v1", "target": "/d"}]
    assert client.post("/api/v1/bindings", json=body, headers=as_admin).status_code == 201
    seen = {}
    while ("binding", "b1") not in seen or ("volume", "v1") not in seen:
        e = stream.next()
        seen[(e["data"]["resource"], e["data"]["name"])] = e
    assert seen[("binding", "b1")]["event"] == "created"
    assert seen[("volume", "v1")]["event"] == "updated" and seen[("volume", "v1")]["data"]["object"]["in_use"]
    assert client.delete("/api/v1/bindings/b1", headers=as_admin).status_code == 204
    assert client.delete("/api/v1/volumes/v1", headers=as_admin).status_code == 204
    kinds = []
    while ("deleted", "volume") not in kinds:
        e = stream.next()
        kinds.append((e["event"], e["data"]["resource"]))
        assert e["event"] != "deleted" or "object" not in e["data"]
    assert ("deleted", "binding") in kinds
    stream.close()


def test_filters_by_resource_name_and_label(watched, as_admin, as_reader):
    client = watched.test_client()
    only = Stream(client, as_reader, "?resource=volume&label=team=web")
    named = Stream(client, as_reader, "?name=v2")
    client.post("/api/v1/volumes", json={"name": "v1"}, headers=as_admin)
    client.post("/api/v1/volumes", json={"name": "v2", "labels": {"team": "web"}}, headers=as_admin)
    assert only.next()["data"]["name"] == "v2"
    assert named.next()["data"]["name"] == "v2"
    assert client.get("/api/v1/events?resource=nothing", headers=as_reader).status_code == 422


def test_last_event_id_resumes_without_loss_and_one_from_too_far_back_is_told_to_resync(watched, as_admin):
    client = watched.test_client()
    stream = Stream(client, as_admin)
    client.post("/api/v1/volumes", json={"name": "v1"}, headers=as_admin)
    first = stream.next()
    stream.close()
    client.post("/api/v1/volumes", json={"name": "v2"}, headers=as_admin)  # while it was away
    client.post("/api/v1/volumes", json={"name": "v3"}, headers=as_admin)
    resumed = Stream(client, {**as_admin, "Last-Event-ID": first["id"]})
    assert [resumed.next()["data"]["name"] for _ in range(2)] == ["v2", "v3"]
    again = Stream(client, as_admin, f"?last_event_id={first['id']}")
    assert again.next()["data"]["name"] == "v2"
    old = Stream(client, {**as_admin, "Last-Event-ID": "1-0"})  # before this worker's view began
    assert old.next()["event"] == "resync"
    assert old.next() is None  # and the stream ends
    assert client.get("/api/v1/events", headers={**as_admin, "Last-Event-ID": "x"}).status_code == 422


@pytest.mark.parametrize("given", ["x", "1-", "-1", "1-2-3", "\u00b2-1", "1-\u0663"])
def test_an_id_this_service_did_not_give_is_422(client, as_admin, given):
    """Ids are AT-K in ASCII digits; a superscript two passed str.isdigit and then broke int()."""
    for r in (
        client.get("/api/v1/events", query_string={"last_event_id": given}, headers=as_admin),
        client.get("/api/v1/events", headers={**as_admin, "Last-Event-ID": given.encode().decode("latin-1")}),
    ):
        assert r.status_code == 422, (given, r.get_json())


def test_a_stream_says_where_it_stands_before_any_change_so_a_client_gone_at_once_misses_nothing(watched, as_admin):
    client = watched.test_client()
    stream = Stream(client, as_admin)
    assert stream.next(skip_heartbeats=False)["event"] == "heartbeat"  # no change yet
    position = stream.position
    stream.close()
    client.post("/api/v1/volumes", json={"name": "v1"}, headers=as_admin)  # while it was away
    resumed = Stream(client, {**as_admin, "Last-Event-ID": position})
    created = resumed.next()
    assert created["data"]["name"] == "v1"
    assert [int(x) for x in created["id"].split("-")] > [int(x) for x in position.split("-")]


def test_times_are_utc_with_z_a_changes_to_the_engines_microsecond(watched, engine, as_admin):
    """A change is at its engine event's time (its id's first part, in nanoseconds); a heartbeat
    or a resync is at dockvol's, in whole seconds."""
    client = watched.test_client()
    stream = Stream(client, as_admin)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stream.next(skip_heartbeats=False)["data"]["at"])
    client.post("/api/v1/volumes", json={"name": "v1"}, headers=as_admin)
    created = stream.next()
    at = int(created["id"].split("-")[0])
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at // 10**9))
    assert created["data"]["at"] == f"{seconds}.{at // 1000 % 10**6:06d}Z"
    old = Stream(client, {**as_admin, "Last-Event-ID": "1-0"})
    resync = old.next()
    assert resync["event"] == "resync" and re.fullmatch(r"[-\dT:]{19}Z", resync["data"]["at"])


def test_idle_streams_carry_heartbeats(watched, as_reader):
    stream = Stream(watched.test_client(), as_reader)
    assert stream.next(skip_heartbeats=False)["event"] == "heartbeat"


def test_a_client_that_does_not_read_is_dropped_alone(watched, as_admin, monkeypatch):
    monkeypatch.setattr(watch_module, "QUEUE", 3)
    client = watched.test_client()
    stuck = Stream(client, as_admin)
    reading = Stream(client, as_admin)
    monkeypatch.setattr(watch_module, "QUEUE", 1000)
    watch = watched.extensions["dockvol"].watch
    for i in range(10):
        client.post("/api/v1/volumes", json={"name": f"v{i}"}, headers=as_admin)
        assert reading.next()["data"]["name"] == f"v{i}"
    assert watch.watchers() == 1  # the stuck one is gone
    kinds = [(stuck.next() or {}).get("event") for _ in range(4)]
    assert kinds == ["created", "created", "created", "resync"]
    assert stuck.next() is None


def test_the_stream_needs_a_token(watched):
    assert watched.test_client().get("/api/v1/events").status_code == 401


def test_a_prune_tells_watchers_of_each_volume_it_removed_even_where_the_engine_does_not(watched, engine, as_admin):
    """Engine 20.10 (the in-memory engine's default API) records one `prune` event and no `destroy`."""
    client = watched.test_client()
    stream = Stream(client, as_admin, "?resource=volume")
    for name in ("p1", "p2"):
        assert client.post("/api/v1/volumes", json={"name": name}, headers=as_admin).status_code == 201
        assert stream.next()["event"] == "created"
    pruned = client.post("/api/v1/volumes/prune", json={"include_named": True}, headers=as_admin).get_json()
    assert pruned["volumes_deleted"] == ["p1", "p2"]
    assert client.get("/api/v1/volumes/p1", headers=as_admin).status_code == 404
    assert client.get("/api/v1/volumes", headers=as_admin).get_json() == []
    deleted = [stream.next(), stream.next()]
    assert sorted((e["event"], e["data"]["name"]) for e in deleted) == [("deleted", "p1"), ("deleted", "p2")]
    assert len({e["id"] for e in deleted}) == 2  # each change its own id
    engine.create_volume("p3", "local", {}, {})  # then a prune made directly (the docker CLI)
    assert stream.next()["event"] == "created"
    engine.prune_volumes([])
    assert (stream.next()["event"], client.get("/api/v1/volumes/p3", headers=as_admin).status_code) == ("deleted", 404)
    stream.close()


def test_a_client_that_comes_before_the_view_first_listed_is_connected_once_it_has(app, engine, as_admin):
    """A worker's view lists the engine once it starts: a change made after a client connected but
    before that listing would be in the base, and the client would never hear of it."""
    client = app.test_client()
    view = app.extensions["dockvol"].view
    threading.Timer(0.3, view.start_in_background).start()
    stream = Stream(client, as_admin)  # connects while the view has not listed yet
    try:
        assert client.post("/api/v1/volumes", json={"name": "early"}, headers=as_admin).status_code == 201
        assert stream.next()["data"]["name"] == "early"
    finally:
        stream.close()
        view.stop()
        engine.down = True
        if view._thread is not None:
            view._thread.join(5)
