"""Projects on a three-node Swarm (docs/design.md section 11): a quota holds across nodes under
concurrent creates, another project's volume on another node is as missing, GET /projects counts
the whole fleet, and each project's watcher hears its own. Runs after test_fleet.py (whose last
test kills and restarts a node's engine): it waits for the fleet to be whole first."""

from __future__ import annotations

import collections
import concurrent.futures as futures
import json
import threading
import time
import uuid

import pytest
import requests

from service.fleet.locks import HOLDER_LABEL, KEY_LABEL, STALE_AFTER, TAKEN_LABEL, config_name

from .conftest import QUOTA, TIMEOUT


def unique(prefix: str) -> str:
    return f"fp-{prefix}-{uuid.uuid4().hex[:8]}"


def call(fleet, via, method, path, token, body=None, request_id=None):
    headers = {**fleet.auth(token), **({"X-Request-ID": request_id} if request_id else {})}
    return requests.request(method, via.url(f"/api/v1{path}"), json=body, headers=headers, timeout=90)


def in_engines(fleet, project):
    """(name, node) of every volume of `project` in the nodes' engines, asked directly."""
    return sorted(
        (v.name, node.name)
        for node in fleet.nodes
        for v in node.sdk().volumes.list(filters={"label": f"dockvol.project={project}"})
    )


@pytest.fixture(scope="module", autouse=True)
def whole(fleet):
    fleet.wait_ready(120)


@pytest.mark.parametrize("round_", [1, 2])
def test_concurrent_creates_on_two_nodes_fill_the_quota_exactly(fleet, round_):
    _n1, n2, n3 = fleet.nodes
    assert in_engines(fleet, "fa") == []
    prefix = unique(f"q{round_}")

    def create(i):
        via = (n2, n3)[i % 2]  # asked through two workers, each creating on its own node
        return call(fleet, via, "POST", "/volumes", "fa", {"name": f"{prefix}-{i:02}", "node": via.name})

    started = time.monotonic()
    try:
        with futures.ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(create, range(20)))
        took = time.monotonic() - started
        statuses = [r.status_code for r in answers]
        # A create that could not count in time (its lock wait ran out: 409 busy; a node slow to say
        # what it holds: 503) made nothing and says "try again"; asked again, it is refused.
        retried = [create(i) for i, r in enumerate(answers) if r.status_code in (409, 503)]
        odd = [(r.status_code, r.text) for r in answers if r.status_code not in (201, 403)]
        assert statuses.count(201) == QUOTA, (collections.Counter(statuses), odd)
        assert all(r.status_code == 403 for r in retried), [(r.status_code, r.text) for r in retried]
        assert statuses.count(403) + len(retried) == 20 - QUOTA, (collections.Counter(statuses), odd)
        refused = next(r.json() for r in answers + retried if r.status_code == 403)
        assert refused["quota"] == "volumes" and refused["limit"] == QUOTA and refused["used"] == QUOTA
        made = in_engines(fleet, "fa")
        assert len(made) == QUOTA and all(name.startswith(prefix) for name, _ in made)
        for via in fleet.nodes:
            shown = call(fleet, via, "GET", "/volumes?page_size=100", "fa").json()
            assert sorted((v["name"], v["node"]) for v in shown) == made
        assert not [c for c in fleet.manager().configs.list() if c.name.startswith("dockvol-lock-")]  # all let go
        print(
            f"round {round_}: 20 creates on two nodes, room for {QUOTA}: {statuses.count(201)} made in {took:.1f} s"
            f" ({len(retried)} told to try again)"
        )
    finally:  # the next tests count on project fa holding nothing
        for name, node in in_engines(fleet, "fa"):
            assert call(fleet, fleet.nodes[0], "DELETE", f"/volumes/{name}?node={node}", "fa").status_code == 204
    assert in_engines(fleet, "fa") == []


def test_another_projects_volume_on_another_node_is_as_missing(fleet):
    n1, n2, _n3 = fleet.nodes
    theirs, missing = unique("theirs"), unique("missing")
    assert call(fleet, n1, "POST", "/volumes", "fb", {"name": theirs, "node": n2.name}).status_code == 201
    for method, path, body in (
        ("GET", "/volumes/{}", None),
        ("GET", "/volumes/{}?node=" + n2.name, None),
        ("DELETE", "/volumes/{}?node=" + n2.name, None),
        ("POST", "/volumes/{}/clone", {"name": unique("copy")}),
        ("POST", "/volumes/{}/clone?node=" + n2.name, {"name": unique("copy"), "node": n1.name}),
    ):
        hidden = call(fleet, n1, method, path.format(theirs), "fa", body, request_id="same")
        absent = call(fleet, n1, method, path.format(missing), "fa", body, request_id="same")
        assert hidden.status_code == 404, (method, path, hidden.text)
        assert hidden.content == absent.content.replace(missing.encode(), theirs.encode()), (method, path)
    assert theirs not in [v["name"] for v in call(fleet, n1, "GET", "/volumes?page_size=100", "fa").json()]
    assert in_engines(fleet, "fb") == [(theirs, n2.name)] and in_engines(fleet, "fa") == []
    assert call(fleet, n1, "DELETE", f"/volumes/{theirs}", "fb").status_code == 204


