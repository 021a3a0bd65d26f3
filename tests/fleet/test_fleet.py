"""dockvol on a three-node Swarm: any instance answers for the fleet (docs/design.md section 10).
The tests run in order; the last kills a node's engine, then starts it again."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import requests

from tests.support import IMAGE, files_of, tar_of

from .conftest import SERVICE, TIMEOUT


def unique(prefix: str) -> str:
    return f"fl-{prefix}-{uuid.uuid4().hex[:8]}"


def names(response) -> list[tuple[str, str]]:
    return [(item["name"], item["node"]) for item in response.json()]


def containers_on(node) -> set[str]:
    return {c.name for c in node.sdk().containers.list(all=True)}


def post(fleet, via, path, body, scope="writer"):
    return requests.post(via.url(f"/api/v1{path}"), json=body, headers=fleet.auth(scope), timeout=30)


def get(fleet, via, path, scope="reader"):
    return requests.get(via.url(f"/api/v1{path}"), headers=fleet.auth(scope), timeout=30)


def test_every_instance_lists_the_whole_fleet(fleet):
    want = [n.name for n in fleet.nodes]
    for via in fleet.nodes:
        r = get(fleet, via, "/nodes")
        assert r.status_code == 200
        shown = r.json()
        assert [n["name"] for n in shown] == want
        assert [n["role"] for n in shown] == ["manager", "worker", "worker"]
        assert {(n["availability"], n["state"], n["dockvol"]) for n in shown} == {("active", "ready", "up")}
        assert all(n["id"] and n["engine_version"] for n in shown)


def test_the_seeds_scenarios_on_a_chosen_node(fleet):
    n1, n2, _n3 = fleet.nodes
    volume, anon, bound, group, member = (unique(p) for p in ("site", "anon", "bind", "grp", "member"))
    # docker volume create; docker run -v /data busybox; docker run -v HOST:/data busybox
    assert post(fleet, n1, "/volumes", {"name": volume, "node": n2.name}).status_code == 201
    body = {"image": IMAGE, "command": ["sleep", "600"], "network": "none", "node": n2.name}
    r = post(fleet, n1, "/bindings", {**body, "name": anon, "mounts": [{"type": "volume", "target": "/data"}]})
    assert r.status_code == 201 and r.json()["node"] == n2.name, r.text
    host_dir = fleet.bind_root / anon
    mounts = [{"type": "bind", "source": str(host_dir), "target": "/data"}]
    r = post(fleet, n1, "/bindings", {**body, "name": bound, "mounts": mounts})
    assert r.status_code == 201 and r.json()["node"] == n2.name, r.text
    # --volumes-from: a sharing group on n2 and a member, placed by its group
    r = post(
        fleet,
        n1,
        "/sharing-groups",
        {"name": group, "node": n2.name, "mounts": [{"type": "volume", "source": volume, "target": "/shared"}]},
    )
    assert r.status_code == 201 and r.json()["node"] == n2.name, r.text
    r = post(
        fleet, n1, "/bindings", {"name": member, "image": IMAGE, "command": ["sleep", "600"], "sharing_group": group}
    )
    assert r.status_code == 201 and r.json()["node"] == n2.name, r.text
    on_n2 = containers_on(n2)
    assert {anon, bound, group, member} <= on_n2
    assert not {anon, bound, group, member} & (containers_on(n1) | containers_on(fleet.nodes[2]))
    shown = get(fleet, fleet.nodes[2], f"/volumes/{volume}").json()
    assert shown["node"] == n2.name and {u["container"] for u in shown["used_by"]} == {group, member}
    assert all(u["node"] == n2.name for u in shown["used_by"])


def test_one_name_on_two_nodes(fleet):
    n1, n2, n3 = fleet.nodes
    name = unique("twin")
    for node in (n1, n3):
        r = post(fleet, n2, "/volumes", {"name": name, "node": node.name})
        assert r.status_code == 201 and r.json()["node"] == node.name
    listed = get(fleet, n2, f"/volumes?name={name}")
    assert names(listed) == [(name, n1.name), (name, n3.name)]
    r = get(fleet, n2, f"/volumes/{name}")
    assert r.status_code == 409 and r.json()["nodes"] == [n1.name, n3.name]
    for node in (n1, n3):
        r = get(fleet, n2, f"/volumes/{name}?node={node.name}")
        assert r.status_code == 200 and r.json()["node"] == node.name
    only = get(fleet, n1, f"/volumes?name={name}&node={n3.name}")
    assert names(only) == [(name, n3.name)]


def test_a_binding_goes_to_its_volumes_node_and_a_member_to_its_groups(fleet):
    n1, n2, n3 = fleet.nodes
    data, web, group, member = (unique(p) for p in ("data", "web", "grp", "mem"))
    assert post(fleet, n1, "/volumes", {"name": data, "node": n3.name}).status_code == 201
    mounts = [{"type": "volume", "source": data, "target": "/srv"}]
    r = post(
        fleet,
        n1,
        "/bindings",
        {"name": web, "image": IMAGE, "command": ["sleep", "600"], "network": "none", "mounts": mounts},
    )
    assert r.status_code == 201 and r.json()["node"] == n3.name
    assert web in containers_on(n3)
    assert post(fleet, n2, "/sharing-groups", {"name": group, "node": n1.name}).status_code == 201
    r = post(
        fleet, n3, "/bindings", {"name": member, "image": IMAGE, "command": ["sleep", "600"], "sharing_group": group}
    )
    assert r.status_code == 201 and r.json()["node"] == n1.name
    clash = {"name": unique("clash"), "image": IMAGE, "network": "none", "node": n2.name, "mounts": mounts}
    r = post(fleet, n1, "/bindings", clash)
    assert r.status_code == 422 and "node" in r.json()["errors"]


def test_a_write_is_forwarded_with_its_callers_identity_and_a_forged_one_is_refused(fleet):
    n1, _n2, n3 = fleet.nodes
    name = unique("fwd")
    r = post(fleet, n1, "/volumes", {"name": name, "node": n3.name}, scope="reader")
    assert r.status_code == 403  # the reader's scopes travel: n3 refuses
    r = post(fleet, n1, "/volumes", {"name": name, "node": n3.name}, scope="writer")
    assert r.status_code == 201 and r.json()["node"] == n3.name
    assert n3.sdk().volumes.get(name).attrs["Labels"]["dockvol.managed"] == "true"
    content = {"index.html": b"<h1>fleet</h1>\n"}
    r = requests.put(
        n1.url(f"/api/v1/volumes/{name}/archive"),
        data=tar_of(content),
        headers={**fleet.auth("admin"), "Content-Type": "application/x-tar"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    r = requests.get(
        fleet.nodes[1].url(f"/api/v1/volumes/{name}/archive"),
        headers={**fleet.auth("reader"), "Accept-Encoding": "identity"},
        timeout=60,
    )
    assert r.status_code == 200 and files_of(r.content) == content
    forged = f"v1 {time.time():.3f} bGFiMjA admin admin {'0' * 64}"
    r = requests.post(
        n3.url("/api/v1/volumes"), json={"name": unique("evil")}, headers={"Dockvol-Forwarded": forged}, timeout=30
    )
    assert r.status_code == 401
    r = requests.get(n3.url("/fleet/v1/identity"), timeout=30)
    assert r.status_code == 401


def test_a_clone_onto_another_node_carries_the_content(fleet):
    n1, n2, n3 = fleet.nodes
    source, copy = unique("src"), unique("copy")
    assert post(fleet, n3, "/volumes", {"name": source, "node": n1.name}).status_code == 201
    content = {f"dir/file-{i}": bytes([i]) * (64 * 1024 * i) for i in range(1, 9)}  # 2.3 MiB
    r = requests.put(
        n3.url(f"/api/v1/volumes/{source}/archive"),
        data=tar_of(content),
        headers={**fleet.auth("admin"), "Content-Type": "application/x-tar"},
        timeout=60,
    )
    assert r.status_code == 200
    r = post(fleet, n3, f"/volumes/{source}/clone", {"name": copy, "node": n2.name, "labels": {"team": "web"}})
    assert r.status_code == 201, r.text
    assert r.json()["node"] == n2.name and r.json()["labels"] == {"team": "web"}
    assert copy in {v.name for v in n2.sdk().volumes.list()} and copy not in {v.name for v in n1.sdk().volumes.list()}
    r = requests.get(
        n1.url(f"/api/v1/volumes/{copy}/archive"),
        headers={**fleet.auth("reader"), "Accept-Encoding": "identity"},
        timeout=60,
    )
    assert r.status_code == 200 and files_of(r.content) == content


class Watch:
    """One merged event stream from the fleet, read over HTTP."""

    def __init__(self, fleet, via, last_id=None):
        headers = {**fleet.auth("reader"), **({"Last-Event-ID": last_id} if last_id else {})}
        url = via.url("/api/v1/events?resource=volume")
        self.response = requests.get(url, headers=headers, stream=True, timeout=60)
        assert self.response.status_code == 200, self.response.text
        self.id, self._lines = None, self.response.iter_lines(decode_unicode=True)

    def created(self, prefix: str, count: int) -> set[tuple[str, str]]:
        """The next `count` volumes whose name starts with `prefix` that were created: (name, node)."""
        seen, event = set(), None
        for line in self._lines:
            if line.startswith("id: "):
                self.id = line[4:]
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "created" and f'"name": "{prefix}' in line:
                data = json.loads(line[6:])
                seen.add((data["name"], data["node"]))
                if len(seen) == count:
                    return seen
        raise AssertionError(f"the stream ended with {seen}")

    def close(self):
        self.response.close()


def test_one_watch_over_the_whole_fleet_resumes_on_any_instance(fleet):
    n1, n2, n3 = fleet.nodes
    prefix = unique("watched")
    watch = Watch(fleet, n1)
    for node in (n2, n3):
        assert post(fleet, n1, "/volumes", {"name": f"{prefix}-{node.name}", "node": node.name}).status_code == 201
    assert watch.created(prefix, 2) == {(f"{prefix}-{n.name}", n.name) for n in (n2, n3)}
    last = watch.id
    watch.close()
    for node in (n1, n3):  # while the client is away
        assert post(fleet, n2, "/volumes", {"name": f"{prefix}-away-{node.name}", "node": node.name}).status_code == 201
    resumed = Watch(fleet, n3, last)  # another instance
    assert resumed.created(f"{prefix}-away", 2) == {(f"{prefix}-away-{n.name}", n.name) for n in (n1, n3)}
    resumed.close()


def test_a_rolling_update_keeps_every_nodes_data(fleet):
    made = {}
    for node in fleet.nodes:
        name = unique("keep")
        assert post(fleet, node, "/volumes", {"name": name, "node": node.name}).status_code == 201
        r = requests.put(
            node.url(f"/api/v1/volumes/{name}/archive"),
            data=tar_of({"f": node.name.encode()}),
            headers={**fleet.auth("admin"), "Content-Type": "application/x-tar"},
            timeout=60,
        )
        assert r.status_code == 200
        made[name] = node.name
    before = {
        n.name: n.sdk().containers.list(filters={"label": f"com.docker.swarm.service.name={SERVICE}"})[0].id
        for n in fleet.nodes
    }
    subprocess.run(
        [
            "docker",
            "-H",
            fleet.nodes[0].host,
            "service",
            "update",
            "--force",
            "--no-resolve-image",
            "--detach=false",
            "-q",
            SERVICE,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    fleet.wait_ready()
    after = {
        n.name: n.sdk().containers.list(filters={"label": f"com.docker.swarm.service.name={SERVICE}"})[0].id
        for n in fleet.nodes
    }
    assert all(before[n] != after[n] for n in before), "every instance was replaced"
    for name, node in made.items():
        r = requests.get(
            fleet.nodes[0].url(f"/api/v1/volumes/{name}/archive"),
            headers={**fleet.auth("reader"), "Accept-Encoding": "identity"},
            timeout=60,
        )
        assert r.status_code == 200 and files_of(r.content) == {"f": node.encode()}
        assert get(fleet, fleet.nodes[2], f"/volumes/{name}").json()["node"] == node


def test_a_node_whose_engine_dies_is_named_and_the_others_answer(fleet):
    n1, n2, n3 = fleet.nodes
    kept, lost = unique("kept"), unique("lost")
    assert post(fleet, n1, "/volumes", {"name": kept, "node": n2.name}).status_code == 201
    assert post(fleet, n1, "/volumes", {"name": lost, "node": n3.name}).status_code == 201
    fleet.lab("stop-node", "3", "--kill")
    started = time.monotonic()
    r = get(fleet, n1, "/volumes")
    took = time.monotonic() - started
    assert r.status_code == 200 and took < TIMEOUT + 3, (r.status_code, took)
    assert r.headers["Dockvol-Unreachable-Nodes"] == n3.name
    assert (kept, n2.name) in names(r) and all(node != n3.name for _name, node in names(r))
    r = get(fleet, n2, f"/volumes/{lost}")
    assert r.status_code == 503 and n3.name in r.text
    assert get(fleet, n2, f"/volumes/{kept}").status_code == 200
    shown = {n["name"]: n["dockvol"] for n in get(fleet, n1, "/nodes").json()}
    assert shown == {n1.name: "up", n2.name: "up", n3.name: "unreachable"}
    r = post(fleet, n1, "/volumes", {"name": unique("after")})
    assert r.status_code == 201 and r.json()["node"] != n3.name
    print(f"a list with one node's engine killed answered in {took:.2f} s, naming it")

    # The node comes back (its engine starts again): Swarm starts its dockvol task there again, and
    # the fleet has it back, with its data, with no step of dockvol's own.
    fleet.lab("start-node", "3")
    began = time.monotonic()
    while True:
        r = get(fleet, n1, "/volumes")
        if r.status_code == 200 and "Dockvol-Unreachable-Nodes" not in r.headers:
            break
        assert time.monotonic() - began < 120, ("node 3 did not come back", r.status_code, r.headers)
        time.sleep(0.5)
    back = time.monotonic() - began
    for name, node in ((lost, n3), (kept, n2)):
        r = get(fleet, n2, f"/volumes/{name}")
        assert r.status_code == 200 and r.json()["node"] == node.name, r.text
    shown = {n["name"]: n["dockvol"] for n in get(fleet, n1, "/nodes").json()}
    assert shown == {n1.name: "up", n2.name: "up", n3.name: "up"}
    print(f"node 3 was back in the fleet {back:.1f} s after its engine started again")
