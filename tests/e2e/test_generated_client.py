"""The seed's three scenarios through a client generated from openapi/openapi.json, and nothing
else: every call to dockvol goes through the generated code (the engine is only looked at)."""

from __future__ import annotations

import importlib
import os
import pathlib
import pkgutil
import subprocess
import sys

import pytest

from tests.support import IMAGE, TEST_LABEL, unique

from .engine_checks import run_in, wait_for_file

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    """The generated package, made into a temporary folder from the committed spec."""
    out = tmp_path_factory.mktemp("generated")
    bin_dir = pathlib.Path(sys.executable).parent
    subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(ROOT / "openapi" / "openapi.json"),
            "--output-path",
            str(out / "dockvol_client"),
            "--meta",
            "none",
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("dockvol_client")
    finally:
        sys.path.remove(str(out))
        for module in [m for m in sys.modules if m == "dockvol_client" or m.startswith("dockvol_client.")]:
            del sys.modules[module]


@pytest.fixture(scope="module")
def api(gen, service):
    from dockvol_client import AuthenticatedClient, models
    from dockvol_client.api import bindings, sharing_groups, volumes
    from dockvol_client.api.bindings import create_binding, delete_binding, get_binding  # noqa: F401
    from dockvol_client.api.sharing_groups import create_sharing_group, delete_sharing_group, get_sharing_group  # noqa: F401
    from dockvol_client.api.volumes import get_volume  # noqa: F401

    client = AuthenticatedClient(base_url=service.base, token="e2e-admin", raise_on_unexpected_status=True)

    class Api:
        pass

    api = Api()
    api.client, api.bindings, api.groups, api.volumes, api.models = client, bindings, sharing_groups, volumes, models
    with client:
        yield api


def labels(api, cls):
    return cls.from_dict({TEST_LABEL: "e2e"})


def test_the_operation_ids_name_the_generated_functions(gen):
    from dockvol_client.api import bindings, sharing_groups, volumes

    def names(package):
        return {m.name for m in pkgutil.iter_modules(package.__path__)}

    assert {"create_binding", "replace_binding", "start_binding", "stop_binding"} <= names(bindings)
    assert {"list_volumes", "create_volume", "prune_volumes", "export_volume", "import_volume"} <= names(volumes)
    assert {"create_sharing_group", "delete_sharing_group"} <= names(sharing_groups)


def test_seed_1_a_docker_managed_volume(api, sdk):
    m = api.models
    name = unique("gen1")
    body = m.BindingCreate(
        name=name,
        image=IMAGE,
        command=["sleep", "3600"],
        labels=labels(api, m.BindingCreateLabels),
        mounts=[m.VolumeMount(target="/data", type_=m.VolumeMountType.VOLUME)],
    )
    made = api.bindings.create_binding.sync(client=api.client, body=body)
    assert isinstance(made, m.Binding) and made.state == "running"
    shown = api.bindings.get_binding.sync(name, client=api.client)
    (data,) = [mount for mount in shown.mounts if mount.target == "/data"]
    assert len(data.name) == 64 and data.source == sdk.volumes.get(data.name).attrs["Mountpoint"]
    assert api.bindings.delete_binding.sync_detailed(name, client=api.client).status_code == 204
    volume = api.volumes.get_volume.sync(data.name, client=api.client)
    assert (volume.anonymous, volume.in_use, volume.managed) == (True, False, True)


def test_seed_2_a_host_path(api, sdk, bind_root):
    m = api.models
    name = unique("gen2")
    host_dir = bind_root / name
    body = m.BindingCreate(
        name=name,
        image=IMAGE,
        labels=labels(api, m.BindingCreateLabels),
        command=["sh", "-c", "echo from-container > /data/c.txt; exec sleep 3600"],
        mounts=[m.BindMount(source=str(host_dir), target="/data", type_=m.BindMountType.BIND)],
    )
    assert api.bindings.create_binding.sync(client=api.client, body=body).state == "running"
    assert wait_for_file(host_dir / "c.txt") == "from-container\n"
    (host_dir / "h.txt").write_text("from-host\n")
    assert run_in(sdk, name, "cat", "/data/h.txt") == (0, "from-host\n")
    assert api.bindings.delete_binding.sync_detailed(name, client=api.client).status_code == 204
    assert (host_dir / "c.txt").exists() and (host_dir / "h.txt").exists()


def test_seed_3_copying_volume_settings(api, sdk, bind_root):
    m = api.models
    group = unique("infracon")
    html = bind_root / group
    created = api.groups.create_sharing_group.sync(
        client=api.client,
        body=m.SharingGroupCreate(
            name=group,
            share=[m.SharingGroupCreateShareItem.NETWORK],
            mounts=[m.BindMount(source=str(html), target="/data/web/html", type_=m.BindMountType.BIND)],
        ),
    )
    assert created.infra.state == "running"
    (html / "index.html").write_text("hello\n")
    members = {unique("nginx"): m.BindingCreateSharingMode.RW, unique("tomcat"): m.BindingCreateSharingMode.RO}
    for member, mode in members.items():
        api.bindings.create_binding.sync(
            client=api.client,
            body=m.BindingCreate(
                name=member,
                image=IMAGE,
                command=["sleep", "3600"],
                sharing_group=group,
                sharing_mode=mode,
                labels=labels(api, m.BindingCreateLabels),
            ),
        )
        assert run_in(sdk, member, "cat", "/data/web/html/index.html") == (0, "hello\n")
    assert api.groups.get_sharing_group.sync(group, client=api.client).members == sorted(members)
    refused = api.groups.delete_sharing_group.sync_detailed(group, client=api.client)
    assert refused.status_code == 409 and isinstance(refused.parsed, m.Problem)
    done = api.groups.delete_sharing_group.sync_detailed(group, client=api.client, cascade=True)
    assert done.status_code == 204
    assert (html / "index.html").read_text() == "hello\n"


def test_the_generated_client_reads_the_watch_stream(gen, service):
    """As the README shows: the generated client's own HTTP client, read as lines."""
    import json
    import threading

    from dockvol_client import AuthenticatedClient

    name = unique("genwatch")
    seen = []
    with (
        AuthenticatedClient(base_url=service.base, token="e2e-reader") as client,
        AuthenticatedClient(base_url=service.base, token="e2e-admin") as writer,
    ):
        with client.get_httpx_client().stream("GET", "/api/v1/events", params={"resource": "volume"}, timeout=30) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            make = threading.Timer(0.5, lambda: writer.get_httpx_client().post("/api/v1/volumes", json={"name": name}))
            make.start()
            for line in r.iter_lines():
                if line.startswith("data: "):
                    change = json.loads(line[6:])
                    seen.append(change)
                    if change["name"] == name:
                        break
            make.join()
        assert seen[-1]["object"]["name"] == name
        writer.get_httpx_client().delete(f"/api/v1/volumes/{name}")
