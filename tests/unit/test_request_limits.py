"""Hostile bodies cost nothing and answer a problem document: JSON past the parser's limits or
dockvol's (400), chunked bodies over the cap (413, as with a Content-Length). Over the Flask test
client and the in-memory engine."""

from __future__ import annotations

import io
import tarfile

import pytest

PROBLEM = "application/problem+json"


def post_raw(client, headers, body, chunked=False, path="/api/v1/volumes", content_type="application/json"):
    headers = {**headers, "Content-Type": content_type}
    if chunked:
        return client.post(
            path,
            input_stream=io.BytesIO(body),
            headers={**headers, "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
    return client.post(path, data=body, headers=headers)


@pytest.mark.parametrize(
    "body, reason",
    [
        (b'{"labels": ' + b"[" * 1000 + b"]" * 1000 + b"}", "nested deeper than 32 levels"),
        (b"[" * 200_000, "nested deeper than 32 levels"),
        (b'{"labels": ' + b'{"a":' * 32 + b"1" + b"}" * 32 + b"}", "nested deeper than 32 levels"),
        (b'{"name": ' + b"1" * 5000 + b"}", "a number too long to read"),
        (b'{"name": "\xff\xfe"}', "not UTF-8 (byte 10)"),
        (
            b'{"name": "sur", "labels": {"k": "\\ud800"}}',
            "a string holds a lone surrogate (\\ud800-\\udfff), which is not Unicode",
        ),
        (
            b'{"name": "sur", "labels": {"\\udfff": "v"}}',
            "a string holds a lone surrogate (\\ud800-\\udfff), which is not Unicode",
        ),
    ],
    ids=["1000-deep", "200000-deep", "33-deep", "5000-digits", "not-utf8", "surrogate-value", "surrogate-key"],
)
def test_parser_limits_are_a_bad_request(client, as_writer, engine, body, reason):
    r = post_raw(client, as_writer, body)
    assert r.status_code == 400 and r.content_type == PROBLEM
    assert r.get_json()["errors"]["body"] == [f"Invalid JSON body: {reason}"]
    assert engine.volumes == {}


def test_a_chunked_body_over_the_cap_is_413_like_one_with_a_length(client, as_writer, engine):
    big = b'{"name": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    for chunked in (False, True):
        r = post_raw(client, as_writer, big, chunked=chunked)
        assert r.status_code == 413 and r.content_type == PROBLEM, (chunked, r.status_code)
    assert engine.volumes == {}


def test_a_chunked_body_under_the_cap_is_read_whole(client, as_writer, engine):
    r = post_raw(client, as_writer, b'{"name": "chunky", "labels": {"k": "' + b"v" * 1000 + b'"}}', chunked=True)
    assert r.status_code == 201, r.get_json()
    assert engine.volumes["chunky"].labels["k"] == "v" * 1000


def test_a_chunked_archive_over_the_import_cap_is_413(engine):
    from service.app import create_app
    from service.config import Settings

    app = create_app(
        {"TESTING": True, "SETTINGS": Settings(tokens={"a": ["admin"]}, max_import_bytes=100_000)}, engine=engine
    )
    client, admin = app.test_client(), {"Authorization": "Bearer a"}
    assert client.post("/api/v1/volumes", json={"name": "target"}, headers=admin).status_code == 201
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("big")
        info.size = 300_000
        tar.addfile(info, io.BytesIO(b"x" * info.size))
    r = client.put(
        "/api/v1/volumes/target/archive",
        input_stream=io.BytesIO(buf.getvalue()),
        headers={**admin, "Content-Type": "application/x-tar", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert r.status_code == 413 and r.content_type == PROBLEM
    exported = client.get("/api/v1/volumes/target/archive", headers={**admin, "Accept-Encoding": "identity"})
    with tarfile.open(fileobj=io.BytesIO(exported.get_data())) as tar:
        assert [m.name for m in tar if m.isreg()] == []  # nothing of it reached the volume


def test_the_depth_limit_admits_32_levels(client, as_writer, engine):
    body = b'{"labels": ' + b'{"a":' * 31 + b"1" + b"}" * 31 + b"}"  # 32 levels: parsed, then refused by the schema
    r = post_raw(client, as_writer, body)
    assert r.status_code == 422 and list(r.get_json()["errors"]) == ["labels.a.value"], r.get_json()


def test_flasks_own_json_loading_has_the_same_limits(app, engine):
    """A view that reads request.get_json() itself gets the same limits and problem document."""
    from flask import jsonify, request

    app.add_url_rule("/echo", "echo", lambda: jsonify(request.get_json()), methods=["POST"])
    client = app.test_client()
    for body in (b"[" * 1000 + b"]" * 1000, b"9" * 5000, b'"\xff"', b'"\\ud800"', b"[" * 33 + b"]" * 33):
        r = client.post("/echo", data=body, content_type="application/json")
        assert r.status_code == 400 and r.content_type == PROBLEM, (body[:10], r.status_code)
    assert client.post("/echo", data=b'{"a": [1]}', content_type="application/json").get_json() == {"a": [1]}