def test_projects_count_the_whole_fleet(fleet):
    prefix = unique("counted")
    for node in fleet.nodes:
        assert call(fleet, node, "POST", "/volumes", "fa", {"name": f"{prefix}-{node.name}", "node": node.name})
    for via in fleet.nodes:
        r = call(fleet, via, "GET", "/projects/fa", "fa")
        assert r.status_code == 200 and r.json()["usage"]["volumes"] == len(fleet.nodes), r.text
        assert "Dockvol-Unreachable-Nodes" not in r.headers
        listed = {p["name"]: p["usage"]["volumes"] for p in call(fleet, via, "GET", "/projects", "admin").json()}
        assert listed["fa"] == len(fleet.nodes) == len(in_engines(fleet, "fa"))
    for node in fleet.nodes:
        assert call(fleet, node, "DELETE", f"/volumes/{prefix}-{node.name}", "fa").status_code == 204


class Watch:
    """One project's merged event stream, read on a thread of its own."""

    def __init__(self, fleet, via, token):
        url = via.url("/api/v1/events?resource=volume")
        self.response = requests.get(url, headers=fleet.auth(token), stream=True, timeout=60)
        assert self.response.status_code == 200, self.response.text
        self.lines: list[str] = []
        self.names: set[str] = set()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                self.lines.append(line)
                if line.startswith("data: "):
                    data = json.loads(line[6:])
                    if "name" in data:
                        self.names.add(data["name"])
        except (requests.RequestException, AttributeError):
            pass  # closed

    def close(self):
        self.response.close()


def test_each_projects_watcher_through_another_node_hears_only_its_own(fleet):
    n1, n2, n3 = fleet.nodes
    prefix = unique("watched")
    watch_a, watch_b = Watch(fleet, n1, "fa"), Watch(fleet, n2, "fb")
    try:
        made = {"fa": [], "fb": []}
        for project in ("fb", "fa"):  # b's first: a's stream would carry b's before a's own
            for node in (n2, n3):
                name = f"{prefix}-{project}-{node.name}"
                assert (
                    call(fleet, n3, "POST", "/volumes", project, {"name": name, "node": node.name}).status_code == 201
                )
                made[project].append(name)
        deadline = 30
        for watch, project in ((watch_a, "fa"), (watch_b, "fb")):
            for _ in range(deadline * 10):
                if set(made[project]) <= watch.names:
                    break
                threading.Event().wait(0.1)
            assert set(made[project]) <= watch.names, (project, watch.names)
        b_names = "\n".join(watch_a.lines)
        assert "-fb-" not in b_names and all(n not in watch_a.names for n in made["fb"])
        assert all(n not in watch_b.names for n in made["fa"]) and "-fa-" not in "\n".join(watch_b.lines)
    finally:
        watch_a.close()
        watch_b.close()
    for project, names in made.items():
        for name in names:
            assert call(fleet, n1, "DELETE", f"/volumes/{name}", project).status_code == 204


def test_a_create_waits_for_a_held_lock_and_breaks_a_dead_holders(fleet):
    _n1, n2, _n3 = fleet.nodes
    configs = fleet.manager().configs
    name = config_name("quota/fa")

    def lock(taken: float):
        labels = {KEY_LABEL: "quota/fa", HOLDER_LABEL: "test/1/held", TAKEN_LABEL: f"{taken:.3f}"}
        return configs.create(name=name, data=b"quota/fa", labels=labels)

    held = lock(time.time())  # a live holder's: the create waits for it to let go
    threading.Timer(3.0, held.remove).start()
    started = time.monotonic()
    made = unique("waited")
    r = call(fleet, n2, "POST", "/volumes", "fa", {"name": made, "node": n2.name})
    waited = time.monotonic() - started
    assert r.status_code == 201 and waited >= 2.5, (r.status_code, waited)

    lock(time.time() - max(STALE_AFTER, 4 * TIMEOUT) - 5)  # a dead holder's, past the bound: broken
    started = time.monotonic()
    broke = unique("broke")
    r = call(fleet, n2, "POST", "/volumes", "fa", {"name": broke, "node": n2.name})
    assert r.status_code == 201 and time.monotonic() - started < 5, r.text
    assert not [c for c in configs.list() if c.name == name]
    print(f"a create waited {waited:.1f} s for a held fleet lock; a stale one was broken at once")
    for volume in (made, broke):
        assert call(fleet, n2, "DELETE", f"/volumes/{volume}", "fa").status_code == 204
