"""Where a new resource goes: data first, then the caller's `node`, then the emptiest open node."""

from __future__ import annotations

import pytest

from service.errors import Conflict, EngineUnavailable, InvalidInput
from service.fleet.placement import Candidate, place


def fleet(*extra):
    nodes = {
        "n1": Candidate("n1", "active", "ready", True, 5),
        "n2": Candidate("n2", "active", "ready", True, 2),
        "n3": Candidate("n3", "active", "ready", True, 2),
        "drained": Candidate("drained", "drain", "ready", True, 0),
        "paused": Candidate("paused", "pause", "ready", True, 0),
        "down": Candidate("down", "active", "down", False, 0),
        "silent": Candidate("silent", "active", "ready", False, 0),
    }
    for c in extra:
        nodes[c.name] = c
    return list(nodes.values())


def test_by_default_the_open_node_with_fewest_volumes_ties_by_name():
    assert place(fleet()) == "n2"


def test_the_callers_node_when_nothing_binds_it():
    assert place(fleet(), wanted="n1") == "n1"


def test_a_binding_goes_where_its_volumes_live():
    assert place(fleet(), volume_nodes={"n3"}) == "n3"
    assert place(fleet(), wanted="n3", volume_nodes={"n3"}) == "n3"


def test_a_member_goes_to_its_groups_node():
    assert place(fleet(), group_node="n1") == "n1"
    assert place(fleet(), group_node="n1", volume_nodes={"n1"}) == "n1"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"volume_nodes": {"n1", "n2"}}, "mounts"),
        ({"volume_nodes": {"n1"}, "wanted": "n2"}, "node"),
        ({"group_node": "n1", "volume_nodes": {"n2"}}, "mounts"),
        ({"group_node": "n1", "wanted": "n3"}, "node"),
        ({"wanted": "nowhere"}, "node"),
    ],
)
def test_disagreements_are_422_naming_the_field(kwargs, field):
    with pytest.raises(InvalidInput) as caught:
        place(fleet(), **kwargs)
    assert field in caught.value.extra["errors"]


@pytest.mark.parametrize("node", ["drained", "paused"])
def test_drained_and_paused_nodes_get_nothing_new(node):
    with pytest.raises(Conflict):
        place(fleet(), wanted=node)
    with pytest.raises(Conflict):
        place(fleet(), volume_nodes={node})


@pytest.mark.parametrize("node", ["down", "silent"])
def test_unreachable_nodes_get_nothing_new(node):
    with pytest.raises(EngineUnavailable):
        place(fleet(), wanted=node)
    with pytest.raises(EngineUnavailable):
        place(fleet(), group_node=node)


def test_no_open_node_at_all_is_503():
    with pytest.raises(EngineUnavailable):
        place([Candidate("d", "drain", "ready", True, 0), Candidate("x", "active", "down", False, 0)])
