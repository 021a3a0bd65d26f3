"""Hostile JSON bodies under gunicorn: past the parser's limits they are a 400 problem, and a
chunked body over the cap is 413 as with a Content-Length; the worker is still there after."""

from __future__ import annotations

import pytest
import requests

from .conftest import READER, WRITER

JSON = {**WRITER, "Content-Type": "application/json"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"labels": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        b'{"labels": ' + b'{"a":' * 100 + b"1" + b"}" * 100 + b"}",
        b'{"name": ' + b"9" * 5000 + b"}",
    ],
)
def test_json_past_the_parsers_limits_is_400(service, body):
    r = requests.post(service.url("/api/v1/volumes"), data=body, headers=JSON, timeout=30)
    assert r.status_code == 400 and r.headers["Content-Type"] == "application/problem+json", r.text[:300]
    assert requests.get(service.url("/healthz"), timeout=10).status_code == 200


def test_a_chunked_body_over_the_cap_is_413_like_one_with_a_length(service):
    big = b'{"name": "' + b"a" * (50 * 1024 * 1024) + b'"}'

    def chunks():
        for i in range(0, len(big), 1 << 20):
            yield big[i : i + (1 << 20)]

    with_length = requests.post(service.url("/api/v1/volumes"), data=big, headers=JSON, timeout=60)
    chunked = requests.post(service.url("/api/v1/volumes"), data=chunks(), headers=JSON, timeout=60)
    assert (with_length.status_code, chunked.status_code) == (413, 413), chunked.text[:300]
    assert chunked.headers["Content-Type"] == "application/problem+json"
    assert requests.get(service.url("/api/v1/volumes?page_size=1"), headers=READER, timeout=10).status_code == 200
