"""Projects end to end: gunicorn with several workers over the private engine. Quotas hold under
races (20 concurrent creates against room for 5 give exactly 5: volumes, bindings that make an
anonymous volume each, sharing groups), project a's token meets b's objects as missing ones, and
the bytes quota refuses an import that would pass it and, once a container has grown a volume
past it, new volumes and imports."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import requests

from tests.contract.engine_contract import make_tar
from tests.support import IMAGE, TEST_LABEL, engine_host, race, unique

from .conftest import TOKENS, auth, service_env

RACERS, ROOM = 20, 5
PROJECT_TOKENS = {
    "pj-a": {"scopes": ["admin"], "project": "pa"},
    "pj-b": {"scopes": ["admin"], "project": "pb"},
    "pj-race-v": {"scopes": ["write"], "project": "race-v"},
    "pj-race-b": {"scopes": ["write"], "project": "race-b"},
    "pj-race-g": {"scopes": ["write"], "project": "race-g"},
    "pj-churn": {"scopes": ["admin"], "project": "churn"},
    "pj-bytes": {"scopes": ["admin"], "project": "pbytes"},
}
BYTES_LIMIT, USAGE_INTERVAL = 2_000_000, 1.0
A, B = auth("pj-a"), auth("pj-b")


@pytest.fixture(scope="module")
def roots(bind_root):
    made = {p: bind_root / f"projects-{p}" for p in ("pa", "pb")}
    for path in made.values():
        path.mkdir(mode=0o755, exist_ok=True)
    return made


@pytest.fixture(scope="module")
def svc_env(bind_root, roots):
    projects = {
        "pa": {"bind_roots": [str(roots["pa"])]},
        "pb": {"bind_roots": [str(roots["pb"])]},
        "race-v": {"quota": {"volumes": ROOM}},
        "race-b": {"quota": {"volumes": ROOM}},  # each binding makes one anonymous volume: room for 5 bindings
        "race-g": {"quota": {"sharing_groups": ROOM}},
        "churn": {},
        "pbytes": {"quota": {"bytes": BYTES_LIMIT}},
    }
    env = service_env(
        engine_host(),
        DOCKVOL_TOKENS=json.dumps({**TOKENS, **PROJECT_TOKENS}),
        DOCKVOL_BIND_ROOTS=json.dumps([str(bind_root)]),
        DOCKVOL_PROJECTS=json.dumps(projects),
        DOCKVOL_WORKERS="4",
        DOCKVOL_USAGE_INTERVAL=str(USAGE_INTERVAL),
    )
    return env


@pytest.fixture(scope="module")
def svc(start_session_service, svc_env):
    return start_session_service(svc_env)


def binding(name: str, mounts: list[dict]) -> dict:
    return {
        "name": name,
        "image": IMAGE,
        "command": ["sleep", "3600"],
        "network": "none",
        "mounts": mounts,
        "labels": {TEST_LABEL: "e2e"},
        "start": False,
    }


CREATES = {
    "volumes": ("pj-race-v", "/api/v1/volumes", lambda n: {"name": n, "labels": {TEST_LABEL: "e2e"}}),
    "bindings with an anonymous volume": (
        "pj-race-b",
        "/api/v1/bindings",
        lambda n: binding(n, [{"type": "volume", "target": "/data"}]),
    ),
    "sharing groups": ("pj-race-g", "/api/v1/sharing-groups", lambda n: {"name": n}),
}


@pytest.mark.parametrize("kind", list(CREATES))
def test_concurrent_creates_against_room_for_five_make_exactly_five(svc, sdk, kind):
    token, path, body = CREATES[kind]
    names = [unique("race") for _ in range(RACERS)]
    for attempt in range(2):  # a second round: the quota is full, every create is refused
        answers = race(
            *[
                lambda n=n: requests.post(svc.url(path), json=body(f"{n}-{attempt}"), headers=auth(token), timeout=120)
                for n in names
            ]
        )
        statuses = sorted(a.status_code for a in answers)
        made = ROOM if attempt == 0 else 0
        assert statuses == [201] * made + [403] * (RACERS - made), [a.text for a in answers if a.status_code >= 500]
        refused = next(a.json() for a in answers if a.status_code == 403)
        assert refused["type"].endswith("quota-exceeded") and (refused["limit"], refused["used"]) == (ROOM, ROOM)
    project = json.loads(json.dumps(PROJECT_TOKENS[token]))["project"]
    usage = requests.get(svc.url(f"/api/v1/projects/{project}"), headers=auth(token), timeout=30).json()["usage"]
    counted = {"volumes": "volumes", "bindings with an anonymous volume": "volumes", "sharing groups": "sharing_groups"}
    assert usage[counted[kind]] == ROOM
    held = sdk.volumes.list(filters={"label": f"dockvol.project={project}"})
    assert len(held) == (ROOM if kind != "sharing groups" else 0)
    assert not sdk.containers.list(all=True, filters={"label": "dockvol.role=lock"})


def same_as_missing(svc, method: str, path: str, name: str, **kwargs) -> requests.Response:
    """A's answer for b's object `name`, held byte for byte against the answer for a missing one."""
    rid = {"X-Request-ID": uuid.uuid4().hex}
    theirs = requests.request(method, svc.url(path.format(name)), headers={**A, **rid}, timeout=60, **kwargs)
    missing_name = "dvtest-" + "z" * (len(name) - len("dvtest-"))
    missing = requests.request(method, svc.url(path.format(missing_name)), headers={**A, **rid}, timeout=60, **kwargs)
    assert theirs.status_code == missing.status_code
    assert theirs.content == missing.content.replace(missing_name.encode(), name.encode())
    return theirs


def engine_state(sdk) -> tuple[list[str], list[tuple[str, str]]]:
    return sorted(v.name for v in sdk.volumes.list()), sorted((c.name, c.status) for c in sdk.containers.list(all=True))


def test_a_projects_token_meets_anothers_objects_as_missing_ones(svc, sdk, roots):
    vol, app = unique("pv"), unique("pb")
    assert (
        requests.post(
            svc.url("/api/v1/volumes"), json={"name": vol, "labels": {TEST_LABEL: "e2e"}}, headers=B, timeout=30
        ).status_code
        == 201
    )
    made = requests.post(
        svc.url("/api/v1/bindings"),
        json=binding(
            app,
            [
                {"type": "volume", "source": vol, "target": "/d"},
                {"type": "bind", "source": str(roots["pb"] / app), "target": "/w"},
            ],
        ),
        headers=B,
        timeout=60,
    )
    assert made.status_code == 201, made.text
    before = (
        sorted(v.name for v in sdk.volumes.list()),
        sorted((c.name, c.status) for c in sdk.containers.list(all=True)),
    )

    assert same_as_missing(svc, "GET", "/api/v1/volumes/{}", vol).status_code == 404
    assert same_as_missing(svc, "DELETE", "/api/v1/volumes/{}", vol).status_code == 404
    assert same_as_missing(svc, "GET", "/api/v1/volumes/{}/archive", vol).status_code == 404
    assert (
        same_as_missing(svc, "POST", "/api/v1/volumes/{}/rename", vol, json={"name": unique("to")}).status_code == 404
    )
    assert same_as_missing(svc, "GET", "/api/v1/bindings/{}", app).status_code == 404
    assert same_as_missing(svc, "POST", "/api/v1/bindings/{}/stop", app).status_code == 404
    assert same_as_missing(svc, "DELETE", "/api/v1/bindings/{}", app).status_code == 404
    mounting = binding(unique("pa"), [{"type": "volume", "source": vol, "target": "/d"}])
    rid = {"X-Request-ID": "same"}
    theirs = requests.post(svc.url("/api/v1/bindings"), json=mounting, headers={**A, **rid}, timeout=60)
    missing = requests.post(
        svc.url("/api/v1/bindings"),
        json={**mounting, "mounts": [{"type": "volume", "source": "dvtest-nonesuch", "target": "/d"}]},
        headers={**A, **rid},
        timeout=60,
    )
    assert theirs.status_code == missing.status_code == 422
    assert theirs.content == missing.content.replace(b"dvtest-nonesuch", vol.encode())
    taken = requests.post(svc.url("/api/v1/volumes"), json={"name": vol}, headers=A, timeout=30)
    assert taken.status_code == 409 and "pb" not in taken.text
    into_b = binding(unique("pa"), [{"type": "bind", "source": str(roots["pb"] / "x"), "target": "/w"}])
    assert requests.post(svc.url("/api/v1/bindings"), json=into_b, headers=A, timeout=60).status_code == 403
    listed = requests.get(svc.url("/api/v1/volumes"), headers=A, timeout=30).json()
    assert vol not in [v["name"] for v in listed]
    pruned = requests.post(svc.url("/api/v1/volumes/prune"), json={"include_named": True}, headers=A, timeout=60)
    assert pruned.status_code == 200 and vol not in pruned.json()["volumes_deleted"]

    after = (
        sorted(v.name for v in sdk.volumes.list()),
        sorted((c.name, c.status) for c in sdk.containers.list(all=True)),
    )
    assert after == before
    shown = requests.get(svc.url(f"/api/v1/volumes/{vol}"), headers=B, timeout=30).json()
    assert shown["project"] == "pb" and [u["binding"] for u in shown["used_by"]] == [app]


def test_projects_usage_matches_the_engine_after_churn(svc, sdk):
    """Creates, deletes, a binding's anonymous volume, a group, a prune: GET /projects counts what
    the engine holds under the project's label, and a's prune leaves b's unused volume alone."""
    churn = auth("pj-churn")

    def post(path: str, body: dict, headers=churn) -> requests.Response:
        answer = requests.post(svc.url(path), json=body, headers=headers, timeout=60)
        assert answer.status_code in (200, 201), answer.text
        return answer

    def usage() -> dict:
        return requests.get(svc.url("/api/v1/projects/churn"), headers=churn, timeout=30).json()["usage"]

    def held() -> dict:
        def containers(role: str) -> int:
            labels = ["dockvol.project=churn", f"dockvol.role={role}"]
            return len(sdk.containers.list(all=True, filters={"label": labels}))

        volumes = sdk.volumes.list(filters={"label": "dockvol.project=churn"})
        return {"volumes": len(volumes), "bindings": containers("binding"), "sharing_groups": containers("infra")}

    theirs = unique("keep")
    post("/api/v1/volumes", {"name": theirs, "labels": {TEST_LABEL: "e2e"}}, headers=B)  # b's, unused
    names = [unique("churn") for _ in range(4)]
    for name in names:
        post("/api/v1/volumes", {"name": name, "labels": {TEST_LABEL: "e2e"}})
    app, group = unique("churn-app"), unique("churn-g")
    post(
        "/api/v1/bindings",
        binding(app, [{"type": "volume", "target": "/data"}, {"type": "volume", "source": names[0], "target": "/d"}]),
    )
    post("/api/v1/sharing-groups", {"name": group})
    assert requests.delete(svc.url(f"/api/v1/volumes/{names[1]}"), headers=churn, timeout=60).status_code == 204
    counted = {k: usage()[k] for k in ("volumes", "bindings", "sharing_groups")}
    assert counted == held() == {"volumes": 4, "bindings": 1, "sharing_groups": 1}

    pruned = post("/api/v1/volumes/prune", {"include_named": True}).json()
    assert sorted(pruned["volumes_deleted"]) == sorted(names[2:])  # the binding's two stay in use
    assert requests.get(svc.url(f"/api/v1/volumes/{theirs}"), headers=B, timeout=30).status_code == 200
    counted = {k: usage()[k] for k in ("volumes", "bindings", "sharing_groups")}
    assert counted == held() == {"volumes": 2, "bindings": 1, "sharing_groups": 1}

    assert (
        requests.delete(
            svc.url(f"/api/v1/bindings/{app}?remove_anonymous_volumes=true"), headers=churn, timeout=60
        ).status_code
        == 204
    )
    assert requests.delete(svc.url(f"/api/v1/sharing-groups/{group}"), headers=churn, timeout=60).status_code == 204
    counted = {k: usage()[k] for k in ("volumes", "bindings", "sharing_groups")}
    assert counted == held()


