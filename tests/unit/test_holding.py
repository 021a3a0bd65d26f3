"""The faults tier's hold (tests/fakes/holding.py): the name it gives gunicorn loads dockvol's app,
and the engine holds still after its N-th change, reads aside, until the release file exists."""

from __future__ import annotations

import threading

from flask import Flask
from gunicorn.util import import_app

from tests.fakes.holding import HoldingEngine, held_app
from tests.fakes.memory import InMemoryEngine


def test_gunicorn_loads_the_held_app_by_the_name_the_faults_tier_gives(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")  # read lazily: never reached here
    assert isinstance(import_app(held_app(3, tmp_path / "it's released")), Flask)


def test_the_engine_holds_after_its_nth_change_until_released(tmp_path):
    release = tmp_path / "release"
    engine = HoldingEngine(InMemoryEngine(), 2, str(release))
    engine.create_volume("first", "local", {}, {})
    engine.list_volumes()  # a read: not counted
    second = threading.Thread(target=engine.create_volume, args=("second", "local", {}, {}))
    second.start()
    second.join(0.3)
    assert second.is_alive() and "second" in engine.volumes  # held right after the change
    release.touch()
    second.join(5)
    assert not second.is_alive()
