"""Looks at what dockvol made, straight through the engine (never through dockvol)."""

from __future__ import annotations

import time


def assert_hardened(sdk, name: str) -> None:
    host = sdk.api.inspect_container(name)["HostConfig"]
    assert host["Privileged"] is False, name
    assert not host["NetworkMode"].startswith("host"), name
    assert host["PidMode"] in ("",) or host["PidMode"].startswith("container:"), name
    assert host["IpcMode"] in ("private", "shareable", "") or host["IpcMode"].startswith("container:"), name
    assert host["UTSMode"] == "" and host["UsernsMode"] == "", name
    assert "no-new-privileges" in host["SecurityOpt"], name
    assert host["PidsLimit"] and host["PidsLimit"] > 0, name
    assert not host["Devices"] and not host["CapAdd"], name


def run_in(sdk, container: str, *command: str) -> tuple[int, str]:
    code, out = sdk.containers.get(container).exec_run(list(command))
    return code, out.decode()


def wait_for_file(path, seconds: float = 15.0) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"{path} did not appear within {seconds} s")
