"""dockvol's latency and throughput next to the raw engine's, in the same run.

For each scenario the raw side makes the same engine calls dockvol makes, directly with the
docker SDK, so the ratio is what dockvol adds (HTTP, auth, validation, JSON).

    DOCKVOL_TEST_DOCKER_HOST=unix:///... python tests/benchmarks/bench_api.py [--volumes 1000] [--containers 200]
(`make bench` runs it with the private engine.)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import threading
import time
import uuid

import docker
import requests
from common import AUTH, IMAGE, LABEL, Gunicorn, engine_host, median, p99, table, timed


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

    def populate(self) -> list[str]:
        print(f"populating: {self.args.volumes} volumes, {self.args.containers} containers using some of them")
        names = []
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            names = list(
                pool.map(
                    lambda i: self.api.create_volume(f"bench-{self.run}-{i:04d}", labels={LABEL: self.run})["Name"],
                    range(self.args.volumes),
                )
            )

            def container(i: int) -> None:
                host_config = self.api.create_host_config(
                    network_mode="none", binds={names[i * 3 % len(names)]: {"bind": "/d", "mode": "rw"}}
                )
                self.api.create_container(
                    IMAGE,
                    ["true"],
                    name=f"bench-{self.run}-c{i:03d}",
                    labels={LABEL: self.run},
                    host_config=host_config,
                )

            list(pool.map(container, range(self.args.containers)))
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

    def cleanup(self) -> None:
        for c in self.api.containers(all=True, filters={"label": self.label}):
            self.api.remove_container(c["Id"], force=True)
        for c in self.api.containers(all=True, filters={"name": f"bench-{self.run}"}):
            self.api.remove_container(c["Id"], force=True)
        for v in self.api.volumes(filters={"label": self.label}).get("Volumes") or []:
            self.api.remove_volume(v["Name"], force=True)
        self.service.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class: gthread or sync")
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