def engine_bytes(sdk, volume: str) -> int:
    (found,) = [v for v in sdk.api.df()["Volumes"] if v["Name"] == volume]
    return int(found["UsageData"]["Size"])


def test_the_bytes_quota_refuses_writes_that_would_pass_it_and_new_volumes_once_passed(svc, sdk):
    token = auth("pj-bytes")
    vol = unique("bytes")
    made = requests.post(
        svc.url("/api/v1/volumes"), json={"name": vol, "labels": {TEST_LABEL: "e2e"}}, headers=token, timeout=30
    )
    assert made.status_code == 201, made.text

    def import_(size: int) -> requests.Response:
        archive = make_tar([(f"f{size}", "file", b"x" * size, 0o644)])
        return requests.put(svc.url(f"/api/v1/volumes/{vol}/archive"), data=archive, headers=token, timeout=120)

    def refused_with(answer: requests.Response, used: int) -> None:
        assert answer.status_code == 403, answer.text
        body = answer.json()
        assert body["type"].endswith("quota-exceeded")
        assert (body["quota"], body["limit"], body["used"]) == ("bytes", BYTES_LIMIT, used)

    # An import that would pass it: refused, nothing written (not in the volume, no staging copy left).
    volumes_before = sorted(v.name for v in sdk.volumes.list())
    refused_with(import_(BYTES_LIMIT + 1), 0)
    listing = requests.get(svc.url(f"/api/v1/volumes/{vol}/files"), headers=token, timeout=60).json()
    assert listing["entries"] == []
    assert engine_bytes(sdk, vol) == 0 and sorted(v.name for v in sdk.volumes.list()) == volumes_before
    assert import_(1000).status_code == 200

    def usage_bytes() -> int:
        return requests.get(svc.url("/api/v1/projects/pbytes"), headers=token, timeout=30).json()["usage"]["bytes"]

    # Another worker may answer from its measurement of less than USAGE_INTERVAL ago (its age is shown).
    deadline = time.monotonic() + 5 * USAGE_INTERVAL
    while usage_bytes() != 1000 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert usage_bytes() == 1000 == engine_bytes(sdk, vol)

    # A container grows the volume past the quota: once measured, new volumes and imports are refused.
    grow = f"head -c {BYTES_LIMIT + 500_000} /dev/zero > /d/grown"
    sdk.containers.run(
        IMAGE, ["sh", "-c", grow], volumes={vol: {"bind": "/d"}}, labels={TEST_LABEL: "e2e"}, remove=True
    )
    time.sleep(USAGE_INTERVAL + 0.2)
    grown = BYTES_LIMIT + 501_000
    assert engine_bytes(sdk, vol) == grown
    usage = requests.get(svc.url("/api/v1/projects/pbytes"), headers=token, timeout=30).json()["usage"]
    assert usage["bytes"] == grown and usage["bytes_measured_at"].endswith("Z")
    volumes_before = sorted(v.name for v in sdk.volumes.list())
    refused_with(
        requests.post(svc.url("/api/v1/volumes"), json={"name": unique("more")}, headers=token, timeout=30), grown
    )
    refused_with(import_(10), grown)
    assert sorted(v.name for v in sdk.volumes.list()) == volumes_before
    assert engine_bytes(sdk, vol) == grown


