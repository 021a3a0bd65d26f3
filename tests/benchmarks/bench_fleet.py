"""Fleet lists in simulation: the real router over 100 in-memory nodes, each its own app with
its own in-memory engine, reached through their WSGI apps with a simulated network delay. Prints
the latency of a merged list page with every node up, and with some slow and some down, next to
one node's own list in the same run. Run by `make bench`; asserts nothing about speed."""

from __future__ import annotations

import argparse
import random
import time

from common import median, p99, table, timed

from service.app import create_app
from service.config import Settings
from service.engine.port import SwarmNode
from service.errors import EngineUnavailable
from service.fleet.peers import Reply
from tests.fakes.memory import InMemoryEngine

SECRET = b"bench-fleet-secret-0123456789"
TOKENS = {"bench": ["admin"]}
AUTH = {"Authorization": "Bearer bench"}


class Network:
    """address -> app; each call waits the node's delay; a down node refuses, a slow one hangs."""

    def __init__(self) -> None:
        self.apps: dict[str, object] = {}
        self.delay: dict[str, float] = {}
        self.down: set[str] = set()

    def resolve(self) -> list[str]:
        return sorted(self.apps)

    def send(self, address, method, target, headers, body, timeout, wait=None):
        if address in self.down:
            raise EngineUnavailable(f"{address} refuses")
        wait = self.delay[address]
        if wait > timeout:
            time.sleep(timeout)
            raise EngineUnavailable(f"{address} did not answer in time")
        time.sleep(wait)
        data = body if body is None or isinstance(body, bytes) else body.read()
        r = self.apps[address].test_client().open(target, method=method, headers=headers, data=data)
        return Reply(r.status_code, dict(r.headers), iter([r.get_data()]))


def build(nodes: int, volumes: int, timeout: float) -> tuple[Network, dict[str, str]]:
    net, rng = Network(), random.Random(3)
    names = [f"node-{i:03}" for i in range(nodes)]
    settings = Settings(tokens=TOKENS, fleet="swarm", fleet_secret=SECRET, engine_timeout=timeout)
    for i, name in enumerate(names):
        engine = InMemoryEngine(name=name)
        for j in range(volumes):
            engine.create_volume(f"vol-{rng.randrange(100 * volumes):05}-{j}", "local", {}, {"dockvol.managed": "true"})
        if i == 0:
            engine.swarm_nodes = [SwarmNode(f"id-{n}", n, "worker", "active", "ready") for n in names]
        address = f"10.9.{i // 250}.{i % 250 + 1}:8080"
        net.apps[address] = create_app(settings, engine=engine, peers=(net.resolve, net))
        net.delay[address] = rng.uniform(0.001, 0.010)
    return net, {name: f"10.9.{i // 250}.{i % 250 + 1}:8080" for i, name in enumerate(names)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--volumes", type=int, default=10, help="per node")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--timeout", type=float, default=1.0, help="DOCKVOL_ENGINE_TIMEOUT")
    args = parser.parse_args()
    net, address = build(args.nodes, args.volumes, args.timeout)
    edge = net.apps[address["node-000"]].test_client()
    page = "/api/v1/volumes?page=2&page_size=50"

    def fleet_list() -> None:
        r = edge.get(page, headers=AUTH)
        assert r.status_code == 200 and len(r.get_json()) == 50, r.status_code

    one = InMemoryEngine(name="alone")
    for j in range(args.nodes * args.volumes):
        one.create_volume(f"vol-{j:05}", "local", {}, {})
    alone = create_app(Settings(tokens=TOKENS), engine=one).test_client()
    local = timed(lambda: alone.get(page, headers=AUTH), args.repeat)
    fleet_list()  # the first asks every instance who it is
    up = timed(fleet_list, args.repeat)
    down, slow = ("node-010", "node-011", "node-012"), ("node-050", "node-051")
    net.down.update(address[n] for n in down)
    net.delay.update((address[n], args.timeout * 5) for n in slow)
    r = edge.get(page, headers=AUTH)
    named = r.headers.get("Dockvol-Unreachable-Nodes", "")
    degraded = timed(fleet_list, max(3, args.repeat // 3))
    total = args.nodes * args.volumes
    print(
        f"\nfleet list in simulation: {args.nodes} in-memory nodes x {args.volumes} volumes, network 1-10 ms per call,"
    )
    print(f"page 2 of 50 from the merged {total}; DOCKVOL_ENGINE_TIMEOUT {args.timeout} s. Every node runs in this one")
    print("process, so their work queues on one core: an upper bound on the router's own cost.")
    rows = [["case", "median ms", "p99 ms"]]
    rows.append([f"one node's own list of {total} (no fleet)", f"{median(local) * 1e3:.1f}", f"{p99(local) * 1e3:.1f}"])
    rows.append([f"{args.nodes} nodes, all up", f"{median(up) * 1e3:.1f}", f"{p99(up) * 1e3:.1f}"])
    rows.append(["3 down, 2 slow past the timeout", f"{median(degraded) * 1e3:.1f}", f"{p99(degraded) * 1e3:.1f}"])
    print(table(rows))
    print(f"named unreachable: {named} (down: {', '.join(down)}; slow: {', '.join(slow)})")


if __name__ == "__main__":
    main()
