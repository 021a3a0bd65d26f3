"""Helpers shared by the engine tiers (integration and end-to-end)."""

from __future__ import annotations

import os
import uuid

import pytest

TEST_LABEL = "dockvol-test"
IMAGE = os.environ.get("DOCKVOL_TEST_IMAGE", "busybox:stable")


def engine_host() -> str:
    """The private engine `make test` started; its absence is a failure, never a skip."""
    host = os.environ.get("DOCKVOL_TEST_DOCKER_HOST")
    if not host:
        pytest.fail("DOCKVOL_TEST_DOCKER_HOST is not set: run the engine tiers through `make test`", pytrace=False)
    return host


def unique(prefix: str = "t") -> str:
    return f"dvtest-{prefix}-{uuid.uuid4().hex[:10]}"
