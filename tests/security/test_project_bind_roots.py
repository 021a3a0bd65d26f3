"""A token of project `sa` (bind root R/b2) tries every bind-root trick to reach project `sb`'s
bind root (R/b): the prefix sibling, a symlink planted in its own root, `..`, and a volume that is
a bind mount in disguise (`type=none,o=bind`). Each is refused, and nothing is made: no container,
no volume, no directory under R/b."""

from __future__ import annotations

import json
import os

import pytest
import requests

from tests.e2e.conftest import TOKENS, auth, service_env
from tests.support import IMAGE, TEST_LABEL, engine_host, unique

SA = auth("sec-sa")


@pytest.fixture(scope="module")
def roots(bind_root):
    top = bind_root / unique("projects")
    made = {"sb": top / "b", "sa": top / "b2"}
    for path in made.values():
        path.mkdir(mode=0o755, parents=True)
    os.chmod(top, 0o755)
    return made


@pytest.fixture(scope="module")
def svc(start_session_service, bind_root, roots):
    projects = {p: {"bind_roots": [str(root)]} for p, root in roots.items()}
    tokens = {
        **TOKENS,
        "sec-sa": {"scopes": ["write"], "project": "sa"},
        "sec-none": {"scopes": ["write"], "project": "sn"},
    }
    env = service_env(
        engine_host(),
        DOCKVOL_TOKENS=json.dumps(tokens),
        DOCKVOL_BIND_ROOTS=json.dumps([str(bind_root)]),
        DOCKVOL_PROJECTS=json.dumps(projects),
    )
    return start_session_service(env)


def bind(svc, source: str, token=SA) -> requests.Response:
    body = {
        "name": unique("sec"),
        "image": IMAGE,
        "command": ["sleep", "60"],
        "network": "none",
        "start": False,
        "labels": {TEST_LABEL: "security"},
        "mounts": [{"type": "bind", "source": source, "target": "/w"}],
    }
    return requests.post(svc.url("/api/v1/bindings"), json=body, headers=token, timeout=60)


def untouched(sdk, roots) -> tuple:
    return sorted(os.listdir(roots["sb"])), len(sdk.containers.list(all=True)), len(sdk.volumes.list())


def test_sources_in_another_projects_root_are_refused_whatever_the_path(svc, sdk, roots):
    b, b2 = roots["sb"], roots["sa"]
    (b2 / "link").symlink_to(b)  # planted in its own root, pointing into b's
    before = untouched(sdk, roots)
    for source in [
        f"{b}/data",  # straight in
        str(b),  # b's root itself
        f"{b2}/../b/data",  # climbing out of its own root
        f"{b2}/link/data",  # through a symlink in its own root
        f"{b2}/link",
        str(b.parent),  # the directory holding both roots
    ]:
        refused = bind(svc, source)
        assert refused.status_code in (403, 422), (source, refused.text)
        if not source.startswith(str(b)):  # a refusal does not tell where a link led
            assert str(b) not in refused.json()["detail"].replace(source, "")
    assert untouched(sdk, roots) == before


def test_the_prefix_sibling_is_its_own_root_and_admitted(svc, roots):
    made = bind(svc, f"{roots['sa']}/site")  # b2: its own, though it starts with b's path
    assert made.status_code == 201, made.text


def test_a_volume_that_is_a_bind_mount_in_disguise_obeys_the_same_roots(svc, sdk, roots):
    before = untouched(sdk, roots)
    for device in (f"{roots['sb']}/data", f"{roots['sa']}/../b/data", f"{roots['sa']}/link/data"):
        body = {"name": unique("dis"), "driver_opts": {"type": "none", "o": "bind", "device": device}}
        refused = requests.post(svc.url("/api/v1/volumes"), json=body, headers=SA, timeout=30)
        assert refused.status_code in (403, 422), (device, refused.text)
    assert untouched(sdk, roots) == before


def test_a_project_without_roots_binds_nothing(svc, roots):
    refused = bind(svc, f"{roots['sa']}/x", token=auth("sec-none"))
    assert refused.status_code == 403 and "no bind_roots" in refused.json()["detail"]
