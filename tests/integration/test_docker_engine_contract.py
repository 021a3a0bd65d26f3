"""The real adapter passes the same contract as the fake (see tests/unit)."""

from __future__ import annotations

import pytest

from service.engine.docker_engine import DockerEngine
from tests.contract.engine_contract import ArchiveContract, ContainerContract, EngineContract
from tests.integration.conftest import RealWorld
from tests.support import engine_host


class TestDockerEngine(EngineContract, ContainerContract, ArchiveContract):
    @pytest.fixture
    def world(self, sdk, tag):
        world = RealWorld(DockerEngine(engine_host(), timeout=30), sdk)
        yield world
        world.cleanup(tag)
