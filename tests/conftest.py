"""Fixtures every tier may ask for."""

from __future__ import annotations

import pytest

from tests.s3 import moto_server


@pytest.fixture(scope="session")
def s3_endpoint():
    """An S3 server on loopback (moto), started on first use and stopped with the session."""
    with moto_server() as endpoint:
        yield endpoint
