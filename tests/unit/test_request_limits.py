"""Hostile bodies cost nothing and answer a problem document: JSON past the parser's limits or
dockvol's (400), chunked bodies over the cap (413, as with a Content-Length), bodies slower than
the minimum rate (408). Over the Flask test client and the in-memory engine."""

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

    app = create_app(Settings(tokens={"a": ["admin"]}, max_import_bytes=100_000), engine=engine)
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


# --- bodies at a minimum rate (PacedInput; gevent's timer, no monkey-patching needed) -------


class Trickling:
    """A wsgi.input that delivers `rate` bytes a second (gevent.sleep), `total` bytes in all."""

    def __init__(self, rate: float, total: int) -> None:
        self.rate, self.left = rate, total

    def read(self, size: int = -1) -> bytes:
        import gevent

        n = min(self.left, size if size >= 0 else self.left)
        gevent.sleep(n / self.rate)
        self.left -= n
        return b"x" * n

    readline = read


def paced(stream, **kwargs):
    import gevent

    from service.http.limits import PacedInput

    return PacedInput(stream, gevent.Timeout, **{"grace": 0.2, "rate": 10_000, **kwargs})


def test_a_body_slower_than_the_minimum_rate_is_cut():
    import time

    from service.http.limits import SlowBody

    body = paced(Trickling(rate=2_000, total=100_000))
    started = time.monotonic()
    with pytest.raises(SlowBody):
        while body.read(1000):
            pass
    assert 0.2 <= time.monotonic() - started < 0.6


def test_a_read_that_never_returns_is_cut_at_the_grace():
    import time

    from service.http.limits import SlowBody

    body = paced(Trickling(rate=1, total=100))  # its first piece would take 100 s
    started = time.monotonic()
    with pytest.raises(SlowBody):
        body.read()
    assert 0.2 <= time.monotonic() - started < 0.4


@pytest.mark.slow
def test_one_large_read_at_an_honest_rate_is_not_cut():
    """read(n) waits for n bytes: it is made of pieces, and the allowance grows with each."""
    body = paced(Trickling(rate=20_000, total=20_000))  # 1 s in all, five times the grace
    assert len(body.read(50_000)) == 20_000
    body = paced(Trickling(rate=20_000, total=20_000))
    assert len(body.read()) == 20_000


def test_a_body_at_the_minimum_rate_is_never_cut():
    body = paced(Trickling(rate=10_000, total=8_000))  # 0.8 s in all, four times the grace
    assert len(body.read()) == 8_000


def test_time_the_app_spends_between_reads_is_not_the_clients():
    import gevent

    body = paced(Trickling(rate=1_000_000, total=3000))
    for _ in range(3):
        gevent.sleep(0.15)  # e.g. an engine call before the upload is read: 0.45 s, over the grace
        assert len(body.read(1000)) == 1000
