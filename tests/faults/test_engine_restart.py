"""After an engine restart every binding that ran runs again (restart policy `unless-stopped` by
default), members of sharing groups too, after their infrastructure container; a binding stopped
on purpose, or with restart `no`, stays stopped."""

from __future__ import annotations

import time

import requests

from tests.support import IMAGE, sleeper, unique

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
            "command": sleeper(),
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


def test_reads_stay_correct_across_an_engine_restart(service, sdk, restart_engine):
    """The view's stream breaks when the engine stops: reads go to the engine until it has listed
    again, and never show what the engine no longer holds, nor miss what it holds: a write
    answered by dockvol is read at once, a change made to the engine directly within seconds."""
    from tests.support import TEST_LABEL, read_soon

    kept = unique("kept")
    create(service, "/api/v1/volumes", {"name": kept, "labels": {TEST_LABEL: "1"}})
    relists = _relists(service)
    restart_engine()

    def get(name: str) -> int:
        return requests.get(service.url(f"/api/v1/volumes/{name}"), headers=READER, timeout=30).status_code

    for i in range(20):
        name = unique(f"after{i}")
        create(service, "/api/v1/volumes", {"name": name, "labels": {TEST_LABEL: "1"}})
        assert get(name) == 200, i
        assert requests.delete(service.url(f"/api/v1/volumes/{name}"), headers=WRITER, timeout=30).status_code == 204
        assert get(name) == 404, i
        sdk.volumes.create(name, labels={TEST_LABEL: "1"})
        assert read_soon(lambda n=name: get(n), lambda status: status == 200) == 200, i
        sdk.volumes.get(name).remove()
        assert read_soon(lambda n=name: get(n), lambda status: status == 404) == 404, i
        assert get(kept) == 200
        time.sleep(0.1)
    deadline = time.monotonic() + RECOVERY_SECONDS
    while _relists(service) <= relists and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _relists(service) > relists, "the views did not list again after the engine restart"


def _relists(service) -> float:
    text = requests.get(service.url("/metrics"), timeout=30).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("dockvol_view_relists_total"))


def test_watchers_are_told_to_resync_when_the_engine_restarts(service, restart_engine):
    """What changed while the engine was away is unknown to the view: each watcher hears resync."""
    import threading

    heard: list[str] = []

    def watch() -> None:
        with requests.get(service.url("/api/v1/events"), headers=READER, stream=True, timeout=60) as r:
            for line in r.iter_lines(decode_unicode=True):
                if line.startswith("event: ") and line != "event: heartbeat":
                    heard.append(line[7:])
                    if line == "event: resync":
                        return

    watchers = [threading.Thread(target=watch, daemon=True) for _ in range(4)]
    for t in watchers:
        t.start()
    time.sleep(1)
    restart_engine()
    for t in watchers:
        t.join(RECOVERY_SECONDS)
    assert heard.count("resync") == 4, heard
