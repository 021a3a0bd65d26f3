"""Projects in fleet mode over three in-memory nodes (n1 the Swarm's manager): quotas counted over
every node under one fleet-wide lock (a Swarm config on the manager's engine, taken for the workers
through its instance), usage summed over the nodes, isolation through forwarding."""

from __future__ import annotations

import concurrent.futures as futures

import pytest

from service.app import create_app
from service.config import ProjectConfig, Settings
from service.engine.port import SwarmNode
from tests.fakes.memory import InMemoryEngine

from .conftest import bearer
from .fleet_transport import NODES, SECRET, Wsgi

TOKENS = {
    "a": {"scopes": ["write"], "project": "a"},
    "b": {"scopes": ["write"], "project": "b"},
    "op": {"scopes": ["admin"], "project": "*"},
}
PROJECTS = {"a": ProjectConfig({"volumes": 5, "sharing_groups": 1}), "b": ProjectConfig()}


@pytest.fixture
def fleet():
    wsgi, engines, clients = Wsgi(), {}, {}
    for i, name in enumerate(NODES):
        engines[name] = InMemoryEngine(name=name)
        settings = Settings(tokens=TOKENS, projects=PROJECTS, fleet="swarm", fleet_secret=SECRET, engine_timeout=2.0)
        address = f"10.0.0.{i + 1}:8080"
        wsgi.apps[address] = create_app(settings, engine=engines[name], peers=(wsgi.resolve, wsgi))
        clients[name] = wsgi.apps[address].test_client()
    engines["n1"].swarm_nodes = [
        SwarmNode(f"id-{n}", n, "manager" if n == "n1" else "worker", "active", "ready") for n in NODES
    ]
    return wsgi, engines, clients


def project_volumes(engines, project):
    return sorted(
        (name, node)
        for node, engine in engines.items()
        for name, v in engine.volumes.items()
        if v.labels.get("dockvol.project") == project
    )


def test_concurrent_creates_on_two_nodes_fill_the_quota_exactly_once(fleet):
    wsgi, engines, clients = fleet
    for round_ in range(2):

        def create(i, round_=round_):
            node = ("n2", "n3")[i % 2]  # asked through the workers, made on them
            body = {"name": f"r{round_}-v{i:02}", "node": node}
            return clients[node].post("/api/v1/volumes", json=body, headers=bearer("a")).status_code

        with futures.ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(create, range(20)))
        assert sorted(statuses).count(201) == 5 and statuses.count(403) == 15, statuses
        made = project_volumes(engines, "a")
        assert len(made) == 5 and {node for _, node in made} <= {"n2", "n3"}
        assert not engines["n1"].configs  # every lock let go
        for node in NODES:
            shown = clients[node].get("/api/v1/volumes", headers=bearer("a")).get_json()
            assert sorted((v["name"], v["node"]) for v in shown) == made
        for name, node in made:
            assert clients["n1"].delete(f"/api/v1/volumes/{name}?node={node}", headers=bearer("a")).status_code == 204


def test_a_refusal_counts_what_every_node_holds(fleet):
    _, engines, clients = fleet
    for i, node in enumerate(("n1", "n2", "n3", "n1", "n3")):
        r = clients["n2"].post("/api/v1/volumes", json={"name": f"v{i}", "node": node}, headers=bearer("a"))
        assert r.status_code == 201, r.get_json()
    r = clients["n2"].post("/api/v1/volumes", json={"name": "v9", "node": "n2"}, headers=bearer("a"))
    assert r.status_code == 403
    assert {k: r.get_json()[k] for k in ("quota", "limit", "used")} == {"quota": "volumes", "limit": 5, "used": 5}
    assert "v9" not in engines["n2"].volumes
    assert clients["n3"].post("/api/v1/sharing-groups", json={"name": "g1", "node": "n3"}, headers=bearer("a"))
    r = clients["n1"].post("/api/v1/sharing-groups", json={"name": "g2", "node": "n1"}, headers=bearer("a"))
    assert r.status_code == 403 and r.get_json()["quota"] == "sharing_groups"


def test_projects_show_usage_summed_over_the_nodes(fleet):
    wsgi, _, clients = fleet
    for i, node in enumerate(("n1", "n2", "n2")):
        assert clients["n1"].post("/api/v1/volumes", json={"name": f"v{i}", "node": node}, headers=bearer("a"))
    clients["n3"].post("/api/v1/volumes", json={"name": "bv", "node": "n3"}, headers=bearer("b"))
    for node in NODES:
        r = clients[node].get("/api/v1/projects/a", headers=bearer("a"))
        assert r.status_code == 200 and r.get_json()["usage"]["volumes"] == 3
        listed = {
            p["name"]: p["usage"]["volumes"]
            for p in clients[node].get("/api/v1/projects", headers=bearer("op")).get_json()
        }
        assert listed["a"] == 3 and listed["b"] == 1
    wsgi.down.add("10.0.0.3:8080")
    r = clients["n1"].get("/api/v1/projects/a", headers=bearer("a"))
    assert r.status_code == 200 and r.headers["Dockvol-Unreachable-Nodes"] == "n3"


def test_a_create_under_quota_waits_for_every_node_to_be_counted(fleet):
    wsgi, engines, clients = fleet
    wsgi.down.add("10.0.0.3:8080")
    r = clients["n1"].post("/api/v1/volumes", json={"name": "held", "node": "n2"}, headers=bearer("a"))
    assert r.status_code == 503 and "n3" in r.get_json()["detail"], r.get_json()
    assert "held" not in engines["n2"].volumes and not engines["n1"].configs
    r = clients["n1"].post("/api/v1/volumes", json={"name": "free", "node": "n2"}, headers=bearer("b"))
    assert r.status_code == 201  # b has no quota: nothing to count


def test_another_projects_volume_on_another_node_is_as_missing(fleet):
    _, engines, clients = fleet
    assert clients["n2"].post("/api/v1/volumes", json={"name": "secret", "node": "n2"}, headers=bearer("b"))
    same_id = {**bearer("a"), "X-Request-ID": "r1"}
    for method, path, body in (
        ("GET", "/api/v1/volumes/secret", None),
        ("GET", "/api/v1/volumes/secret?node=n2", None),
        ("POST", "/api/v1/volumes/secret/clone?node=n2", {"name": "mine", "node": "n1"}),  # onto another node
    ):
        hidden = clients["n1"].open(path, method=method, json=body, headers=same_id)
        missing = clients["n1"].open(path.replace("secret", "nosuch"), method=method, json=body, headers=same_id)
        assert hidden.status_code == 404
        assert hidden.get_data() == missing.get_data().replace(b"nosuch", b"secret")
    assert clients["n1"].delete("/api/v1/volumes/secret?node=n2", headers=bearer("a")).status_code == 404
    clone = clients["n1"].post("/api/v1/volumes/secret/clone?node=n2", json={"name": "mine"}, headers=bearer("a"))
    assert clone.status_code == 404
    assert "secret" in engines["n2"].volumes and "mine" not in engines["n2"].volumes
    assert [v["name"] for v in clients["n1"].get("/api/v1/volumes", headers=bearer("a")).get_json()] == []
