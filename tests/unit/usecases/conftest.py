"""The use cases with no Flask: wired to the in-memory engine by `build_services`, as the app
wires them (cosmicpython's service-layer tests), so that a rule is tested where it lives.

A refusal promises that nothing else changed: tests take `snapshot(engine, tmp_path)` before
and compare after (tests/unit/engine_state.py). `tmp_path` holds the bind root and every
directory outside it that a test names."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable

import pytest

from service.domain import labels as label
from service.domain.bindings import BindingSpec
from service.domain.mounts import MountRequest
from service.errors import EngineRejected
from service.wiring import Services, build_services
from tests.contract.engine_contract import make_tar
from tests.fakes.memory import InMemoryEngine

# A command the image lacks: the engine creates the container and refuses to start it.
MISSING_COMMAND = ("/not-in-the-image",)


@pytest.fixture
def wire(engine, settings) -> Callable[..., Services]:
    """The use cases over the test's engine, with some settings changed (`wire(pull="never")`)."""
    return lambda **changed: build_services(dataclasses.replace(settings, **changed), engine)


@pytest.fixture
def uses(wire) -> Services:
    return wire()


@pytest.fixture
def volumes(uses):
    return uses.volumes


@pytest.fixture
def bindings(uses):
    return uses.bindings


@pytest.fixture
def groups(uses):
    return uses.sharing_groups


@pytest.fixture
def data(uses):
    return uses.volume_data


@pytest.fixture
def refuses_missing_commands(engine, monkeypatch):
    """The engine refuses to start a container whose command the image lacks, as a real one does."""
    real_start = engine.start_container

    def start(id_or_name: str) -> None:
        (cid,) = [c.id for c in engine.containers.values() if id_or_name in (c.id, c.name)]
        if engine.specs[cid].command == MISSING_COMMAND:
            raise EngineRejected("the engine refused this configuration")
        real_start(id_or_name)

    monkeypatch.setattr(engine, "start_container", start)


def spec(name: str = "app", **fields) -> BindingSpec:
    fields.setdefault("image", "busybox:stable")
    fields.setdefault("network", "none")
    fields.setdefault("command", ("sleep", "3600"))
    return BindingSpec(name=name, **fields)


def volume(target: str, source: str | None = None, read_only: bool = False) -> MountRequest:
    return MountRequest("volume", target, source, read_only)


def bind(source: object, target: str, read_only: bool = False) -> MountRequest:
    return MountRequest("bind", target, str(source), read_only)


def tar(*entries) -> io.BytesIO:
    """An upload: entries (name, kind, payload, mode), kind file|dir|symlink."""
    return io.BytesIO(make_tar(entries))


def leftovers(engine: InMemoryEngine) -> list[str]:
    """dockvol's own containers that no finished operation may leave: locks and helpers."""
    return sorted(c.name for c in engine.containers.values() if c.labels.get(label.ROLE) in ("lock", "helper"))
