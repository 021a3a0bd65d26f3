"""The two-project matrix: every operation in openapi/openapi.json (a new one is covered by
default), called with project a's token on another project's objects, answers byte for byte as
it does where those objects do not exist, and changes nothing (the engine's state before and
after is the same). Creates are held against a's own name clash instead: a 409 that says no more
than a's own. Cases: b's objects (made through the API with b's token), and objects dockvol did
not make (seen by `*` only)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from service.app import create_app
from service.config import ProjectConfig, Settings
from service.domain.backups.policies import Policy
from service.domain.backups.schedule import Schedule
from service.domain.backups.state import StateDir
from service.engine.port import ContainerSpec, MountSpec
from tests.contract.engine_contract import make_tar
from tests.fakes.memory import InMemoryEngine

from .conftest import bearer
from .engine_state import snapshot

SPEC = json.loads((Path(__file__).parents[2] / "openapi" / "openapi.json").read_text())
TOKENS = {
    "a": {"scopes": ["admin"], "project": "a"},
    "b": {"scopes": ["admin"], "project": "b"},
}
# The name each kind of item route is asked for: the other project's object of that kind.
THEIRS = {
    "/api/v1/volumes/": "vb",
    "/api/v1/bindings/": "bb",
    "/api/v1/sharing-groups/": "gb",
    "/api/v1/projects/": "b",
    "/api/v1/repositories/": "rb",
    "/api/v1/backups/": "run-0a1b2c3d4e5f6a7b",  # the id the examples name
    "/api/v1/restores/": "rsb",
    "/api/v1/backup-policies/": "pb",
}
NOT_HERE = {"watchEvents": "a stream that does not end: test_projects_api.py checks what each watcher hears"}
# Operations with nothing to meet in the "not dockvol's" case: a repository exists only as dockvol's
# record, so a name is a project's or free (the other case holds the create against a's own clash).
NOT_FOREIGN = {
    "createRepository": "repositories are dockvol's records: none is another tool's",
    "createBackupPolicy": "backup policies are dockvol's records: none is another tool's",
}
REQUEST_ID = {"X-Request-ID": "matrix"}
TAR = make_tar([("f", "file", b"mine", 0o644)])


def operations() -> list[tuple[str, str, str, dict]]:
    return [
        (op["operationId"], method.upper(), path, op)
        for path, item in SPEC["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "delete") and op["operationId"] not in NOT_HERE
    ]


def test_every_operation_left_out_of_the_matrix_exists_and_says_where_it_is_tested():
    """NOT_HERE names real operations only (a renamed one would drop out of the matrix unseen)."""
    ids = {op["operationId"] for item in SPEC["paths"].values() for op in item.values() if isinstance(op, dict)}
    assert set(NOT_HERE) | set(NOT_FOREIGN) <= ids
    assert all("test_" in where for where in NOT_HERE.values())


class World:
    """One app over its own fake engine, with the bind roots of both projects."""

    def __init__(self, root: Path) -> None:
        for project in ("a", "b"):
            (root / project).mkdir(parents=True, exist_ok=True)
        projects = {p: ProjectConfig({}, (str(root / p),)) for p in ("a", "b")}
        settings = Settings(
            tokens=TOKENS,
            bind_roots=(str(root),),
            projects=projects,
            docker_host="unix:///x.sock",
            state_dir=str(root.parent / f"{root.name}-state"),  # outside what the matrix compares
        )
        self.root = root
        self.state = StateDir(settings.state_dir)
        self.engine = InMemoryEngine()
        self.client = create_app(settings, engine=self.engine).test_client()

    def make(self, token: str) -> World:
        """The objects the matrix asks for, made through the API by `token`'s project."""
        as_ = {**bearer(token), "Content-Type": "application/json"}
        for path, body in [
            ("/api/v1/volumes", {"name": "vb"}),
            ("/api/v1/sharing-groups", {"name": "gb"}),
            ("/api/v1/bindings", binding("bb", "vb", self.root / token / "site")),
        ]:
            made = self.client.post(path, data=json.dumps(body), headers=as_)
            assert made.status_code == 201, made.json
        assert self.client.put("/api/v1/volumes/vb/archive", data=TAR, headers={**bearer(token)}).status_code == 200
        self.records(token)
        return self

    def records(self, project: str) -> None:
        """A repository, a failed backup run and a restore of the project, as dockvol records them
        in its state dir (restic itself is left out: its key derivation costs a second a call)."""
        at, run = "2026-01-01T00:00:00Z", THEIRS["/api/v1/backups/"]
        common = {"project": project, "status": "failed", "started_at": at}
        path = str(self.root / "rb")
        self.state.write(
            "repositories", "rb", {"name": "rb", "project": project, "kind": "local", "path": path, "created_at": at}
        )
        self.state.write("backups", run, {**common, "id": run, "volume": "vb", "repository": "rb", "error": "cut"})
        self.state.write("restores", "rsb", {**common, "id": "rsb", "backup": run, "volume": "vr"})
        policy = Policy("pb", "rb", Schedule("0 3 * * *"), project, ("vb",), created_at=at, updated_at=at, version="1")
        self.state.write("backup-policies", "pb", policy.record())

    def foreign(self) -> World:
        """The same names, made on the engine directly: not dockvol's."""
        self.engine.create_volume("vb", "local", {}, {})
        for name, mounts in [("bb", (MountSpec("volume", "/d", "vb"),)), ("gb", ())]:
            self.engine.create_container(ContainerSpec(name, "busybox:stable", mounts=mounts, network="none"))
        return self

    def call(self, method: str, path: str, op: dict, name: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
        url = re.sub(r"\{[a-z_]+\}", name, path) if name else path
        headers = {**bearer("a"), **REQUEST_ID}
        body: bytes | None = None
        content = op.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            example = content["application/json"].get("example", {})
            if "{" not in path and "name" in example:  # a create, valid for a's caller, of b's name
                example = CREATES.get(path, {**example, "name": THEIRS[path + "/"]})
            elif method == "PUT" and "name" in example:  # a replace names what it replaces
                example = {**example, "name": name}
            body, headers["Content-Type"] = json.dumps(example).encode(), "application/json"
        elif content:
            body, headers["Content-Type"] = TAR, "application/x-tar"
        answer = self.client.open(url, method=method, data=body, headers=headers)
        return answer.status_code, sorted(answer.headers.items()), answer.get_data()


MEASURED_AT = re.compile(rb'"bytes_measured_at":"[^"]*"')


def untimed(answer: tuple[int, list, bytes]) -> tuple[int, list, bytes]:
    """An answer with the time of its bytes' measurement left out: each world measures its own
    engine when asked, and two asks may fall in two seconds (the length is the same either way)."""
    return answer[0], answer[1], MEASURED_AT.sub(b'"bytes_measured_at":"T"', answer[2])


def binding(name: str, volume: str, source: Path) -> dict:
    return {
        "name": name,
        "image": "busybox:stable",
        "command": ["sleep", "3600"],
        "network": "none",
        "mounts": [
            {"type": "volume", "source": volume, "target": "/data"},
            {"type": "bind", "source": str(source), "target": "/www"},
        ],
    }


CREATES = {
    "/api/v1/bindings": {"name": "bb", "image": "busybox:stable", "command": ["sleep", "9"], "network": "none"},
    "/api/v1/sharing-groups": {"name": "gb"},
}
CASES = {"other project's": lambda w: w.make("b"), "not dockvol's": lambda w: w.foreign()}


MATRIX = [
    pytest.param(case, *o, id=f"{o[0]}-{case}")
    for o in operations()
    for case in CASES
    if not (case == "not dockvol's" and o[0] in NOT_FOREIGN)
]


@pytest.mark.parametrize("case, operation_id, method, path, op", MATRIX)
def test_a_project_meets_others_objects_as_if_they_did_not_exist(tmp_path, case, operation_id, method, path, op):
    name = next((n for prefix, n in THEIRS.items() if path.startswith(prefix + "{")), None)
    theirs = CASES[case](World(tmp_path / "theirs"))
    before = snapshot(theirs.engine, theirs.root)
    answered = theirs.call(method, path, op, name)
    creates = method == "POST" and "{" not in path and op["operationId"].startswith("create")
    # The answer a's caller would get if the objects were not there; for a create, if they were a's own.
    reference = World(tmp_path / "reference")
    if creates:
        reference.make("a")
    expected = reference.call(method, path, op, name)
    assert untimed(answered) == untimed(expected)
    if not creates or answered[0] >= 400:
        assert snapshot(theirs.engine, theirs.root) == before
    assert b'"b"' not in answered[2]  # the other project is never named
