"""Page a list and say so in `X-Pagination` (flask-smorest's shape) and an RFC 8288 `Link` header."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TypeVar
from urllib.parse import urlencode

import marshmallow as ma
from flask import g, request

from .smorest import Schema

T = TypeVar("T")
MAX_PAGE_SIZE = 1000

HEADERS_DOC = {
    "X-Pagination": {
        "description": "JSON: total, total_pages, first_page, last_page, page, previous_page, next_page",
        "schema": {"type": "string"},
    },
    "Link": {"description": "RFC 8288 links: first, prev, next, last", "schema": {"type": "string"}},
    "Dockvol-Unreachable-Nodes": {
        "description": "Fleet mode: the nodes that did not answer in time (their items are not in the list)",
        "schema": {"type": "string"},
    },
}


class PageArgs(Schema):
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=10**6))
    page_size = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=MAX_PAGE_SIZE))


def paginate(items: Sequence[T], page: int, page_size: int) -> tuple[list[T], dict[str, str]]:
    if g.get("other_nodes"):  # ?node= names only other nodes, with one engine (http/hooks.py)
        items = []
    start = (page - 1) * page_size
    return list(items[start : start + page_size]), headers_for(len(items), page, page_size)


def headers_for(total: int, page: int, page_size: int) -> dict[str, str]:
    """X-Pagination and Link for page `page` of `total` items."""
    last = max(1, -(-total // page_size))
    meta: dict[str, int] = {"total": total, "total_pages": -(-total // page_size), "page": page}
    meta.update(first_page=1, last_page=last)
    rels = {"first": 1, "last": last}
    if 1 < page <= last + 1:
        meta["previous_page"] = rels["prev"] = page - 1
    if page < last:
        meta["next_page"] = rels["next"] = page + 1
    links = ", ".join(f'<{_url(p)}>; rel="{rel}"' for rel, p in rels.items())
    return {"X-Pagination": json.dumps(meta), "Link": links}


def _url(page: int) -> str:
    args = [(k, v) for k, v in request.args.items(multi=True) if k != "page"]
    return f"{request.path}?{urlencode(args + [('page', str(page))])}"
