"""After an engine restart every binding that ran runs again (restart policy `unless-stopped` by
default), members of sharing groups too, after their infrastructure container; a binding stopped
on purpose, or with restart `no`, stays stopped."""

from __future__ import annotations

import time

import requests

from tests.support import IMAGE, unique

from .conftest import READER, WRITER

RECOVERY_SECONDS = 60


def create(service, path, body):
    r = requests.post(service.url(path), json=body, headers=WRITER, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()


def binding(service, name, **extra):
    network = {} if "sharing_group" in extra else {"network": "none"}  # members share their group's
    return create(
        service,
        "/api/v1/bindings",
        {
            "name": name,
            "image": IMAGE,
            "command": ["sleep", "3600"],
            **network,
            "mounts": [{"type": "volume", "target": "/data"}],
            **extra,
        },
    )


def states(service, names):
    out = {}
    for name in names:
        r = requests.get(service.url(f"/api/v1/bindings/{name}"), headers=READER, timeout=30)
        out[name] = r.json().get("state") if r.status_code == 200 else r.status_code
    return out


def test_bindings_and_group_members_run_again_after_an_engine_restart(service, sdk, restart_engine):
    kept, no_restart, stopped, member = (unique(p) for p in ("kept", "norestart", "stopped", "member"))
    group = unique("group")
    binding(service, kept)
    binding(service, no_restart, restart="no")
    binding(service, stopped)
    assert requests.post(service.url(f"/api/v1/bindings/{stopped}/stop"), headers=WRITER, timeout=60).status_code == 200
    create(service, "/api/v1/sharing-groups", {"name": group, "mounts": [{"type": "volume", "target": "/shared"}]})
    binding(service, member, sharing_group=group)
    names = [kept, no_restart, stopped, member]
    assert states(service, names) == {kept: "running", no_restart: "running", stopped: "exited", member: "running"}

    restart_engine()
    began = time.monotonic()
    want = {kept: "running", no_restart: "exited", stopped: "exited", member: "running"}
    seen = {}
    while time.monotonic() - began < RECOVERY_SECONDS:
        try:
            seen = states(service, names)
        except requests.RequestException:
            seen = {}
        if seen == want:
            break
        time.sleep(0.5)
    recovered = time.monotonic() - began
    assert seen == want, f"after {recovered:.1f} s: {seen}"
    infra = requests.get(service.url(f"/api/v1/sharing-groups/{group}"), headers=READER, timeout=30).json()["infra"]
    assert infra["state"] == "running"
    # The member shares the group's network namespace again: the one of the running infrastructure container.
    member_netns = sdk.containers.get(member).exec_run(["readlink", "/proc/1/ns/net"]).output
    infra_netns = sdk.containers.get(group).exec_run(["readlink", "/proc/1/ns/net"]).output
    assert member_netns == infra_netns
    print(f"engine restart: every binding in its promised state {recovered:.1f} s after the engine answered again")


def test_a_put_that_loses_the_engine_half_way_is_recovered_when_it_returns(
    service, start_service, sdk, tmp_path, bind_root
):
    """The engine goes away after the old container stood aside: the PUT fails (503), its own
    recovery cannot reach the engine, and the process finishes it once the engine is back."""
    import json
    import os
    import subprocess
    import threading

    from tests.e2e.conftest import service_env
    from tests.support import engine_host

    name = unique("enginegone")
    binding(service, name)
    sdk.containers.get(name).exec_run(["sh", "-c", "echo precious > /data/file"])
    release = tmp_path / "release"
    # Changes: lock, rename aside, stop; hold after the stop, with the binding's container aside.
    held = start_service(
        service_env(
            engine_host(),
            DOCKVOL_WORKERS="1",
            DOCKVOL_TEST_HOLD_AFTER=f"3:{release}",
            DOCKVOL_BIND_ROOTS=json.dumps([str(bind_root)]),
        )
    )
    answer = {}

    def put():
        body = {
            "name": name,
            "image": IMAGE,
            "command": ["sleep", "4242"],
            "network": "none",
            "mounts": [{"type": "volume", "target": "/data"}],
        }
        answer["status"] = requests.put(
            held.url(f"/api/v1/bindings/{name}"), json=body, headers=WRITER, timeout=120
        ).status_code

    thread = threading.Thread(target=put, daemon=True)
    thread.start()
    while "test hold after engine change 3 " not in held.log_path.read_text():
        time.sleep(0.05)
    assert sdk.containers.list(all=True, filters={"name": "dockvol-aside-"}), "the old container is not aside"
    engine = os.environ["DOCKVOL_TEST_ENGINE"]
    engine_sh = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "deploy" / "engine.sh")
    subprocess.run([engine_sh, "stop", engine], check=True, capture_output=True, timeout=120)
    release.touch()
    thread.join(60)
    assert answer.get("status") == 503, answer
    subprocess.run([engine_sh, "start", engine], check=True, capture_output=True, timeout=180)
    began = time.monotonic()
    seen = None
    while time.monotonic() - began < RECOVERY_SECONDS:
        try:
            seen = requests.get(held.url(f"/api/v1/bindings/{name}"), headers=READER, timeout=30).json()
            aside = sdk.containers.list(all=True, filters={"name": "dockvol-aside-"})
            locks = sdk.containers.list(all=True, filters={"label": "dockvol.role=lock"})
            if seen.get("state") == "running" and not aside and not locks:
                break
        except requests.RequestException:
            pass
        time.sleep(0.5)
    assert seen and seen["state"] == "running" and seen["command"] == ["sleep", "3600"], seen
    assert sdk.containers.get(name).exec_run(["cat", "/data/file"]).output == b"precious\n"
    print(f"PUT that lost the engine: old binding back {time.monotonic() - began:.1f} s after the engine returned")


