"""Fleet tier: a three-node Swarm of private engines (tests/fleet/lab.sh), dockvol's image loaded on
every node and deployed with deploy/swarm-stack.yml, driven over HTTP from the host (each node's
instance on port 8080 of its address on the lab's bridge). `make test` names the engine."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import secrets
import subprocess
import time
from dataclasses import dataclass

import docker
import pytest
import requests

from tests.support import engine_host

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAB = ROOT / "tests" / "fleet" / "lab.sh"
IMAGE = "dockvol:fleet-test"
STACK = "dockvol"
SERVICE = f"{STACK}_dockvol"
TIMEOUT = 3  # DOCKVOL_ENGINE_TIMEOUT of the fleet: how long a silent node may hold a list
TOKENS = {"admin": ["admin"], "writer": ["write"], "reader": ["read"]}
# Two projects' tokens (test_fleet_projects.py): `fa` has room for QUOTA volumes, `fb` no quota.
PROJECT_TOKENS = {"fa": ["write"], "fb": ["write"]}
QUOTA = 5
PROJECTS = {"fa": {"quota": {"volumes": QUOTA}}, "fb": {}}


@dataclass(frozen=True)
class Node:
    name: str
    address: str
    host: str  # its engine, for the tests' own checks

    def url(self, path: str) -> str:
        return f"http://{self.address}:8080{path}"

    def sdk(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, timeout=30)


@dataclass
class Fleet:
    engine: str
    nodes: list[Node]
    tokens: dict[str, str]  # scope -> token
    bind_root: pathlib.Path

    def auth(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"}

    def lab(self, *args: str) -> str:
        done = subprocess.run([str(LAB), args[0], self.engine, *args[1:]], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"lab.sh {' '.join(args)}: {done.stderr[-2000:]}"
        return done.stdout

    def manager(self) -> docker.DockerClient:
        return self.nodes[0].sdk()

    def wait_ready(self, within: float = 90.0) -> None:
        """Every node's instance answers, and sees every other's."""
        deadline, last = time.monotonic() + within, None
        while time.monotonic() < deadline:
            try:
                shown = [
                    requests.get(n.url("/api/v1/nodes"), headers=self.auth("reader"), timeout=5) for n in self.nodes
                ]
                last = [r.status_code for r in shown]
                if all(
                    r.status_code == 200 and [m["dockvol"] for m in r.json()] == ["up"] * len(self.nodes) for r in shown
                ):
                    return
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(1)
        raise AssertionError(f"the fleet did not come up within {within} s: {last}")


def _lab_names(engine: str) -> tuple[str, str]:
    """This run's lab: a tag and a /24 derived from the private engine's folder (one per person and
    engine), so that two fleet runs on one machine (two checkouts, or both engines' legs) never
    share netns, bridge, state or subnet, and a killed run's lab is the next run's to take down.
    The subnet is the first from the folder's hash on that no other bridge holds."""
    folder = os.environ.get("DOCKVOL_ENGINE_DIR") or f"/tmp/dockvol-engine-{engine}"
    digest = int(hashlib.sha256(folder.encode()).hexdigest(), 16)
    tag = f"f{digest % 16**6:06x}"
    held = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    found = re.finditer(r"^\d+: (\S+)\s+inet (10\.213\.\d+)\.1/", held, re.M)
    taken = {m.group(2) for m in found if m.group(1) != f"{tag}br"}
    for k in range(200):
        net = f"10.213.{16 + (digest + k) % 200}"  # 10.213.1-3: the fixed labs (older runs, make bench)
        if net not in taken:
            return tag, net
    raise AssertionError("no free 10.213.X.0/24 for a fleet lab")


def _lines(text: str) -> list[Node]:
    return [Node(*line.split()) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def fleet(tmp_path_factory):
    engine = os.environ.get("DOCKVOL_TEST_ENGINE")
    if not engine:
        pytest.fail("DOCKVOL_TEST_ENGINE is not set: run the fleet tier through `make test`", pytrace=False)
    work = tmp_path_factory.mktemp("fleet")
    tokens = {scope: secrets.token_urlsafe(18) for scope in [*TOKENS, *PROJECT_TOKENS]}
    tag, net = _lab_names(engine)
    os.environ["LAB_TAG"], os.environ["LAB_NET"] = tag, net  # lab.sh's, for every call of this run
    bind_root = pathlib.Path(f"/tmp/dockvol-lab-{engine}-{tag}-binds")
    bind_root.mkdir(mode=0o755, exist_ok=True)
    f = Fleet(engine, [], tokens, bind_root)
    subprocess.run([str(LAB), "down", engine], capture_output=True, timeout=300)  # a killed run's lab
    try:
        f.nodes = _lines(f.lab("up"))
        _deploy(f, work)
        f.wait_ready()
        yield f
    finally:
        subprocess.run([str(LAB), "down", engine], capture_output=True, timeout=300)
        subprocess.run(["rm", "-rf", str(bind_root)], check=False)


def _deploy(f: Fleet, work: pathlib.Path, build: bool = True) -> None:
    # The image is built on the tier's private engine (deploy/build-image.sh, cached from the
    # smoke test's build) and loaded on every node: one id everywhere, so no node tries to pull it.
    host = engine_host()
    if build:
        subprocess.run([str(ROOT / "deploy" / "build-image.sh"), host, IMAGE], check=True, timeout=900)
    for node in f.nodes:
        pipe = 'docker -H "$1" save "$3" | docker -H "$2" load -q'
        subprocess.run(
            ["bash", "-o", "pipefail", "-c", pipe, "-", host, node.host, IMAGE], check=True, capture_output=True
        )
    hashed = [
        {
            "name": f"fleet-{scope}",
            "sha256": hashlib.sha256(f.tokens[scope].encode()).hexdigest(),
            "scopes": scopes,
            "project": "*",  # the operator's: the fleet tier sees what dockvol did not make too
        }
        for scope, scopes in TOKENS.items()
    ] + [
        {
            "name": f"fleet-{project}",
            "sha256": hashlib.sha256(f.tokens[project].encode()).hexdigest(),
            "scopes": scopes,
            "project": project,
        }
        for project, scopes in PROJECT_TOKENS.items()
    ]
    (work / "tokens.json").write_text(json.dumps(hashed))
    (work / "fleet.secret").write_text(secrets.token_urlsafe(32))
    manager = f.nodes[0].host
    for secret, path in (("dockvol_tokens", "tokens.json"), ("dockvol_fleet", "fleet.secret")):
        subprocess.run(
            ["docker", "-H", manager, "secret", "create", secret, str(work / path)], check=True, capture_output=True
        )
    env = {
        **os.environ,
        "DOCKVOL_IMAGE": IMAGE,
        "DOCKVOL_BIND_ROOT": str(f.bind_root),
        "DOCKVOL_DEFAULT_NETWORK": "none",
        "DOCKVOL_ALLOWED_NETWORKS": '["none"]',
        "DOCKVOL_ENGINE_TIMEOUT": str(TIMEOUT),
        "DOCKVOL_PROJECTS": json.dumps(PROJECTS),
    }
    subprocess.run(
        [
            "docker",
            "-H",
            manager,
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            "-c",
            str(ROOT / "deploy" / "swarm-stack.yml"),
            STACK,
        ],
        check=True,
        capture_output=True,
        env=env,
    )