class Stream:
    """One client of GET /events, read in a thread: `events` holds (event, id, data) as they come."""

    def __init__(self, service, headers: dict, last_id: str | None = None) -> None:
        self.events: list[tuple[str, str | None, dict]] = []
        self.raw: list[str] = []
        resume = {"Last-Event-ID": last_id} if last_id else {}
        self._answer = requests.get(
            service.url("/api/v1/events?resource=volume"), headers={**headers, **resume}, stream=True, timeout=60
        )
        assert self._answer.status_code == 200
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event, id_ = "message", None
        try:
            for line in self._answer.iter_lines(decode_unicode=True):
                self.raw.append(line)
                if line.startswith("event: "):
                    event = line[len("event: ") :]
                elif line.startswith("id: "):
                    id_ = line[len("id: ") :]
                elif line.startswith("data: "):
                    self.events.append((event, id_, json.loads(line[len("data: ") :])))
                    event = "message"
        except (requests.exceptions.ConnectionError, AttributeError):
            pass  # closed by the test

    def until(self, name: str, kind: str = "created", within: float = 30.0) -> str:
        """The id of the event `kind` of `name`, once it has come."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for event, id_, data in list(self.events):
                if event == kind and data.get("name") == name:
                    assert id_ is not None
                    return id_
            time.sleep(0.05)
        raise AssertionError(f"no {kind} of {name} within {within} s: {self.events}")

    def names(self) -> list[tuple[str, str]]:
        return [(event, data["name"]) for event, _, data in self.events if "name" in data]

    def close(self) -> None:
        self._answer.close()


def views_listed(service, workers: int, within: float = 60.0) -> None:
    """Wait until each of `service`'s workers has listed the engine once: a worker keeps the changes
    made since its view began, so a client resuming from before that is told to re-list. The first
    worker answers while the others may still be loading (seconds, on a loaded machine)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        text = requests.get(service.url("/metrics"), timeout=30).text
        counted = [line.split()[1] for line in text.splitlines() if line.startswith("dockvol_view_relists_total ")]
        if counted and float(counted[0]) >= workers:
            return
        time.sleep(0.1)
    raise AssertionError(f"not every one of {workers} workers listed the engine within {within} s")


