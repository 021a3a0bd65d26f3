"""Fleet lists on paper and in simulation: the merge of every node's list is the sorted union,
page by page, and a fan-out over 100 in-memory nodes (some slow, some down) answers within its
deadline, naming every node it could not hear from."""

from __future__ import annotations

import random
import threading
import time

import pytest

from service.fleet.fanout import FanOut
from service.fleet.lists import NodePage, merge, window


def node_items(node, names):
    return [{"name": n, "node": node} for n in sorted(names)]


def page_of(items, k):
    return NodePage(items[:k], len(items))


@pytest.mark.parametrize("page_size", [1, 3, 7, 50])
def test_every_page_of_the_merge_is_that_page_of_the_sorted_union(page_size):
    rng = random.Random(7)
    fleet = {
        f"n{i}": node_items(f"n{i}", rng.sample([f"v{j:03}" for j in range(60)], rng.randint(0, 40))) for i in range(5)
    }
    union = sorted((item for items in fleet.values() for item in items), key=lambda i: (i["name"], i["node"]))
    pages = -(-len(union) // page_size)
    for page in range(1, pages + 2):
        k = window(page, page_size)
        got, total = merge({n: page_of(items, k) for n, items in fleet.items()}, page, page_size)
        assert total == len(union)
        assert got == union[(page - 1) * page_size : page * page_size], page


def test_a_name_on_several_nodes_is_listed_once_per_node_in_node_order():
    got, total = merge({"b": NodePage(node_items("b", ["x"]), 1), "a": NodePage(node_items("a", ["x", "y"]), 2)}, 1, 10)
    assert [(i["name"], i["node"]) for i in got] == [("x", "a"), ("x", "b"), ("y", "a")]
    assert total == 3


class SimulatedNode:
    """A node's instance: answers its first k items after `delay` seconds, or fails when down."""

    def __init__(self, name, names, delay=0.0, down=False):
        self.name, self.items = name, node_items(name, names)
        self.delay, self.down = delay, down
        self.asked = 0

    def list(self, k, seconds_left):
        self.asked += 1
        if self.down:
            raise ConnectionRefusedError(self.name)
        time.sleep(min(self.delay, seconds_left))
        if self.delay > seconds_left:
            raise TimeoutError(self.name)
        return page_of(self.items, k)


def simulated_fleet(nodes=100, volumes=20, slow=(), down=(), delay=0.002):
    rng = random.Random(1)
    fleet = {}
    for i in range(nodes):
        name = f"n{i:03}"
        pause = 5.0 if name in slow else delay * rng.random()
        fleet[name] = SimulatedNode(
            name, [f"vol-{rng.randrange(10 * volumes):04}" for _ in range(volumes)], pause, name in down
        )
    return fleet


def fleet_list(fan, fleet, page, page_size, timeout):
    k = window(page, page_size)
    gathered = fan.ask(sorted(fleet), lambda node, left: fleet[node].list(k, left), timeout)
    items, total = merge(gathered.answers, page, page_size)
    return items, total, gathered.unreachable


@pytest.fixture
def fan():
    fan = FanOut()
    yield fan
    fan.close()


def timed_list(fan, fleet, page, timeout):
    started = time.monotonic()
    items, total, unreachable = fleet_list(fan, fleet, page, 50, timeout)
    return items, total, unreachable, time.monotonic() - started


def test_a_hundred_nodes_some_slow_some_down_answer_in_time_and_name_the_missing(fan):
    slow, down = {"n007", "n050"}, {"n013", "n099", "n064"}
    fleet = simulated_fleet(slow=slow, down=down)
    items, total, unreachable, took = timed_list(fan, fleet, 2, timeout=0.5)
    assert unreachable == sorted(slow | down)
    heard = [n for name, n in fleet.items() if name not in slow | down]
    union = sorted((i for n in heard for i in n.items), key=lambda i: (i["name"], i["node"]))
    assert total == len(union) == 95 * 20
    assert items == union[50:100]
    assert 0.5 <= took < 4.0, took  # at the deadline, not after the slow nodes' 5 s
    assert all(n.asked == 1 for n in fleet.values())


def test_a_fleet_that_answers_quickly_is_not_held_to_the_deadline(fan):
    _items, total, unreachable, took = timed_list(fan, simulated_fleet(), 1, timeout=10.0)
    assert unreachable == [] and total == 100 * 20
    assert took < 5.0, took


def test_no_more_than_the_limit_are_asked_at_once():
    in_flight, most = 0, 0
    lock = threading.Lock()

    def call(node, left):
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.01)
        with lock:
            in_flight -= 1
        return node

    fan = FanOut(limit=8)
    try:
        gathered = fan.ask([f"n{i}" for i in range(40)], call, timeout=10.0)
    finally:
        fan.close()
    assert len(gathered.answers) == 40 and most <= 8
