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
import time

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
    parser.add_argument("--clone-mib", type=int, default=512, help="size of the volume cloned across nodes")
    parser.add_argument("--clone-repeat", type=int, default=3)
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

    def seen() -> None:  # made on the engines directly: each view has them once their events arrive
        for _ in range(100):
            r = requests.get(first.url(listing), headers=auth, timeout=60)
            if len(r.json()) == n:
                return
            time.sleep(0.1)
        fleet_list()

    for i in range(n):
        engines[i % 3].volumes.create(f"bench-{i:05}", labels={"dockvol.managed": "true"})
    seen()
    spread = timed(fleet_list, args.repeat)
    for i in range(n):
        engines[i % 3].volumes.get(f"bench-{i:05}").remove()
    for i in range(n):
        engines[0].volumes.create(f"bench-{i:05}", labels={"dockvol.managed": "true"})
    seen()
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
    clone_across(f, args)


PEAK_RSS = """
import os
peak = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        status = open(f"/proc/{pid}/status").read()
        if "gunicorn" in open(f"/proc/{pid}/cmdline").read():
            peak = max(peak, int(status.split("VmHWM:")[1].split()[0]))
    except (OSError, IndexError):
        pass
print(peak)
"""


def peak_rss_mib(node) -> float:
    """The largest peak resident size (VmHWM) of the node's dockvol processes, in MiB."""
    container = node.sdk().containers.list(filters={"label": "dockvol.role=service"})[0]
    code, out = container.exec_run(["python3", "-c", PEAK_RSS])
    assert code == 0, out
    return int(out) / 1024


def clone_across(f: Fleet, args: argparse.Namespace) -> None:
    """A volume of --clone-mib MiB cloned from node 1 to node 2 through node 3's instance, next to the
    same bytes copied engine to engine (an archive read from one, written into the other), with the
    dockvol processes' peak resident memory on each node before and after."""
    import tarfile

    from tests.support import IMAGE

    n1, n2, n3 = f.nodes
    size = args.clone_mib * 1024 * 1024
    chunk = os.urandom(1024 * 1024)

    def tar_stream():
        info = tarfile.TarInfo("data.bin")
        info.size = size
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        for _ in range(args.clone_mib):
            yield chunk
        yield b"\0" * (2 * tarfile.BLOCKSIZE)

    source = f"bench-src-{secrets.token_hex(4)}"
    made = requests.post(n1.url("/api/v1/volumes"), json={"name": source, "node": n1.name}, headers=f.auth("writer"))
    assert made.status_code == 201, made.text
    headers = {**f.auth("admin"), "Content-Type": "application/x-tar"}
    r = requests.put(n1.url(f"/api/v1/volumes/{source}/archive"), data=tar_stream(), headers=headers, timeout=600)
    assert r.status_code == 200, r.text
    before = {n.name: peak_rss_mib(n) for n in (n1, n2, n3)}
    times = []
    for i in range(args.clone_repeat):
        copy = f"{source}-copy{i}"
        body = {"name": copy, "node": n2.name}
        started = time.perf_counter()
        r = requests.post(n3.url(f"/api/v1/volumes/{source}/clone"), json=body, headers=f.auth("writer"), timeout=900)
        times.append(time.perf_counter() - started)
        assert r.status_code == 201 and r.json()["node"] == n2.name, r.text
        requests.delete(n3.url(f"/api/v1/volumes/{copy}?node={n2.name}"), headers=f.auth("admin"), timeout=60)
    after = {n.name: peak_rss_mib(n) for n in (n1, n2, n3)}

    def raw_copy() -> None:  # what dockvol's instances do, with no checks: engine to engine
        e1, e2 = n1.sdk(), n2.sdk()
        e2.volumes.create("bench-raw-copy")
        mounts = {source: {"bind": "/v", "mode": "ro"}}
        reader = e1.containers.create(IMAGE, ["true"], volumes=mounts, network_mode="none")
        writer = e2.containers.create(IMAGE, ["true"], volumes={"bench-raw-copy": {"bind": "/v"}}, network_mode="none")
        try:
            stream, _ = reader.get_archive("/v/.")
            assert writer.put_archive("/v", stream)
        finally:
            reader.remove()
            writer.remove()
            e2.volumes.get("bench-raw-copy").remove()

    raw = timed(raw_copy, args.clone_repeat)
    print(f"\ncross-node clone of {args.clone_mib} MiB (node 1 -> node 2, asked of node 3), {args.clone_repeat} runs")
    rows = [["copy", "median s", "MiB/s", "x engine"]]
    for label, t in (("dockvol: checked, spooled, made whole", times), ("engine to engine, unchecked", raw)):
        rows.append([label, f"{median(t):.2f}", f"{args.clone_mib / median(t):.0f}", f"{median(t) / median(raw):.2f}"])
    print(table(rows))
    print(
        "peak resident MiB of each node's dockvol processes, before -> after: "
        + ", ".join(f"{name} {before[name]:.0f} -> {after[name]:.0f}" for name in before)
    )
    requests.delete(n1.url(f"/api/v1/volumes/{source}"), headers=f.auth("admin"), timeout=60)


if __name__ == "__main__":
    main()
