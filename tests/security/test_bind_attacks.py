"""Attacks on the bind-root promise: nobody but root can change which directory a bind source (or
a bind-like volume's device) names, from create to every later start.

The attackers: an unprivileged host user (`nobody`) writing where an operator let them, and a
container of the caller's own with a read-write bind source, each racing dockvol's checks.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.conftest import service_env
from tests.support import IMAGE, TEST_LABEL, engine_host, unique

from .conftest import WRITER, as_attacker, attacker_ids

RACE_SECONDS = 10
# What the host's root holds and a bind root never does: seeing these in a container means `/` leaked.
HOST_ROOT_SIGNS = {"etc", "proc", "usr", "bin", "sys"}


@pytest.fixture(scope="module")
def attack_root():
    """A bind root the attacker can reach (root's, 0755), as an operator would make it."""
    root = tempfile.mkdtemp(prefix="dvsec-")
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def svc(start_session_service, attack_root):
    return start_session_service(service_env(engine_host(), DOCKVOL_BIND_ROOTS=json.dumps([attack_root])))


def bind(svc, name, mounts, start=True):
    body = {
        "name": name,
        "image": IMAGE,
        "command": ["sleep", "3600"],
        "network": "none",
        "mounts": mounts,
        "start": start,
    }
    return requests.post(svc.url("/api/v1/bindings"), json=body, headers=WRITER, timeout=60)


def bind_like_volume(svc, name, device):
    """POST a `local` volume that is a bind mount of `device` (labelled for the tier's cleanup)."""
    body = {"name": name, "driver_opts": {"type": "none", "o": "bind", "device": device}, "labels": {TEST_LABEL: "1"}}
    return requests.post(svc.url("/api/v1/volumes"), json=body, headers=WRITER, timeout=30)


def bind_mount(source, target="/w", read_only=False):
    return {"type": "bind", "source": source, "target": target, "read_only": read_only}


def seen_by(sdk, name):
    """What the container actually sees at /w (it must be running)."""
    out = sdk.containers.get(name).exec_run(["ls", "-a", "/w"])
    return set(out.output.decode().split())


def mkdir_owned(path, uid=0, mode=0o755):
    os.makedirs(path, exist_ok=True)
    os.chown(path, uid, uid if uid else 0)
    os.chmod(path, mode)


def test_a_directory_swapped_for_a_symlink_to_slash_in_a_loop_never_gets_slash_mounted(svc, sdk, attack_root):
    """Attack 1: an unprivileged user swaps a directory in the root with a symlink to `/`."""
    uid, gid = attacker_ids()
    att = os.path.join(attack_root, "att")
    mkdir_owned(att, uid)
    legit = os.path.join(attack_root, "legit")
    os.makedirs(legit)
    swapper = as_attacker(
        f"cd {att} && mkdir dd && ln -s / ll && while :; do mv -T dd d; mv -T d dd; mv -T ll d; mv -T d ll; done",
        background=True,
    )
    made, answers = [], {"attack": [], "legit": []}
    deadline = time.monotonic() + RACE_SECONDS

    def one(i):
        kind = "attack" if i % 2 == 0 else "legit"
        name = unique(f"race{i}")
        source = f"{att}/d" if kind == "attack" else f"{legit}/{i}"
        if kind == "legit":
            os.makedirs(source)
            open(os.path.join(source, "marker"), "w").close()
        r = bind(svc, name, [bind_mount(source)])
        answers[kind].append((r.status_code, r.json().get("detail", "")))
        if r.status_code == 201:
            made.append((name, source, kind))

    try:
        with ThreadPoolExecutor(4) as pool:
            i = 0
            while time.monotonic() < deadline:
                list(pool.map(one, range(i, i + 4)))
                i += 4
    finally:
        swapper.kill()
        swapper.wait()
    # Every container dockvol made: its mount as the engine has it, and what it really sees.
    leaked = []
    for name, source, kind in made:
        c = sdk.containers.get(name)
        (mount,) = [m for m in c.attrs["Mounts"] if m["Destination"] == "/w"]
        assert mount["Source"] == source
        seen = seen_by(sdk, name)
        if seen & HOST_ROOT_SIGNS:
            leaked.append((name, kind, sorted(seen)[:8]))
        elif kind == "legit":
            assert "marker" in seen
    assert not leaked, f"containers that see the host's root: {leaked}"
    assert answers["attack"] and {s for s, _ in answers["attack"]} == {403}, answers["attack"][:5]
    assert all(att in detail for _, detail in answers["attack"])
    assert len(answers["legit"]) >= 4 and {s for s, _ in answers["legit"]} == {201}, answers["legit"][:5]
    print(f"race: {len(answers['attack'])} attacking creates, all 403; {len(answers['legit'])} legit, all 201")


def test_a_container_writing_above_a_source_cannot_redirect_it(svc, sdk, attack_root):
    """Attacks 1 and 3 by a container: its read-write bind holds the directory others would use."""
    writer_dir = os.path.join(attack_root, "cp")
    os.makedirs(writer_dir)
    writer = unique("writer")
    assert bind(svc, writer, [bind_mount(writer_dir)]).status_code == 201
    sdk.containers.get(writer).exec_run(
        ["sh", "-c", "cd /w && mkdir dd && ln -s / ll && while :; do mv dd d; mv d dd; mv ll d; mv d ll; done"],
        detach=True,
    )
    answers = [bind(svc, unique("under"), [bind_mount(f"{writer_dir}/d/x", read_only=True)]) for _ in range(6)]
    answers += [bind(svc, unique("under"), [bind_mount(f"{writer_dir}/child")]) for _ in range(2)]
    assert {r.status_code for r in answers} == {403}, [r.json() for r in answers]
    # Under the swapping directory the refusal names whichever rule the race hit first; a quiet
    # directory below the writer is refused for lying inside its read-write source.
    assert all("lies inside the bind source of container" in r.json()["detail"] for r in answers[6:])


def test_a_writer_above_is_refused_in_either_order(svc, attack_root):
    """Attack 3: binding C has ROOT/p/child; a later P asks for ROOT/p read-write (and the reverse)."""
    p = os.path.join(attack_root, "p")
    assert bind(svc, unique("c"), [bind_mount(f"{p}/child")]).status_code == 201
    r = bind(svc, unique("p"), [bind_mount(p)])
    assert r.status_code == 403 and f"{p}/child" in r.json()["detail"]
    assert bind(svc, unique("p-ro"), [bind_mount(p, read_only=True)]).status_code == 201
    p2 = os.path.join(attack_root, "p2")
    assert bind(svc, unique("p"), [bind_mount(p2)]).status_code == 201
    r = bind(svc, unique("c"), [bind_mount(f"{p2}/child", read_only=True)])
    assert r.status_code == 403
    assert not os.path.exists(f"{p2}/child")


def test_racing_creates_of_a_writer_and_a_source_below_it_never_both_succeed(svc, attack_root):
    for round_ in range(6):
        top = os.path.join(attack_root, f"racing{round_}")
        barrier = threading.Barrier(2)

        def create(source, read_only):
            barrier.wait()
            return bind(svc, unique("r"), [bind_mount(source, read_only=read_only)]).status_code

        with ThreadPoolExecutor(2) as pool:
            outer = pool.submit(create, top, False)
            inner = pool.submit(create, f"{top}/inner", True)
            codes = sorted([outer.result(), inner.result()])
        assert codes == [201, 403], f"round {round_}: {codes}"


def test_volumes_in_disguise_obey_the_same_rule(svc, sdk, attack_root):
    """Attack 4: a `local` bind-like volume's device under a read-write bind source, and the reverse."""
    q = os.path.join(attack_root, "q")
    assert bind(svc, unique("holder"), [bind_mount(q)]).status_code == 201
    r = bind_like_volume(svc, unique("disguised"), f"{q}/dev")
    assert r.status_code == 403, r.json()
    assert not os.path.exists(f"{q}/dev")
    q2 = os.path.join(attack_root, "q2")
    name = unique("dev")
    assert bind_like_volume(svc, name, f"{q2}/dev").status_code == 201
    r = bind(svc, unique("above"), [bind_mount(q2)])
    assert r.status_code == 403 and f"volume {name}" in r.json()["detail"]
    requests.delete(svc.url(f"/api/v1/volumes/{name}"), headers=WRITER, timeout=30)


def test_a_source_swapped_after_create_is_refused_at_start(svc, sdk, attack_root):
    """Attack 2: the source replaced by a symlink after the binding was made. With the parent as the
    operator must keep it (root's, 0755) the attacker cannot; after an operator's mistake (0777) it
    can, and then dockvol refuses to start the container rather than mount the link's target."""
    s = os.path.join(attack_root, "s")
    name = unique("swap")
    assert bind(svc, name, [bind_mount(f"{s}/d")], start=False).status_code == 201
    denied = as_attacker(f"cd {s} && mv d d.old && ln -s / d")
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    os.chmod(s, 0o777)  # the operator's mistake
    swapped = as_attacker(f"cd {s} && mv d d.old && ln -s / d")
    assert swapped.returncode == 0, swapped.stderr
    r = requests.post(svc.url(f"/api/v1/bindings/{name}/start"), headers=WRITER, timeout=30)
    assert r.status_code == 403, r.json()
    assert s in r.json()["detail"]
    assert sdk.containers.get(name).status == "created"
    r = requests.put(
        svc.url(f"/api/v1/bindings/{name}"),
        headers=WRITER,
        timeout=30,
        json={
            "name": name,
            "image": IMAGE,
            "command": ["sleep", "3600"],
            "network": "none",
            "mounts": [bind_mount(f"{s}/d")],
        },
    )
    assert r.status_code == 403


def test_a_bind_like_volume_whose_device_was_swapped_is_refused_at_start(svc, sdk, attack_root):
    v = os.path.join(attack_root, "v")
    volume = unique("dev")
    assert bind_like_volume(svc, volume, f"{v}/dev").status_code == 201
    name = unique("uses-dev")
    assert bind(svc, name, [{"type": "volume", "source": volume, "target": "/w"}], start=False).status_code == 201
    os.chmod(v, 0o777)
    assert as_attacker(f"cd {v} && mv dev dev.old && ln -s / dev").returncode == 0
    r = requests.post(svc.url(f"/api/v1/bindings/{name}/start"), headers=WRITER, timeout=30)
    assert r.status_code == 403 and f"volume {volume}" in r.json()["detail"]
    assert sdk.containers.get(name).status == "created"
    sdk.containers.get(name).remove(force=True)
    assert requests.delete(svc.url(f"/api/v1/volumes/{volume}"), headers=WRITER, timeout=30).status_code == 204


def test_directories_others_own_or_can_write_are_named_and_refused(svc, attack_root):
    uid, _ = attacker_ids()
    theirs = os.path.join(attack_root, "theirs")
    mkdir_owned(theirs, uid)
    r = bind(svc, unique("o"), [bind_mount(f"{theirs}/d")])
    assert r.status_code == 403 and f"{theirs} is owned by uid {uid}" in r.json()["detail"]
    assert not os.path.exists(f"{theirs}/d")
    group_writable = os.path.join(attack_root, "gw")
    mkdir_owned(group_writable, 0, 0o775)
    r = bind(svc, unique("g"), [bind_mount(f"{group_writable}/d")])
    assert r.status_code == 403 and f"{group_writable} is writable by group or others" in r.json()["detail"]
    sticky = os.path.join(attack_root, "tmp")
    mkdir_owned(sticky, 0, 0o1777)
    assert bind(svc, unique("st"), [bind_mount(f"{sticky}/mine")]).status_code == 201
    assert stat.S_IMODE(os.stat(f"{sticky}/mine").st_mode) == 0o755 and os.stat(f"{sticky}/mine").st_uid == 0
    made = as_attacker(f"mkdir -p {sticky}/planted/d")
    assert made.returncode == 0, made.stderr
    r = bind(svc, unique("st"), [bind_mount(f"{sticky}/planted/d")])
    assert r.status_code == 403 and f"{sticky}/planted is owned by uid {uid}" in r.json()["detail"]
