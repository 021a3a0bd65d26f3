"""The fake passes the same contract as the real engine (see tests/integration)."""

from __future__ import annotations

import pytest

from tests.contract.engine_contract import ArchiveContract, ContainerContract, EngineContract
from tests.fakes.memory import InMemoryEngine


class FakeWorld:
    def __init__(self) -> None:
        self.engine = InMemoryEngine()
        self.made: list[str] = []
        self.images: list[str] = []

    def container(self, name, volumes, read_only=False):
        self.engine.add_container(name, volumes, read_only=read_only)


class TestInMemoryEngine(EngineContract, ContainerContract, ArchiveContract):
    @pytest.fixture
    def world(self):
        return FakeWorld()
