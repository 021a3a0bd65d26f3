"""Export and import of a large volume: dockvol over HTTP against `docker cp` through the same
engine, in the same run, plus the gunicorn worker's peak memory growth.

    DOCKVOL_TEST_DOCKER_HOST=unix:///... python tests/benchmarks/bench_volume_data.py [--mib 1024] [--repeat 3]
(`make bench` runs it with the private engine.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import uuid

import docker
import requests
from common import AUTH, IMAGE, LABEL, Gunicorn, PeakRss, engine_host, median, table, timed

PART_MIB = 128


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024, help="volume size in MiB (default 1024)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    host = engine_host()
    sdk = docker.DockerClient(base_url=host, version="auto", timeout=600)
    docker_cli = ["docker", "-H", host]
    run = uuid.uuid4().hex[:8]
    source, target = f"bench-src-{run}", f"bench-dst-{run}"
    service = Gunicorn(workers=1)
    holders = []
    spool = tempfile.NamedTemporaryFile(suffix=".tar", delete=False)
    try:
        for name in (source, target):
            r = requests.post(
                service.url("/api/v1/volumes"), json={"name": name, "labels": {LABEL: run}}, headers=AUTH, timeout=30
            )
            r.raise_for_status()
        parts = max(1, args.mib // PART_MIB)
        fill = " && ".join(
            f"dd if=/dev/urandom of=/v/part{i} bs=1048576 count={PART_MIB} 2>/dev/null" for i in range(parts)
        )
        sdk.containers.run(
            IMAGE, ["sh", "-c", fill], remove=True, network_mode="none", volumes={source: {"bind": "/v", "mode": "rw"}}
        )
        size = parts * PART_MIB * 1024 * 1024
        for name in (source, target):
            holder = sdk.containers.create(
                IMAGE, ["true"], network_mode="none", volumes={name: {"bind": "/v", "mode": "rw"}}, labels={LABEL: run}
            )
            holders.append(holder)
        worker = service.workers()[0]
        export_url = service.url(f"/api/v1/volumes/{source}/archive")
        import_url = service.url(f"/api/v1/volumes/{target}/archive")
        auth = ["-H", f"Authorization: {AUTH['Authorization']}"]

        subprocess.run([*docker_cli, "cp", f"{holders[0].id}:/v/.", "-"], stdout=spool, check=True)
        spool.close()
        sh = lambda cmd, **kw: subprocess.run(cmd, check=True, **kw)  # noqa: E731

        raw_export = timed(
            lambda: sh([*docker_cli, "cp", f"{holders[0].id}:/v/.", "-"], stdout=subprocess.DEVNULL), args.repeat
        )
        with PeakRss(worker) as export_memory:
            ours_export = timed(
                lambda: sh(["curl", "-sf", "-o", "/dev/null", "-H", "Accept-Encoding: identity", *auth, export_url]),
                args.repeat,
            )

        def raw_put():
            with open(spool.name, "rb") as f:
                sh([*docker_cli, "cp", "-", f"{holders[1].id}:/v"], stdin=f)

        raw_import = timed(raw_put, args.repeat)
        with PeakRss(worker) as import_memory:
            ours_import = timed(
                lambda: sh(
                    [
                        "curl",
                        "-sf",
                        "-o",
                        "/dev/null",
                        "-X",
                        "PUT",
                        "-T",
                        spool.name,
                        "-H",
                        "Content-Type: application/x-tar",
                        *auth,
                        import_url,
                    ]
                ),
                args.repeat,
            )

        usage_url = service.url(f"/api/v1/volumes/{source}/usage")
        ours_usage = timed(lambda: requests.get(usage_url, headers=AUTH, timeout=600).raise_for_status(), args.repeat)
        raw_df = timed(lambda: sdk.api.df(), args.repeat)

        mib = size / 2**20
        rows = [
            [
                "operation",
                "docker cp (median s)",
                "docker cp MiB/s",
                "dockvol (median s)",
                "dockvol MiB/s",
                "dockvol / docker cp throughput",
                "worker peak RSS growth MiB",
            ]
        ]
        for label, raw, ours, memory in (
            ("export", raw_export, ours_export, export_memory),
            ("import", raw_import, ours_import, import_memory),
        ):
            rows.append(
                [
                    label,
                    f"{median(raw):.2f}",
                    f"{mib / median(raw):.0f}",
                    f"{median(ours):.2f}",
                    f"{mib / median(ours):.0f}",
                    f"{median(raw) / median(ours):.2f}",
                    f"{memory.growth / 2**20:.1f}",
                ]
            )
        print(
            f"\nvolume data: {mib:.0f} MiB in {parts} files, {args.repeat} runs each, engine {sdk.version()['Version']}"
        )
        print(table(rows))
        volumes = len(sdk.volumes.list())
        print(
            table(
                [
                    ["usage of that volume", "median s"],
                    ["dockvol GET /usage (helper, tar headers walked)", f"{median(ours_usage):.2f}"],
                    [
                        f"engine system df (sizes every one of {volumes} volumes, no file count)",
                        f"{median(raw_df):.2f}",
                    ],
                ]
            )
        )
    finally:
        for holder in holders:
            holder.remove(force=True)
        service.stop()
        for name in (source, target):
            try:
                sdk.volumes.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass
        os.unlink(spool.name)


if __name__ == "__main__":
    main()
