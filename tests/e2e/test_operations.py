"""Running dockvol: metrics summed over workers, a JSON log line per request, graceful SIGTERM."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import time
import uuid

import requests

from tests.support import IMAGE, TEST_LABEL, engine_host, unique

from .conftest import READER, WRITER, service_env


def sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def access_pids(svc, path: str) -> set[int]:
    lines = [json.loads(line) for line in svc.log_path.read_text().splitlines() if line.startswith("{")]
    return {line["pid"] for line in lines if line.get("logger") == "dockvol.access" and line.get("path") == path}


def test_metrics_count_across_workers_and_each_request_logs_one_json_line(start_service):
    # sync workers (one thread: gunicorn turns a threaded sync worker into gthread) take one request
    # at a time, so concurrent requests are spread over both
    svc = start_service(
        service_env(engine_host(), DOCKVOL_WORKERS="2", DOCKVOL_WORKER_CLASS="sync", DOCKVOL_THREADS="1")
    )
    # On a busy machine the second worker may still be loading the app: wait until both answer.
    deadline = time.monotonic() + 30
    while len(access_pids(svc, "/healthz")) < 2:
        assert time.monotonic() < deadline, "the second worker never answered"
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: requests.get(svc.url("/healthz"), timeout=10), range(8)))
    ids = [f"ops-{uuid.uuid4().hex[:12]}" for _ in range(40)]
    listed = dict(method="GET", route="/api/v1/volumes", status="200")
    before = sample(requests.get(svc.url("/metrics"), timeout=30).text, "dockvol_http_requests_total", **listed)

    def call(request_id):
        # a fresh connection each time, so the kernel spreads them over both workers
        with requests.Session() as s:
            return s.get(
                svc.url("/api/v1/volumes?page_size=1"), headers={**READER, "X-Request-ID": request_id}, timeout=30
            )

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, ids))
    assert all(r.status_code == 200 for r in answers)
    text = requests.get(svc.url("/metrics"), timeout=30).text
    assert sample(text, "dockvol_http_requests_total", **listed) - before == 40

    lines = [json.loads(line) for line in svc.log_path.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "dockvol.access" and line.get("request_id") in ids]
    assert sorted(line["request_id"] for line in access) == sorted(ids)
    assert {line["status"] for line in access} == {200}
    assert len({line["pid"] for line in access}) == 2, "both workers served"


def test_sigterm_lets_a_request_in_flight_finish(start_service, sdk):
    svc = start_service(service_env(engine_host(), DOCKVOL_WORKERS="1"))
    name = unique("slow")
    assert (
        requests.post(
            svc.url("/api/v1/volumes"), json={"name": name, "labels": {TEST_LABEL: "e2e"}}, headers=WRITER, timeout=30
        ).status_code
        == 201
    )
    sdk.containers.run(
        IMAGE,
        ["sh", "-c", "dd if=/dev/urandom of=/v/blob bs=1048576 count=48 2>/dev/null"],
        remove=True,
        network_mode="none",
        volumes={name: {"bind": "/v", "mode": "rw"}},
    )
    r = requests.get(
        svc.url(f"/api/v1/volumes/{name}/archive"),
        headers={**READER, "Accept-Encoding": "identity"},
        stream=True,
        timeout=60,
    )
    received = len(r.raw.read(1 << 20))
    svc.proc.send_signal(signal.SIGTERM)  # while the download is under way
    while chunk := r.raw.read(1 << 20):
        received += len(chunk)
    r.close()
    assert received >= 48 << 20
    assert svc.proc.wait(timeout=60) == 0
