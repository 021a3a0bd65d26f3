"""Security tier: attacks on dockvol's promises, over HTTP against gunicorn and the private engine.

Each test plays an attacker: a caller with a write token, a process of its own on the host (run
as an unprivileged user where the rule is about writers other than root), or a container of its
own. The service and engine fixtures are the end-to-end tier's.
"""

from __future__ import annotations

import os
import pwd
import subprocess

import pytest

from tests.e2e.conftest import (  # noqa: F401
    ADMIN,
    READER,
    WRITER,
    backup_root,
    bind_root,
    sdk,
    service,
    start_service,
    start_session_service,
    state_dir,
)

ATTACKER = "nobody"  # an unprivileged account every Debian system has


def attacker_ids() -> tuple[int, int]:
    entry = pwd.getpwnam(ATTACKER)
    return entry.pw_uid, entry.pw_gid


def as_attacker(script: str, background: bool = False) -> subprocess.Popen | subprocess.CompletedProcess:
    """Run a shell script as the unprivileged attacker (the tests run as root)."""
    if os.geteuid() != 0:
        pytest.fail("the security tier runs as root (as `make test` does in CI)", pytrace=False)
    uid, gid = attacker_ids()

    def drop() -> None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    argv = ["/bin/sh", "-c", script]
    if background:
        return subprocess.Popen(argv, preexec_fn=drop, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(argv, preexec_fn=drop, capture_output=True, text=True, timeout=60)