def test_a_put_that_loses_the_engine_at_any_step_comes_back_whole(service, start_service, sdk, tmp_path, bind_root):
    """The engine stops right after each engine change of a PUT (the service held there), then
    the PUT goes on against no engine, and the engine returns: old or new binding, with its data."""
    import json
    import os
    import subprocess
    import threading

    from tests.e2e.conftest import service_env
    from tests.support import engine_host

    engine_sh = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "deploy" / "engine.sh")
    engine = os.environ["DOCKVOL_TEST_ENGINE"]
    name = unique("restarts")
    binding(service, name)
    sdk.containers.get(name).exec_run(["sh", "-c", "echo precious > /data/file"])
    timings = []
    for step in range(1, 12):
        release = tmp_path / f"release-{step}"
        held = start_service(
            service_env(
                engine_host(),
                DOCKVOL_WORKERS="1",
                DOCKVOL_TEST_HOLD_AFTER=f"{step}:{release}",
                DOCKVOL_BIND_ROOTS=json.dumps([str(bind_root)]),
            )
        )
        new = ["sleep", str(6000 + step)]
        before = requests.get(held.url(f"/api/v1/bindings/{name}"), headers=READER, timeout=30).json()["command"]
        body = {
            "name": name,
            "image": IMAGE,
            "command": new,
            "network": "none",
            "mounts": [{"type": "volume", "target": "/data"}],
        }
        answer = {}
        thread = threading.Thread(
            target=lambda: answer.setdefault(
                "r",
                requests.put(held.url(f"/api/v1/bindings/{name}"), json=body, headers=WRITER, timeout=120).status_code,
            ),
            daemon=True,
        )
        thread.start()
        marker = f"test hold after engine change {step} "
        while marker not in held.log_path.read_text() and thread.is_alive():
            time.sleep(0.02)
        if not thread.is_alive():
            break  # the PUT ran to its end: no such step
        subprocess.run([engine_sh, "stop", engine], check=True, capture_output=True, timeout=120)
        release.touch()
        thread.join(60)
        subprocess.run([engine_sh, "start", engine], check=True, capture_output=True, timeout=180)
        began = time.monotonic()
        seen = None
        while time.monotonic() - began < RECOVERY_SECONDS:
            try:
                seen = requests.get(held.url(f"/api/v1/bindings/{name}"), headers=READER, timeout=30).json()
                left = [
                    c.name
                    for c in sdk.containers.list(all=True, filters={"label": "dockvol.managed=true"})
                    if c.labels.get("dockvol.role") in ("lock", "helper") or c.name.startswith("dockvol-aside-")
                ]
                if seen.get("state") == "running" and not left:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        timings.append(time.monotonic() - began)
        assert seen and seen["state"] == "running" and seen["command"] in (before, new), (step, seen)
        assert sdk.containers.get(name).exec_run(["cat", "/data/file"]).output == b"precious\n", step
        held.stop()
    assert step > 5, step
    print(
        f"PUT losing the engine after each of {step - 1} steps: whole again within {max(timings):.1f} s of its return"
        f" ({', '.join(f'{t:.1f}' for t in timings)})"
    )
