"""Fleet mode over three in-memory nodes: each node's app has its own in-memory engine, and the
instances reach each other through their WSGI apps instead of HTTP (the fleet tier on a real
Swarm drives the same over HTTP)."""

from __future__ import annotations

import json
import time

import pytest

from service.engine.port import SwarmNode
from service.fleet import forwarding

from .conftest import bearer
from .fleet_transport import NODES, SECRET

READER, WRITER, ADMIN = bearer("reader"), bearer("writer"), bearer("admin")


def containers(engine):
    return {c.name for c in engine.containers.values()}


def names(response):
    return [(item["name"], item["node"]) for item in response.get_json()]


def test_every_instance_lists_every_node(fleet):
    for node in NODES:
        r = fleet.client[node].get("/api/v1/nodes", headers=READER)
        assert r.status_code == 200
        shown = {n["name"]: n for n in r.get_json()}
        assert set(shown) == set(NODES)
        assert shown["n1"]["role"] == "manager" and shown["n2"]["role"] == "worker"
        assert {n["dockvol"] for n in shown.values()} == {"up"}
        assert shown["n3"]["id"] == "id-n3" and shown["n3"]["availability"] == "active"
        assert "Dockvol-Unreachable-Nodes" not in r.headers


def test_one_name_on_two_nodes_is_listed_twice_and_needs_node_to_be_read(fleet):
    c = fleet.client["n3"]
    for node in ("n1", "n2"):
        r = c.post("/api/v1/volumes", json={"name": "shared", "node": node}, headers=WRITER)
        assert r.status_code == 201 and r.get_json()["node"] == node
    assert set(fleet.engines["n1"].volumes) == {"shared"} and set(fleet.engines["n2"].volumes) == {"shared"}
    assert not fleet.engines["n3"].volumes
    assert names(c.get("/api/v1/volumes", headers=READER)) == [("shared", "n1"), ("shared", "n2")]
    r = c.get("/api/v1/volumes/shared", headers=READER)
    assert r.status_code == 409 and r.get_json()["nodes"] == ["n1", "n2"]
    for node in ("n1", "n2"):
        r = c.get(f"/api/v1/volumes/shared?node={node}", headers=READER)
        assert r.status_code == 200 and r.get_json()["node"] == node and r.headers["ETag"]
    assert c.get("/api/v1/volumes/absent", headers=READER).status_code == 404
    assert c.get("/api/v1/volumes/shared?node=n9", headers=READER).status_code == 404


def test_pages_of_the_merged_list_are_pages_of_the_sorted_union(fleet):
    c = fleet.client["n1"]
    made = []
    for i in range(23):
        node = NODES[i % 3]
        fleet.engines[node].create_volume(f"v{i:02}", "local", {}, {})
        made.append((f"v{i:02}", node))
    seen = []
    for page in (1, 2, 3):
        r = c.get(f"/api/v1/volumes?page={page}&page_size=10", headers=READER)
        assert r.status_code == 200
        assert json.loads(r.headers["X-Pagination"])["total"] == 23
        seen += names(r)
    assert seen == sorted(made)
    only = c.get("/api/v1/volumes?node=n2&page_size=100", headers=READER)
    assert names(only) == sorted(m for m in made if m[1] == "n2")


