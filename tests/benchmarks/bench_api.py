"""dockvol's latency and throughput next to the raw engine's, in the same run.

For each scenario the raw side makes the same engine calls dockvol makes, directly with the
docker SDK, so the ratio is what dockvol adds (HTTP, auth, validation, JSON).

    DOCKVOL_TEST_DOCKER_HOST=unix:///... python tests/benchmarks/bench_api.py [--volumes 1000] [--containers 200]
(`make bench` runs it with the private engine.)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import subprocess
import sys
import threading
import time
import uuid

import docker
import requests
from common import AUTH, IMAGE, LABEL, ROOT, Gunicorn, engine_host, median, p99, table, timed


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.host = engine_host()
        # Both sides' clients skip requests' per-call proxy lookup in the environment (about a
        # millisecond a call); dockvol's adapter does the same.
        self.api = docker.APIClient(base_url=self.host, version="auto", timeout=120)
        self.api.trust_env = False
        self.run = uuid.uuid4().hex[:8]
        self.label = f"{LABEL}={self.run}"
        self.service = Gunicorn(workers=args.workers, threads=args.threads, DOCKVOL_WORKER_CLASS=args.worker_class)
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers.update(AUTH)
        self.rows = [
            ["scenario", "dockvol median ms", "dockvol p99 ms", "engine median ms", "engine p99 ms", "ratio (medians)"]
        ]

    def row(self, name: str, ours: list[float], raw: list[float]) -> None:
        self.rows.append(
            [name, ms(median(ours)), ms(p99(ours)), ms(median(raw)), ms(p99(raw)), f"{median(ours) / median(raw):.2f}"]
        )

    def get(self, path: str) -> requests.Response:
        r = self.http.get(self.service.url(path), timeout=120)
        r.raise_for_status()
        return r

    def populate(self, volumes: int | None = None, containers: int | None = None, tag: str = "") -> list[str]:
        """Volumes and stopped containers using some of them, labelled for cleanup; the volumes' names."""
        volumes = self.args.volumes if volumes is None else volumes
        containers = self.args.containers if containers is None else containers
        print(f"populating: {volumes} volumes, {containers} containers using some of them")
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            names = list(
                pool.map(
                    lambda i: self.api.create_volume(f"bench-{self.run}-{tag}{i:05d}", labels={LABEL: self.run})[
                        "Name"
                    ],
                    range(volumes),
                )
            )

            def container(i: int) -> None:
                binds = {names[i * 3 % len(names)]: {"bind": "/d", "mode": "rw"}} if names else {}
                host_config = self.api.create_host_config(network_mode="none", binds=binds)
                self.api.create_container(
                    IMAGE,
                    ["true"],
                    name=f"bench-{self.run}-{tag}c{i:05d}",
                    labels={LABEL: self.run},
                    host_config=host_config,
                )

            list(pool.map(container, range(containers)))
        return names

    def list_scenarios(self, names: list[str]) -> None:
        n = self.args.repeat

        def raw_list():
            self.api.volumes()
            self.api.containers(all=True)

        self.get("/api/v1/volumes?page_size=1000")  # warm up both workers' clients
        self.row(
            f"GET /volumes, all {len(names)}+ (in_use, used_by)",
            timed(lambda: self.get("/api/v1/volumes?page_size=1000"), n),
            timed(raw_list, n),
        )
        self.row(
            "GET /volumes, one page of 50",
            timed(lambda: self.get("/api/v1/volumes?page_size=50"), n),
            timed(raw_list, n),
        )

        one = names[3]

        def raw_get():
            self.api.inspect_volume(one)
            self.api.containers(all=True, filters={"volume": one})

        self.row("GET /volumes/{name}", timed(lambda: self.get(f"/api/v1/volumes/{one}"), n * 3), timed(raw_get, n * 3))

    def create_delete_volume(self) -> None:
        n = self.args.repeat

        def ours():
            name = f"bench-{self.run}-cd-{uuid.uuid4().hex[:8]}"
            self.http.post(self.service.url("/api/v1/volumes"), json={"name": name}, timeout=60).raise_for_status()
            self.http.delete(self.service.url(f"/api/v1/volumes/{name}"), timeout=60).raise_for_status()

        def raw():
            name = f"bench-{self.run}-cd-{uuid.uuid4().hex[:8]}"
            self.api.create_volume(name, labels={"dockvol.managed": "true"})
            self.api.inspect_volume(name)
            self.api.containers(all=True, filters={"volume": name})
            self.api.remove_volume(name)

        self.row("create + delete a volume", timed(ours, n), timed(raw, n))

    def binding_lifecycle(self, named: str) -> None:
        n = max(3, self.args.repeat // 3)
        mounts = [
            {"type": "volume", "target": "/data"},
            {"type": "volume", "source": named, "target": "/srv"},
            {"type": "tmpfs", "target": "/tmp"},
        ]

        def ours():
            name = f"bench-{self.run}-b-{uuid.uuid4().hex[:8]}"
            body = {"name": name, "image": IMAGE, "command": ["sleep", "60"], "network": "none", "mounts": mounts}
            self.http.post(self.service.url("/api/v1/bindings"), json=body, timeout=60).raise_for_status()
            self.http.delete(
                self.service.url(f"/api/v1/bindings/{name}?remove_anonymous_volumes=true"), timeout=60
            ).raise_for_status()

        def raw():
            from docker.types import Mount

            name = f"bench-{self.run}-b-{uuid.uuid4().hex[:8]}"
            self.api.containers(all=True, filters={"name": f"^/{name}$"})
            self.api.inspect_image(IMAGE)
            self.api.inspect_volume(named)
            anon = self.api.create_volume(None, labels={"dockvol.managed": "true"})["Name"]
            host_config = self.api.create_host_config(
                network_mode="none",
                privileged=False,
                security_opt=["no-new-privileges"],
                pids_limit=512,
                mounts=[Mount("/data", anon), Mount("/srv", named), Mount("/tmp", None, type="tmpfs")],
            )
            cid = self.api.create_container(IMAGE, ["sleep", "60"], name=name, host_config=host_config)["Id"]
            self.api.start(cid)
            self.api.containers(all=True, filters={"name": f"^/{name}$"})
            self.api.containers(all=True, filters={"name": f"^/{name}$"})
            self.api.volumes(filters={"label": ["dockvol.managed=true"]})
            self.api.remove_container(cid, force=True)
            self.api.remove_volume(anon)

        self.row("create, start, delete a binding (3 mounts)", timed(ours, n), timed(raw, n))

    def concurrent(self, one: str) -> None:
        clients, seconds = self.args.clients, self.args.seconds

        def hammer(call) -> tuple[int, list[float]]:
            stop = time.monotonic() + seconds
            latencies: list[float] = []
            lock = threading.Lock()

            def worker():
                local = []
                work = call()
                while time.monotonic() < stop:
                    started = time.perf_counter()
                    work()
                    local.append(time.perf_counter() - started)
                with lock:
                    latencies.extend(local)

            threads = [threading.Thread(target=worker) for _ in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return len(latencies), latencies

        def ours_client():
            session = requests.Session()
            session.trust_env = False
            session.headers.update(AUTH)
            url = self.service.url(f"/api/v1/volumes/{one}")
            return lambda: session.get(url, timeout=60).raise_for_status()

        def raw_client():
            api = docker.APIClient(base_url=self.host, version=self.api.api_version, timeout=60)
            api.trust_env = False
            return lambda: (api.inspect_volume(one), api.containers(all=True, filters={"volume": one}))

        ours_n, ours_lat = hammer(ours_client)
        raw_n, raw_lat = hammer(raw_client)
        self.rows.append(
            [
                f"{clients} clients x {seconds}s GET /volumes/{{name}}: requests/s",
                f"{ours_n / seconds:.0f} req/s",
                ms(p99(ours_lat)),
                f"{raw_n / seconds:.0f} req/s",
                ms(p99(raw_lat)),
                f"{ours_n / raw_n:.2f} (throughput)",
            ]
        )

    def watchers(self) -> None:
        """The time from a create being sent to each of `watchers` SSE clients reading its event,
        next to the same for subscribers of the engine's own event stream."""
        count, n = self.args.watchers, self.args.repeat

        def listen(open_stream, name_of, arrived: dict[str, list[float]], ready: threading.Barrier) -> None:
            lines = open_stream()
            ready.wait()
            for item in lines:
                name = name_of(item)
                if name:
                    arrived.setdefault(name, []).append(time.perf_counter())
                    if name.endswith("-last"):
                        return

        def run(open_stream, name_of, create) -> list[float]:
            arrived: dict[str, list[float]] = {}
            ready = threading.Barrier(count + 1)
            threads = [
                threading.Thread(target=listen, args=(open_stream, name_of, arrived, ready), daemon=True)
                for _ in range(count)
            ]
            for t in threads:
                t.start()
            ready.wait()
            time.sleep(0.5)
            sent = {}
            for i in range(n + 1):
                name = f"bench-{self.run}-w-{uuid.uuid4().hex[:8]}" + ("-last" if i == n else "")
                sent[name] = time.perf_counter()
                create(name)
                time.sleep(0.05)
            for t in threads:
                t.join(30)
            return [at - sent[name] for name, ats in arrived.items() if name in sent for at in ats]

        def ours_stream():
            r = requests.get(self.service.url("/api/v1/events?resource=volume"), headers=AUTH, stream=True, timeout=60)
            return r.iter_lines()

        def ours_name(line: bytes) -> str | None:
            if line.startswith(b"data:"):
                data = json.loads(line[5:])
                if data.get("name", "").startswith(f"bench-{self.run}-w-"):
                    return data["name"]
            return None

        def raw_stream():
            api = docker.APIClient(base_url=self.host, version=self.api.api_version, timeout=60)
            return api.events(filters={"type": "volume", "event": "create"}, decode=True)

        def raw_name(event: dict) -> str | None:
            name = event.get("Actor", {}).get("ID", "")
            return name if name.startswith(f"bench-{self.run}-w-") else None

        ours = run(
            ours_stream,
            ours_name,
            lambda name: self.http.post(
                self.service.url("/api/v1/volumes"), json={"name": name, "labels": {LABEL: self.run}}, timeout=60
            ).raise_for_status(),
        )
        raw = run(raw_stream, raw_name, lambda name: self.api.create_volume(name, labels={LABEL: self.run}))
        self.rows.append(
            [
                f"a create reaches {count} watchers (time from sending it)",
                ms(median(ours)),
                ms(p99(ours)),
                ms(median(raw)),
                ms(p99(raw)),
                f"{median(ours) / median(raw):.2f}; {len(ours)}/{count * (n + 1)} read",
            ]
        )

    def view_memory(self) -> None:
        """What a view of --view-volumes volumes and --view-containers containers adds to a process
        that already runs dockvol's engine adapter (a worker), read from /proc."""
        volumes, containers = self.args.view_volumes, self.args.view_containers
        have_v = len(self.api.volumes(filters={"label": self.label}).get("Volumes") or [])
        have_c = len(self.api.containers(all=True, filters={"label": self.label}))
        self.populate(max(0, volumes - have_v), max(0, containers - have_c), tag="m")
        out = subprocess.run(
            [sys.executable, "-c", VIEW_MEMORY, self.host], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
        grown, seconds, seen_v, seen_c = float(out[0]), float(out[1]), int(out[2]), int(out[3])
        self.rows.append(
            [
                f"view of {seen_v} volumes + {seen_c} containers: memory added",
                f"{grown:.1f} MiB",
                f"primed in {seconds * 1000:.0f} ms",
                "-",
                "-",
                "target: at most 64 MiB",
            ]
        )

    def cleanup(self) -> None:
        for c in self.api.containers(all=True, filters={"label": self.label}):
            self.api.remove_container(c["Id"], force=True)
        for c in self.api.containers(all=True, filters={"name": f"bench-{self.run}"}):
            self.api.remove_container(c["Id"], force=True)
        for v in self.api.volumes(filters={"label": self.label}).get("Volumes") or []:
            self.api.remove_volume(v["Name"], force=True)
        self.service.stop()


# Run in a process of its own: the engine adapter loaded first (a worker has it), then the view primed.
VIEW_MEMORY = """
import gc, os, sys, time
from service.engine.docker_engine import DockerEngine
from service.engine.viewed import View
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
engine = DockerEngine(sys.argv[1], 120)
engine.list_volumes(); engine.list_containers()  # the adapter's own buffers, which a worker has anyway
gc.collect(); before = rss(); started = time.perf_counter()
view = View(engine); view.prime(); took = time.perf_counter() - started
gc.collect(); stats = view.stats()
print((rss() - before) / 2**20, took, int(stats["volumes"]), int(stats["containers"]))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--worker-class", default="gevent", help="gunicorn worker class: gevent, gthread or sync")
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--view-volumes", type=int, default=10_000, help="0 skips the view's memory")
    parser.add_argument("--view-containers", type=int, default=2_000)
    parser.add_argument("--only-concurrent", action="store_true", help="just the concurrent-clients scenario")
    args = parser.parse_args()
    bench = Bench(args)
    try:
        names = bench.populate()
        if not args.only_concurrent:
            bench.list_scenarios(names)
            bench.create_delete_volume()
            bench.binding_lifecycle(names[0])
        bench.concurrent(names[3])
        if not args.only_concurrent:
            bench.watchers()
            if args.view_volumes:
                bench.view_memory()
    finally:
        bench.cleanup()
    version = bench.api.version()
    threads = f" x {args.threads} threads" if args.worker_class == "gthread" else ""
    print(
        f"\nengine {version['Version']} (API {bench.api.api_version}); gunicorn {args.workers} {args.worker_class} "
        f"workers{threads}; {args.repeat} runs a scenario"
    )
    print(table(bench.rows))


if __name__ == "__main__":
    main()
