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
    start_session_service,
    state_dir,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
# DOCKVOL_FAULTS_PART: one of two halves, so that make test runs them side by side on two engines
# (tests/run.sh): the engine stopped at each step, or dockvol killed at each step and the races.
PARTS = {"engine-stops": True, "kills": False}


def pytest_collection_modifyitems(config, items):
    part = os.environ.get("DOCKVOL_FAULTS_PART")
    if not part:
        return
    if part not in PARTS:
        raise pytest.UsageError(f"DOCKVOL_FAULTS_PART is one of {', '.join(PARTS)}, not {part!r}")

    def stops(item) -> bool:
        return getattr(item, "callspec", None) is not None and item.callspec.params.get("fault") == "engine"

    keep = [item for item in items if stops(item) == PARTS[part]]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


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
