"""Helpers shared by the engine tiers (integration and end-to-end)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest

TEST_LABEL = "dockvol-test"
IMAGE = os.environ.get("DOCKVOL_TEST_IMAGE", "busybox:stable")


def sleeper(seconds: int = 3600) -> list[str]:
    """A command that sleeps and ends at once on SIGTERM: a bare `sleep` as PID 1 ignores it, so
    every engine stop waited its 10 s stop timeout for each such container (the faults tier
    restarts the engine at every step)."""
    return ["sh", "-c", f"trap 'exit 0' TERM; sleep {seconds} & wait"]


def engine_host() -> str:
    """The private engine `make test` started; its absence is a failure, never a skip."""
    host = os.environ.get("DOCKVOL_TEST_DOCKER_HOST")
    if not host:
        pytest.fail("DOCKVOL_TEST_DOCKER_HOST is not set: run the engine tiers through `make test`", pytrace=False)
    return host


T = TypeVar("T")


def read_soon(read: Callable[[], T], ok: Callable[[T], bool], within: float = 2.0) -> T:
    """What `read` gives once `ok` holds of it, within `within` seconds: for reads of a change made
    to the engine directly, which dockvol's views show as soon as the event stream brings it (no
    client of dockvol was answered for it, so no read waits for it)."""
    deadline = time.monotonic() + within
    while True:
        value = read()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


def cmdline(pid: int | str) -> bytes:
    """A live process's command line; empty once it is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def unique(prefix: str = "t") -> str:
    return f"dvtest-{prefix}-{uuid.uuid4().hex[:10]}"


def tar_of(files: dict[str, bytes]) -> bytes:
    """A plain tar of regular files (name -> content)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def files_of(tar_bytes: bytes) -> dict[str, bytes]:
    """The regular files of a tar (names without a leading './') with their content."""
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar if m.isreg()}


def race(*calls):
    """Run the calls at once (released together by a barrier); their results, in order."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result() for f in [pool.submit(run, c) for c in calls]]
