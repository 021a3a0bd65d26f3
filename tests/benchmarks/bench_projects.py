"""Is another project's object distinguishable from a missing one by time? (DESIGN.md section 11:
another project's object answers 404 exactly as a missing one; the tests check the bytes, this
measures the time.)

A token of project `a` asks, in random interleaved order, for a volume of project `b` and for a
name that exists nowhere: GET, DELETE, an export, a rename and a clone of each. Both answer 404
(checked on every call); the script prints the median and p90 of each and the ratio of the
medians. Within noise means a ratio near 1.00 and medians within the spread of either side.

    DOCKVOL_TEST_DOCKER_HOST=unix:///... python tests/benchmarks/bench_projects.py [--repeat 300]
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid

import docker
import requests
from common import LABEL, Gunicorn, engine_host, median, table

PROJECT_TOKENS = {"bench-a": {"scopes": ["admin"], "project": "a"}, "bench-b": {"scopes": ["admin"], "project": "b"}}


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(round(0.9 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    service = Gunicorn(
        DOCKVOL_TOKENS=json.dumps(PROJECT_TOKENS),
        DOCKVOL_PROJECTS=json.dumps({"a": {}, "b": {}}),
    )
    sdk = docker.DockerClient(base_url=engine_host(), version="auto")
    http = requests.Session()
    http.trust_env = False
    theirs, missing = f"bench-{run}-theirs", f"bench-{run}-missing"
    try:
        made = http.post(
            service.url("/api/v1/volumes"),
            json={"name": theirs, "labels": {LABEL: run}},
            headers={"Authorization": "Bearer bench-b"},
            timeout=60,
        )
        made.raise_for_status()
        as_a = {"Authorization": "Bearer bench-a"}
        calls = {
            "GET /volumes/{name}": lambda n: http.get(service.url(f"/api/v1/volumes/{n}"), headers=as_a, timeout=60),
            "DELETE /volumes/{name}": lambda n: http.delete(
                service.url(f"/api/v1/volumes/{n}"), headers=as_a, timeout=60
            ),
            "GET /volumes/{name}/export": lambda n: http.get(
                service.url(f"/api/v1/volumes/{n}/export"), headers=as_a, timeout=60
            ),
            "POST /volumes/{name}/rename": lambda n: http.post(
                service.url(f"/api/v1/volumes/{n}/rename"), json={"name": f"{n}-2"}, headers=as_a, timeout=60
            ),
            "POST /volumes/{name}/clone": lambda n: http.post(
                service.url(f"/api/v1/volumes/{n}/clone"), json={"name": f"{n}-c"}, headers=as_a, timeout=60
            ),
        }
        rows = [["a's token asks for", "b's volume median ms", "p90", "missing median ms", "p90", "ratio"]]
        for label, call in calls.items():
            times: dict[str, list[float]] = {theirs: [], missing: []}
            bodies: dict[str, set[str]] = {theirs: set(), missing: set()}
            for _ in range(5):  # warm both paths
                call(theirs), call(missing)
            order = [theirs, missing] * args.repeat
            random.shuffle(order)
            for name in order:
                started = time.perf_counter()
                answer = call(name)
                times[name].append(time.perf_counter() - started)
                assert answer.status_code == 404, (label, name, answer.status_code, answer.text)
                body = answer.json()
                body.pop("request_id", None)  # each answer's own
                bodies[name].add(json.dumps(body, sort_keys=True).replace(name, "NAME"))
            assert len(bodies[theirs]) == 1 and bodies[theirs] == bodies[missing], (label, bodies)  # but name, id
            a, b = times[theirs], times[missing]
            rows.append(
                [
                    label,
                    f"{median(a) * 1000:.2f}",
                    f"{p90(a) * 1000:.2f}",
                    f"{median(b) * 1000:.2f}",
                    f"{p90(b) * 1000:.2f}",
                    f"{median(a) / median(b):.2f}",
                ]
            )
        print(f"existence oracle: {args.repeat} calls of each kind, interleaved at random")
        print(table(rows))
    finally:
        for v in sdk.volumes.list(filters={"label": f"{LABEL}={run}"}):
            v.remove(force=True)
        service.stop()


if __name__ == "__main__":
    main()
