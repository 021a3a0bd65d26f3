"""The text of the watch's Server-Sent Events, written and read in one place: what one node's
stream writes, fleet mode's merge reads back as the same fields."""

from __future__ import annotations

import json

from service import sse


def test_a_block_is_its_id_event_and_data_each_on_its_own_line():
    assert sse.block("created", {"name": "v1"}, id="5-0") == 'id: 5-0\nevent: created\ndata: {"name": "v1"}\n\n'
    assert sse.block(id="5-1") == "id: 5-1\n\n"  # where a client stands, with no event
    assert sse.block("x", "one\ntwo") == "event: x\ndata: one\ndata: two\n\n"  # text data, line by line


def test_a_heartbeat_names_the_node_and_the_time_in_whole_seconds():
    (read,) = sse.blocks([sse.heartbeat("n1").encode()])
    data = json.loads(read["data"])
    assert read["event"] == "heartbeat" and data["node"] == "n1" and len(data["at"]) == len("2026-01-01T00:00:00Z")


def test_what_is_written_reads_back_as_its_fields_however_the_bytes_are_cut():
    text = (
        sse.RETRY + sse.block("created", {"a": 1}, id="1-0") + sse.block(id="1-1") + sse.block("x", "a\nb")
    ).encode()
    chunks = [text[i : i + 7] for i in range(0, len(text), 7)]
    assert list(sse.blocks(chunks)) == [
        {"id": "1-0", "event": "created", "data": '{"a": 1}'},
        {"id": "1-1"},
        {"event": "x", "data": "a\nb"},
    ]
