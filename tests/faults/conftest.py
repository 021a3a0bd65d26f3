"""Faults tier: the engine restarted (and, in time, dockvol killed) at chosen moments, then the
promised end state checked. Uses the end-to-end tier's fixtures; `make test` names the engine."""

from __future__ import annotations

import os
import pathlib
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
    state_dir,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def engine_ctl():
    """engine_ctl("stop") / engine_ctl("start"): the private engine this run uses (deploy/engine.sh)."""
    engine = os.environ.get("DOCKVOL_TEST_ENGINE")
    if not engine:
        pytest.fail("DOCKVOL_TEST_ENGINE is not set: run the faults tier through `make test`", pytrace=False)

    def ctl(action: str) -> None:
        subprocess.run(
            [str(ROOT / "deploy" / "engine.sh"), action, engine], check=True, capture_output=True, timeout=180
        )

    return ctl


@pytest.fixture(scope="session")
def restart_engine(engine_ctl):
    """Stop and start the engine, as a host reboot would."""

    def restart() -> None:
        try:
            engine_ctl("stop")
        finally:
            engine_ctl("start")

    return restart
