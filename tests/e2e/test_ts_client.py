"""dockvol through a second generated client: TypeScript, types made from the committed
openapi/openapi.json by openapi-typescript, calls made by openapi-fetch (tests/e2e/ts_client,
its packages pinned in package-lock.json). tsc checks the driver's every call against the
generated types, then node runs it against the service: create, list, read with the ETag, two
problem answers (a stale If-Match, a name taken), a delete with the ETag. Node and npm missing
is a failure, never a skip: they are installed here as the engine is (Debian's packages)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from tests.support import TEST_LABEL, unique

from .conftest import ROOT

CLIENT = ROOT / "tests" / "e2e" / "ts_client"
STAMP = CLIENT / "node_modules" / ".dockvol-lock-sha256"  # the package-lock.json npm ci installed
BUILT = CLIENT / "dist" / ".dockvol-inputs-sha256"  # the spec and sources dist/ was built from
SETUP_LOCK = CLIENT / ".setup.lock"  # the two engines' legs run side by side and share CLIENT


def digest(*paths: pathlib.Path) -> str:
    sha = hashlib.sha256()
    for path in paths:
        sha.update(path.read_bytes())
    return sha.hexdigest()


def run(*args: str, timeout: float = 600) -> str:
    proc = subprocess.run(args, cwd=CLIENT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    )
    return proc.stdout


@pytest.fixture(scope="module")
def ts_client() -> pathlib.Path:
    """node and npm (installed when missing), the locked packages (npm ci, once per lock), and
    the client's types generated from the committed spec, with the driver compiled against them."""
    if not (shutil.which("node") and shutil.which("npm")):
        installed = subprocess.run(
            ["bash", "-c", ". deploy/debian.sh && ensure_packages node=nodejs npm=npm"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if installed.returncode != 0 or not (shutil.which("node") and shutil.which("npm")):
            pytest.fail(f"node and npm are needed and could not be installed:\n{installed.stderr}", pytrace=False)
    with open(SETUP_LOCK, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # one leg installs and builds; the other waits, then reuses
        lock = digest(CLIENT / "package-lock.json")
        if not STAMP.exists() or STAMP.read_text() != lock:
            run("npm", "ci", "--no-audit", "--no-fund")
            STAMP.write_text(lock)
        inputs = digest(
            ROOT / "openapi" / "openapi.json",
            CLIENT / "drive.ts",
            CLIENT / "tsconfig.json",
            CLIENT / "package.json",
            CLIENT / "package-lock.json",
        )
        if not BUILT.exists() or BUILT.read_text() != inputs:
            for made in ("generated", "dist"):
                shutil.rmtree(CLIENT / made, ignore_errors=True)
            run("npm", "run", "-s", "generate")
            run("npm", "run", "-s", "build")
            BUILT.write_text(inputs)
    return CLIENT / "dist" / "drive.js"


def test_the_typescript_client_drives_dockvol(ts_client, service, sdk):
    name = unique("ts")
    env = {
        **os.environ,
        "DOCKVOL_URL": service.base,
        "DOCKVOL_TOKEN": "e2e-admin",
        "DOCKVOL_NAME": name,
        "DOCKVOL_LABEL": TEST_LABEL,
    }
    proc = subprocess.run(["node", str(ts_client)], cwd=CLIENT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = {s.pop("step"): s for s in map(json.loads, proc.stdout.splitlines())}

    assert steps["create"] == {
        "status": 201,
        "location": f"/api/v1/volumes/{name}",
        "name": name,
        "managed": True,
    }
    assert steps["list"]["status"] == 200 and steps["list"]["names"] == [name]
    assert json.loads(steps["list"]["pagination"])["total"] == 1
    read = steps["read"]
    assert (read["status"], read["name"], read["in_use"]) == (200, name, False)
    assert read["etag"].startswith('"') and read["etag"].endswith('"')

    for step, status in (("delete with a stale ETag", 412), ("create again", 409)):
        answer = steps[step]
        assert answer["status"] == status and answer["content_type"] == "application/problem+json", answer
        problem = answer["problem"]
        assert problem["status"] == status and problem["type"].startswith("urn:dockvol:problem:"), problem
        assert {"title", "detail", "request_id"} <= problem.keys(), problem
    assert steps["create again"]["problem"]["detail"] == f"volume {name} exists already"

    assert steps["delete"] == {"status": 204}
    assert steps["read after delete"]["status"] == 404 and steps["read after delete"]["problem"]["status"] == 404
    assert name not in {v.name for v in sdk.volumes.list()}