def test_a_binding_goes_where_its_volume_lives_and_a_member_to_its_group(fleet):
    c = fleet.client["n1"]
    assert c.post("/api/v1/volumes", json={"name": "data", "node": "n3"}, headers=WRITER).status_code == 201
    body = {"name": "web", "image": "busybox:stable", "network": "none"}
    r = c.post(
        "/api/v1/bindings",
        json={**body, "mounts": [{"type": "volume", "source": "data", "target": "/d"}]},
        headers=WRITER,
    )
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["node"] == "n3" and "web" in containers(fleet.engines["n3"])
    r = c.post("/api/v1/sharing-groups", json={"name": "grp", "node": "n2"}, headers=WRITER)
    assert r.status_code == 201 and r.get_json()["node"] == "n2"
    r = c.post(
        "/api/v1/bindings", json={"name": "member", "image": "busybox:stable", "sharing_group": "grp"}, headers=WRITER
    )
    assert r.status_code == 201 and r.get_json()["node"] == "n2"
    assert c.post("/api/v1/volumes", json={"name": "data", "node": "n1"}, headers=WRITER).status_code == 201
    both = {**body, "name": "both", "mounts": [{"type": "volume", "source": "data", "target": "/d"}]}
    r = c.post("/api/v1/bindings", json=both, headers=WRITER)
    assert r.status_code == 409 and r.get_json()["nodes"] == ["n1", "n3"]
    r = c.post("/api/v1/bindings", json={**both, "node": "n1"}, headers=WRITER)
    assert r.status_code == 201 and r.get_json()["node"] == "n1"
    assert c.post("/api/v1/volumes", json={"name": "solo", "node": "n3"}, headers=WRITER).status_code == 201
    clash = {**body, "name": "clash", "node": "n2", "mounts": [{"type": "volume", "source": "solo", "target": "/d"}]}
    r = c.post("/api/v1/bindings", json=clash, headers=WRITER)
    assert r.status_code == 422 and "node" in r.get_json()["errors"]
    assert all("clash" not in containers(e) for e in fleet.engines.values())


def test_a_new_volume_goes_to_the_node_with_fewest_unless_one_is_named(fleet):
    c = fleet.client["n2"]
    fleet.engines["n1"].create_volume("a", "local", {}, {"dockvol.managed": "true"})
    fleet.engines["n2"].create_volume("b", "local", {}, {"dockvol.managed": "true"})
    r = c.post("/api/v1/volumes", json={"name": "cc"}, headers=WRITER)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["node"] == "n3"


def test_a_drained_node_gets_nothing_new(fleet):
    fleet.engines["n1"].swarm_nodes[2] = SwarmNode("id-n3", "n3", "worker", "drain", "ready")
    c = fleet.client["n1"]
    r = c.post("/api/v1/volumes", json={"name": "xx", "node": "n3"}, headers=WRITER)
    assert r.status_code == 409
    for i in range(4):
        r = c.post("/api/v1/volumes", json={"name": f"y{i}"}, headers=WRITER)
        assert r.status_code == 201 and r.get_json()["node"] != "n3"


def test_a_node_that_does_not_answer_is_named_and_the_others_unaffected(fleet):
    c = fleet.client["n1"]
    for node in NODES:
        assert c.post("/api/v1/volumes", json={"name": f"on-{node}", "node": node}, headers=WRITER).status_code == 201
    c.get("/api/v1/nodes", headers=READER)
    fleet.wsgi.down.add(fleet.address["n2"])  # its address still resolves, its instance does not answer
    r = c.get("/api/v1/volumes", headers=READER)
    assert r.status_code == 200
    assert names(r) == [("on-n1", "n1"), ("on-n3", "n3")]
    assert r.headers["Dockvol-Unreachable-Nodes"] == "n2"
    r = c.get("/api/v1/volumes/on-n2", headers=READER)
    assert r.status_code == 503 and "n2" in r.get_json()["detail"]
    assert c.get("/api/v1/volumes/on-n3", headers=READER).status_code == 200
    nodes = {n["name"]: n for n in c.get("/api/v1/nodes", headers=READER).get_json()}
    assert nodes["n2"]["dockvol"] == "unreachable" and nodes["n1"]["dockvol"] == "up"


def test_a_node_whose_task_is_gone_from_dns_is_still_named(fleet):
    fresh = fleet.client["n3"]  # has never listed before: knows n2 only from Swarm's node list
    fleet.wsgi.hidden.add(fleet.address["n2"])
    fleet.wsgi.down.add(fleet.address["n2"])
    r = fresh.get("/api/v1/volumes", headers=READER)
    assert r.status_code == 200 and r.headers["Dockvol-Unreachable-Nodes"] == "n2"
    r = fresh.post("/api/v1/volumes", json={"name": "zz", "node": "n2"}, headers=WRITER)
    assert r.status_code == 503


