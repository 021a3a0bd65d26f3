"""Schemathesis against the live service: every check, including auth, negative data and the
stateful (links) phase, bounded in examples. It must end with no server error and no
conformance failure. What it creates is removed afterwards.

DOCKVOL_FUZZ_SEED picks the seed (default fixed, so CI is reproducible); DOCKVOL_FUZZ_EXAMPLES
the examples per operation (default: tests/e2e/schemathesis.toml); DOCKVOL_FUZZ_CONFIG another
configuration file (say, one without the allowances, to count the schema-valid requests refused).

The fuzzed service's restic has no network (a wrapper first on its PATH runs it in a network
namespace of its own): a repository's S3 endpoint is whatever the fuzzer makes up, the spec's
example included, and no test sends a request to an address it did not make. A local repository
works as ever."""

from __future__ import annotations

import collections
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from tests.support import engine_host

from .conftest import service_env

HERE = pathlib.Path(__file__).resolve().parent


def summary(ndjson: pathlib.Path) -> tuple[int, dict[str, collections.Counter]]:
    """Requests sent, and each check's results by status, from schemathesis' event stream."""
    requests, checks = 0, collections.defaultdict(collections.Counter)
    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        if "ScenarioFinished" in event:
            recorder = event["ScenarioFinished"]["recorder"]
            requests += len(recorder.get("interactions", {}))
            for results in recorder.get("checks", {}).values():
                for result in results:
                    checks[result["name"]][result["status"]] += 1
    return requests, checks


def restic_without_network(folder: pathlib.Path) -> str:
    """A folder to put first on PATH, whose `restic` runs the real one with no network at all."""
    real = shutil.which("restic")
    assert real, "restic is not installed"
    folder.mkdir()
    (folder / "restic").write_text(f'#!/bin/sh\nexec unshare --net -- {real} "$@"\n')
    (folder / "restic").chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


@pytest.mark.timeout(900)  # CPU-bound (hypothesis): on two loaded cores it has taken over 300 s
def test_schemathesis_finds_no_server_error_and_no_nonconformance(start_service, sdk, bind_root, tmp_path):
    env = service_env(engine_host(), DOCKVOL_BIND_ROOTS=json.dumps([str(bind_root)]))
    svc = start_service({**env, "PATH": restic_without_network(tmp_path / "bin")})
    containers_before = {c.id for c in sdk.containers.list(all=True)}
    volumes_before = {v.name for v in sdk.volumes.list()}
    report = tmp_path / "events.ndjson"
    command = [
        str(pathlib.Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        os.environ.get("DOCKVOL_FUZZ_CONFIG", str(HERE / "schemathesis.toml")),
        "run",
        svc.url("/api/openapi.json"),
        "--checks",
        "all",
        "-H",
        "Authorization: Bearer e2e-admin",
        "--seed",
        os.environ.get("DOCKVOL_FUZZ_SEED", "20261128"),
        "--report-ndjson-path",
        str(report),
        # The watch stream never ends by design (tests/e2e/test_watch.py and tests/unit/test_events.py drive it).
        "--exclude-operation-id",
        "watchEvents",
    ]
    if "DOCKVOL_FUZZ_EXAMPLES" in os.environ:
        command += ["--max-examples", os.environ["DOCKVOL_FUZZ_EXAMPLES"]]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=HERE)
    finally:
        for c in sdk.containers.list(all=True):
            if c.id not in containers_before:
                c.remove(force=True)
        for v in sdk.volumes.list():
            if v.name not in volumes_before:
                v.remove(force=True)
    requests, checks = summary(report)
    print(f"\nschemathesis sent {requests} requests; checks run, by result:")
    for name, results in sorted(checks.items()):
        print(f"  {name}: " + ", ".join(f"{n} {status}" for status, n in sorted(results.items())))
    assert run.returncode == 0, run.stdout[-6000:]
    assert requests > 500
    assert all(set(results) == {"success"} for results in checks.values()), checks