def test_each_projects_watcher_hears_its_own_on_any_instance_resumed_or_resynced(svc, svc_env, start_service):
    """Two instances on one engine. Each project's watcher hears its own changes only; a watcher
    that resumes on the other instance hears what it missed of its own; one resuming from before
    anything is kept is told to re-list, with no name in it. A change of b's made before a's last
    one would have reached a's stream before it (one engine, one order): the marker proves absence."""
    other = start_service(svc_env)
    for instance in (svc, other):  # a worker still starting when a's history is made would not hold it
        views_listed(instance, int(svc_env["DOCKVOL_WORKERS"]))

    def volume(name: str, headers: dict) -> None:
        body = {"name": name, "labels": {TEST_LABEL: "e2e"}}
        assert requests.post(svc.url("/api/v1/volumes"), json=body, headers=headers, timeout=30).status_code == 201

    def delete(name: str, headers: dict) -> None:
        assert requests.delete(svc.url(f"/api/v1/volumes/{name}"), headers=headers, timeout=30).status_code == 204

    a, b = Stream(svc, A), Stream(svc, B)
    try:
        time.sleep(1)  # both connected
        va, vb, a_mark, b_mark = unique("wa"), unique("wb"), unique("wa-mark"), unique("wb-mark")
        volume(va, A)
        volume(vb, B)
        delete(vb, B)
        volume(a_mark, A)
        volume(b_mark, B)
        last_a = a.until(a_mark)
        b.until(b_mark)
        assert a.names() == [("created", va), ("created", a_mark)]
        assert b.names() == [("created", vb), ("deleted", vb), ("created", b_mark)]
    finally:
        a.close()
        b.close()

    # a is away: both go on; a resumes on the other instance from its last id.
    va2, vb2, a_mark2 = unique("wa2"), unique("wb2"), unique("wa2-mark")
    volume(va2, A)
    volume(vb2, B)
    delete(va, A)
    volume(a_mark2, A)
    resumed = Stream(other, A, last_id=last_a)
    try:
        resumed.until(a_mark2)
        assert resumed.names() == [("created", va2), ("deleted", va), ("created", a_mark2)]
        assert not any(n in line for line in resumed.raw for n in (vb, vb2, b_mark))
    finally:
        resumed.close()

    # From before the other instance began: nothing kept reaches back there, so a is told to re-list.
    stale = Stream(other, A, last_id="1-0")
    try:
        deadline = time.monotonic() + 30
        while not stale.events and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [event for event, _, _ in stale.events] == ["resync"]
        assert not any(n in line for line in stale.raw for n in (vb, vb2, b_mark, va2))
    finally:
        stale.close()
    for name, headers in ((va2, A), (a_mark, A), (a_mark2, A), (vb2, B), (b_mark, B)):
        delete(name, headers)
