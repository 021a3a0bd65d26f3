"""Fleet lists on a real Swarm: three private engines in network namespaces (tests/fleet/lab.sh,
a lab of its own beside the tests'), dockvol deployed with deploy/swarm-stack.yml. Prints a merged
list of 1,000 volumes spread over the three nodes next to one node's list of the same 1,000 (all
on that node: through the fleet, through the fleet with ?node=, and from its engine directly).
Run by `make bench`; asserts nothing about speed."""

from __future__ import annotations

import argparse
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile

import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from common import median, p99, table, timed  # noqa: E402

from tests.fleet.conftest import LAB, TOKENS, Fleet, _deploy, _lines  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default=os.environ.get("DOCKVOL_BENCH_ENGINE", "26.1"))
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--no-build", action="store_true", help="the image is on the bench engine already")
    args = parser.parse_args()
    os.environ.setdefault("LAB_TAG", "labbench")
    os.environ.setdefault("LAB_NET", "10.213.3")
    work = pathlib.Path(tempfile.mkdtemp(prefix="dockvol-bench-swarm-"))
    bind_root = pathlib.Path(f"/tmp/dockvol-lab-{args.engine}-bench-binds")
    bind_root.mkdir(mode=0o755, exist_ok=True)
    f = Fleet(args.engine, [], {scope: secrets.token_urlsafe(18) for scope in TOKENS}, bind_root)
    subprocess.run([str(LAB), "down", args.engine], capture_output=True, timeout=300)
    try:
        f.nodes = _lines(f.lab("up"))
        _deploy(f, work, build=not args.no_build)
        f.wait_ready()
        run(f, args)
    finally:
        subprocess.run([str(LAB), "down", args.engine], capture_output=True, timeout=300)
        subprocess.run(["rm", "-rf", str(work), str(bind_root)], check=False)


def run(f: Fleet, args: argparse.Namespace) -> None:
    auth, n = f.auth("reader"), args.volumes
    first = f.nodes[0]
    engines = [node.sdk() for node in f.nodes]
    listing = f"/api/v1/volumes?page_size={n}"

    def fleet_list(query: str = "") -> None:
        r = requests.get(first.url(listing + query), headers=auth, timeout=60)
        assert r.status_code == 200 and len(r.json()) == n, (r.status_code, len(r.json()))
        assert "Dockvol-Unreachable-Nodes" not in r.headers

    for i in range(n):
        engines[i % 3].volumes.create(f"bench-{i:05}", labels={"dockvol.managed": "true"})
    fleet_list()
    spread = timed(fleet_list, args.repeat)
    for i in range(n):
        engines[i % 3].volumes.get(f"bench-{i:05}").remove()
    for i in range(n):
        engines[0].volumes.create(f"bench-{i:05}", labels={"dockvol.managed": "true"})
    fleet_list()
    on_one = timed(fleet_list, args.repeat)
    named = timed(lambda: fleet_list(f"&node={first.name}"), args.repeat)
    raw = timed(lambda: engines[0].api.volumes(), args.repeat)
    print(f"\nfleet lists on a three-node Swarm (engine {args.engine}, lab on one machine): {n} volumes, one page")
    rows = [["list", "median ms", "p99 ms", "x engine"]]
    base = median(raw)
    for label, times in (
        (f"merged: {n} spread over 3 nodes", spread),
        (f"merged: {n} all on one node (the others empty)", on_one),
        (f"?node=: {n} on that node, forwarded to it", named),
        ("that node's engine directly (GET /volumes)", raw),
    ):
        rows.append([label, f"{median(times) * 1e3:.1f}", f"{p99(times) * 1e3:.1f}", f"{median(times) / base:.2f}"])
    print(table(rows))


if __name__ == "__main__":
    main()
