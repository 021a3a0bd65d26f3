"""The fleet-wide lock as a Swarm config (service/fleet/locks.py), over the in-memory engine's
configs: taken once, let go by id, a dead holder's broken after the bound and not before."""

from __future__ import annotations

import threading

import pytest

from service.engine.port import SwarmNode
from service.errors import Conflict, EngineFailure
from service.fleet.locks import HOLDER_LABEL, ConfigLocks, config_name, held
from tests.fakes.memory import InMemoryEngine


class Clock:
    def __init__(self):
        self.now = 1_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def manager():
    engine = InMemoryEngine(name="m")
    engine.swarm_nodes = [SwarmNode("id-m", "m", "manager", "active", "ready")]
    return engine


def test_a_lock_is_taken_once_and_let_go_by_its_id(manager):
    locks = ConfigLocks(manager, stale_after=30)
    first = locks.take("quota/a", "n1/1")
    assert first is not None and locks.take("quota/a", "n2/7") is None
    assert locks.take("quota/b", "n2/7") is not None  # another key: another config
    assert manager.configs[config_name("quota/a")].labels[HOLDER_LABEL] == "n1/1"
    locks.release(first)
    assert config_name("quota/a") not in manager.configs
    assert locks.take("quota/a", "n2/7") is not None


def test_a_dead_holders_lock_is_broken_after_the_bound_and_not_before(manager):
    clock = Clock()
    locks = ConfigLocks(manager, stale_after=30, clock=clock)
    dead = locks.take("quota/a", "n1/dead")
    clock.now += 29.9
    assert locks.take("quota/a", "n2/live") is None
    clock.now += 0.2
    taken = locks.take("quota/a", "n2/live")
    assert taken is not None and taken != dead
    assert manager.configs[config_name("quota/a")].labels[HOLDER_LABEL] == "n2/live"
    locks.release(dead)  # the dead holder wakes and lets go: the live one's lock stays
    assert manager.configs[config_name("quota/a")].id == taken


def test_a_worker_engine_cannot_keep_a_lock():
    with pytest.raises(EngineFailure):
        ConfigLocks(InMemoryEngine()).take("quota/a", "n2/1")


def test_held_waits_for_the_holder_and_says_busy_past_its_wait(manager):
    locks = ConfigLocks(manager)
    inside, order = threading.Event(), []

    def first():
        with held(locks.take, locks.release, "quota/a", "one", wait=5):
            inside.set()
            order.append("one in")
            threading.Event().wait(0.3)
            order.append("one out")

    t = threading.Thread(target=first)
    t.start()
    inside.wait(5)
    with held(locks.take, locks.release, "quota/a", "two", wait=5):
        order.append("two in")
    t.join()
    assert order == ["one in", "one out", "two in"]
    assert not manager.configs
    id_ = locks.take("quota/a", "stuck")
    with pytest.raises(Conflict, match="busy"), held(locks.take, locks.release, "quota/a", "three", wait=0.2):
        pass
    assert manager.configs[config_name("quota/a")].id == id_