def test_the_callers_scopes_travel_with_a_forwarded_request(fleet):
    c = fleet.client["n1"]
    r = c.post("/api/v1/volumes", json={"name": "xx", "node": "n2"}, headers=READER)
    assert r.status_code == 403
    assert not fleet.engines["n2"].volumes
    assert c.post("/api/v1/volumes", json={"name": "xx", "node": "n2"}).status_code == 401


def test_a_forged_forwarding_header_is_refused(fleet):
    c = fleet.client["n2"]
    admin = forwarding.Caller("me", frozenset({"admin"}))
    target = "/api/v1/volumes"
    for secret, node in ((b"guessed-secret-0123456789", "n2"), (SECRET, "n3")):
        forged = forwarding.sign(secret, admin, node, "POST", target, time.time())
        r = c.post(target, json={"name": "evil"}, headers={forwarding.HEADER: forged})
        assert r.status_code == 401, (secret, node)
    stale = forwarding.sign(SECRET, admin, "n2", "POST", target, time.time() - 120)
    assert c.post(target, json={"name": "evil"}, headers={forwarding.HEADER: stale}).status_code == 401
    assert all(not e.volumes for e in fleet.engines.values())
    assert c.get("/fleet/v1/identity").status_code == 401


def test_archives_stream_through_the_instance_that_was_asked(fleet):
    from tests.contract.engine_contract import make_tar

    c = fleet.client["n1"]
    assert c.post("/api/v1/volumes", json={"name": "site", "node": "n3"}, headers=WRITER).status_code == 201
    tree = [("a.txt", "file", b"hello fleet\n", 0o644)]
    r = c.put("/api/v1/volumes/site/archive", data=make_tar(tree), content_type="application/x-tar", headers=ADMIN)
    assert r.status_code == 200, r.get_json()
    assert fleet.engines["n3"].files.tree("site")["a.txt"][1] == b"hello fleet\n"
    r = c.get("/api/v1/volumes/site/archive", headers={**READER, "Accept-Encoding": "identity"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/x-tar"
    assert b"hello fleet" in r.data


def test_item_routes_with_their_own_query_take_node_too(fleet):
    c = fleet.client["n2"]
    for node in ("n1", "n3"):
        body = {"name": "twin", "image": "busybox:stable", "network": "none", "node": node}
        body["mounts"] = [{"type": "volume", "target": "/anon"}]
        assert c.post("/api/v1/bindings", json=body, headers=WRITER).status_code == 201
    assert c.delete("/api/v1/bindings/twin?remove_anonymous_volumes=true", headers=WRITER).status_code == 409
    r = c.delete("/api/v1/bindings/twin?remove_anonymous_volumes=true&node=n3", headers=WRITER)
    assert r.status_code == 204
    assert not containers(fleet.engines["n3"]) and not fleet.engines["n3"].volumes
    assert containers(fleet.engines["n1"]) == {"twin"} and fleet.engines["n1"].volumes


def test_prune_acts_on_every_node_or_those_named(fleet):
    c = fleet.client["n1"]
    for node in NODES:
        assert c.post("/api/v1/volumes", json={"node": node}, headers=WRITER).status_code == 201
    r = c.post("/api/v1/volumes/prune?node=n2", json={"dry_run": True}, headers=ADMIN)
    assert r.status_code == 200 and r.get_json()["volumes_deleted"] == list(fleet.engines["n2"].volumes)
    r = c.post("/api/v1/volumes/prune", json={}, headers=ADMIN)
    assert r.status_code == 200 and len(r.get_json()["volumes_deleted"]) == 3
    assert all(not e.volumes for e in fleet.engines.values())
    assert c.post("/api/v1/volumes/prune", json={}, headers=WRITER).status_code == 403


def test_a_clone_onto_another_node_streams_the_data_there(fleet):
    from tests.contract.engine_contract import make_tar

    c = fleet.client["n1"]
    assert c.post("/api/v1/volumes", json={"name": "src", "node": "n2"}, headers=WRITER).status_code == 201
    tree = [("d", "dir", None, 0o755), ("d/f.txt", "file", b"moved\n", 0o640)]
    assert (
        c.put(
            "/api/v1/volumes/src/archive", data=make_tar(tree), content_type="application/x-tar", headers=ADMIN
        ).status_code
        == 200
    )
    r = c.post("/api/v1/volumes/src/clone", json={"name": "copy", "node": "n3", "labels": {"k": "v"}}, headers=WRITER)
    assert r.status_code == 201, r.get_json()
    assert (
        r.get_json()["node"] == "n3"
        and r.get_json()["labels"] == {"k": "v"}
        and r.headers["Location"].endswith("/copy")
    )
    assert fleet.engines["n3"].files.tree("copy")["d/f.txt"][1] == b"moved\n"
    assert "copy" not in fleet.engines["n2"].volumes
    r = c.post("/api/v1/volumes/src/clone", json={"name": "local", "node": "n2"}, headers=WRITER)
    assert r.status_code == 201 and r.get_json()["node"] == "n2"
    r = c.post("/api/v1/volumes/src/clone", json={"name": "copy2", "node": "n3"}, headers=READER)
    assert r.status_code == 403 and "copy2" not in fleet.engines["n3"].volumes
    r = c.post("/api/v1/volumes/src/clone", json={"name": "copy", "node": "n3"}, headers=WRITER)
    assert r.status_code == 409  # the name is taken there


@pytest.fixture
def source_on_n2(fleet):
    from tests.contract.engine_contract import make_tar

    c = fleet.client["n1"]
    assert c.post("/api/v1/volumes", json={"name": "src", "node": "n2"}, headers=WRITER).status_code == 201
    tree = [("d", "dir", None, 0o755), ("d/f.txt", "file", b"x" * 100_000, 0o640)]
    r = c.put("/api/v1/volumes/src/archive", data=make_tar(tree), content_type="application/x-tar", headers=ADMIN)
    assert r.status_code == 200
    return c


def test_a_cross_node_clone_that_loses_the_copys_engine_at_any_step_leaves_nothing_there(
    fleet, source_on_n2, monkeypatch
):
    """The copy's node runs the clone as one operation: whenever its engine goes away, the copy
    is whole or gone (at once, or by that node's own recovery once the engine is back), and no
    lock or helper stays; the source is untouched."""
    from .test_intents import engine_away_after, leftovers

    n3 = fleet.engines["n3"]
    for step in range(1, 20):
        engine_away_after(monkeypatch, n3, step)
        r = source_on_n2.post("/api/v1/volumes/src/clone", json={"name": "copy", "node": "n3"}, headers=WRITER)
        monkeypatch.undo()
        if r.status_code == 201:
            break
        assert r.status_code == 503, (step, r.get_json())
        fleet.wsgi.apps[fleet.address["n3"]].extensions["dockvol"].intents.retry_own()
        assert leftovers(n3) == [] and leftovers(fleet.engines["n2"]) == [], step
        if "copy" in n3.volumes:  # the engine went after the copy was whole: kept, whole
            assert n3.files.tree("copy")["d/f.txt"][1] == b"x" * 100_000, step
            assert source_on_n2.delete("/api/v1/volumes/copy", headers=ADMIN).status_code == 204
        assert "src" in fleet.engines["n2"].volumes
    else:
        pytest.fail("never ran to its end")
    assert step > 3  # lock, volume, helper, archive
    assert n3.files.tree("copy")["d/f.txt"][1] == b"x" * 100_000


def test_a_cross_node_clone_whose_source_stops_sending_half_way_makes_no_copy(fleet, source_on_n2):
    from .test_intents import leftovers

    fleet.wsgi.cut.add(fleet.address["n2"])
    r = source_on_n2.post("/api/v1/volumes/src/clone", json={"name": "copy", "node": "n3"}, headers=WRITER)
    assert r.status_code == 503, r.get_json()
    assert "copy" not in fleet.engines["n3"].volumes and leftovers(fleet.engines["n3"]) == []


def test_a_cross_node_clone_checks_its_order_before_anything_moves(fleet, source_on_n2):
    c = source_on_n2
    n3 = fleet.engines["n3"]
    before = dict(n3.calls)
    r = c.post("/api/v1/volumes/src/clone", json={"name": "copy", "node": "n3", "labels": {"": "x"}}, headers=WRITER)
    assert r.status_code == 422 and "labels" in json.dumps(r.get_json()["errors"]), r.get_json()
    r = c.post("/api/v1/volumes/src/clone", json={"name": "copy", "node": "n3", "pause": "yes"}, headers=WRITER)
    assert r.status_code == 422 and "pause" in r.get_json()["errors"], r.get_json()
    r = c.post("/api/v1/volumes/src/clone", json={"name": "copy", "node": "n9"}, headers=WRITER)
    assert r.status_code == 422 and "n9" in r.get_json()["detail"]  # a node the fleet does not have
    r = c.post("/api/v1/volumes/nothing/clone", json={"name": "copy", "node": "n3"}, headers=WRITER)
    assert r.status_code == 404, r.get_json()
    assert n3.calls.get("create_volume", 0) == before.get("create_volume", 0) and "copy" not in n3.volumes


def test_the_copy_side_of_a_clone_answers_only_signed_calls(fleet, source_on_n2):
    order = {"name": "copy", "labels": {}, "pause": False, "source": "src", "source_node": "n2"}
    r = fleet.client["n3"].post("/fleet/v1/clones", json=order, headers=ADMIN)
    assert r.status_code == 401 and "copy" not in fleet.engines["n3"].volumes
    forged = forwarding.sign(
        b"not-the-fleet-secret-0123",
        forwarding.Caller("x", frozenset({"admin"})),
        "n3",
        "POST",
        "/fleet/v1/clones",
        time.time(),
    )
    r = fleet.client["n3"].post("/fleet/v1/clones", json=order, headers={forwarding.HEADER: forged})
    assert r.status_code == 401 and "copy" not in fleet.engines["n3"].volumes


@pytest.mark.slow
def test_instances_that_hang_cost_one_timeout_together_not_one_each(fleet):
    c = fleet.client["n1"]
    fleet.wsgi.hanging.update({"10.0.0.7:8080", "10.0.0.8:8080", "10.0.0.9:8080"})  # new tasks, stuck
    started = time.monotonic()
    r = c.get("/api/v1/volumes", headers=READER)
    took = time.monotonic() - started
    assert r.status_code == 200
    assert took < 2 * 2.0, took  # the fleet's timeout is 2 s: once, not once per stuck instance


@pytest.fixture
def watched_fleet(fleet, monkeypatch):
    """Every node's view running (as gunicorn's workers start them), heartbeats fast."""
    from service.http import events as events_module

    monkeypatch.setattr(events_module, "HEARTBEAT", 0.1)
    views = [app.extensions["dockvol"].view for app in fleet.wsgi.apps.values()]
    for view in views:
        view.start_in_background()
    deadline = time.monotonic() + 5
    while not all(v.stats()["primed"] for v in views) and time.monotonic() < deadline:
        time.sleep(0.01)
    yield fleet
    for view, engine in zip(views, fleet.engines.values(), strict=True):
        view.stop()
        engine.down = True
        view._thread.join(5)


class Events:
    """One SSE stream read block by block: (fields) with `data` parsed; id-only blocks kept as `id`."""

    def __init__(self, client, headers, query=""):
        self.response = client.get(f"/api/v1/events{query}", headers=headers, buffered=False)
        self.status = self.response.status_code
        self.headers = self.response.headers
        self.id = None
        self._blocks = self._read()

    def _read(self):
        pending = ""
        for chunk in self.response.response:
            pending += chunk.decode() if isinstance(chunk, bytes) else chunk
            while "\n\n" in pending:
                raw, pending = pending.split("\n\n", 1)
                fields = dict(line.split(": ", 1) for line in raw.splitlines() if ": " in line)
                if "id" in fields:
                    self.id = fields["id"]
                if fields.get("event") not in (None, "heartbeat"):
                    fields["data"] = json.loads(fields["data"])
                    yield fields

    def next(self):
        return next(self._blocks, None)

    def until(self, count):
        return [self.next() for _ in range(count)]


def test_the_fleet_watch_merges_every_nodes_changes_and_resumes_each_node_where_it_was(watched_fleet):
    fleet = watched_fleet
    c = fleet.client["n1"]
    stream = Events(c, READER, "?resource=volume")
    assert stream.status == 200 and "Dockvol-Unreachable-Nodes" not in stream.headers
    for node in ("n2", "n3"):
        assert c.post("/api/v1/volumes", json={"name": f"on-{node}", "node": node}, headers=WRITER).status_code == 201
    seen = {(e["event"], e["data"]["name"], e["data"]["node"]) for e in stream.until(2)}
    assert seen == {("created", "on-n2", "n2"), ("created", "on-n3", "n3")}
    last = stream.id
    stream.response.close()
    for node in ("n1", "n3"):  # while the client is away
        assert c.post("/api/v1/volumes", json={"name": f"gone-{node}", "node": node}, headers=WRITER).status_code == 201
    resumed = Events(fleet.client["n2"], {**READER, "Last-Event-ID": last}, "?resource=volume")  # any instance
    seen = {(e["event"], e["data"]["name"], e["data"]["node"]) for e in resumed.until(2)}
    assert seen == {("created", "gone-n1", "n1"), ("created", "gone-n3", "n3")}  # nothing twice, nothing lost
    resumed.response.close()
    assert c.get("/api/v1/events", headers={**READER, "Last-Event-ID": "12-0"}).status_code == 422
    assert c.get("/api/v1/events?resource=nothing", headers=READER).status_code == 422
    assert c.get("/api/v1/events").status_code == 401


@pytest.mark.slow
def test_the_fleet_watch_names_a_silent_node_and_ends_when_the_fleet_changes(watched_fleet):
    fleet = watched_fleet
    fleet.wsgi.down.add(fleet.address["n3"])
    c = fleet.client["n1"]
    time.sleep(1.1)  # what the instances said of themselves is kept a second
    stream = Events(c, READER)
    assert stream.status == 200 and stream.headers["Dockvol-Unreachable-Nodes"] == "n3"
    fleet.wsgi.down.discard(fleet.address["n3"])  # it is back: the stream ends, the client comes back
    began = time.monotonic()
    assert stream.next() is None
    assert time.monotonic() - began < 5
    again = Events(c, {**READER, "Last-Event-ID": stream.id})
    assert again.status == 200 and "Dockvol-Unreachable-Nodes" not in again.headers
    again.response.close()


def test_one_nodes_watch_through_another_instance_is_that_nodes_own_stream(watched_fleet):
    fleet = watched_fleet
    stream = Events(fleet.client["n1"], READER, "?node=n2")
    assert stream.status == 200
    r = fleet.client["n1"].post("/api/v1/volumes", json={"name": "watched", "node": "n2"}, headers=WRITER)
    assert r.status_code == 201
    event = stream.next()
    assert event["data"]["node"] == "n2" and event["data"]["name"] == "watched"
    assert event["id"].replace("-", "").isdigit()  # the node's own id
    stream.response.close()


def test_a_forwarded_write_or_walk_waits_for_its_answer_and_a_forwarded_read_does_not(fleet):
    """An import, a clone or a usage walk answers when the work is done, which may be long after
    the fleet's timeout; an item read is bounded by it (a node that hangs is not waited for)."""
    from service.fleet.peers import NO_LIMIT

    waits = []
    real = fleet.wsgi.send

    def recording(address, method, target, headers, body, timeout, wait=None):
        waits.append((method, target.split("?")[0], wait))
        return real(address, method, target, headers, body, timeout, wait)

    fleet.wsgi.send = recording
    c = fleet.client["n1"]
    assert c.post("/api/v1/volumes", json={"name": "far", "node": "n2"}, headers=WRITER).status_code == 201
    assert c.get("/api/v1/volumes/far/usage?node=n2", headers=READER).status_code == 200
    assert c.get("/api/v1/volumes/far?node=n2", headers=READER).status_code == 200
    assert ("POST", "/api/v1/volumes", NO_LIMIT) in waits
    assert ("GET", "/api/v1/volumes/far/usage", NO_LIMIT) in waits
    assert ("GET", "/api/v1/volumes/far", None) in waits  # the fleet's timeout
