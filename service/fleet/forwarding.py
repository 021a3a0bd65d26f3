"""The caller's identity on a request one instance forwards to another, signed with the fleet
secret (HMAC-SHA256) so that a peer can trust it and an outside caller cannot forge it.

The header names the node the request is meant for, when it was signed, the request's method and
target, and the caller (token name, scopes and project): a captured header is good only for that request,
on that node, for MAX_AGE seconds. The body is not signed (archives stream through); the overlay
network between instances is the boundary (docs/design.md section 10)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from ..config import DEFAULT_PROJECT
from ..errors import Unauthenticated

HEADER = "Dockvol-Forwarded"
VERSION = "v2"
MAX_AGE = 30.0  # seconds a signed header stays good (clocks of a Swarm's nodes agree well within it)


@dataclass(frozen=True)
class Caller:
    name: str
    scopes: frozenset[str]
    project: str = DEFAULT_PROJECT  # signed with the rest: a forwarded call never widens it


def sign(secret: bytes, caller: Caller, node: str, method: str, target: str, now: float) -> str:
    """The header value for `method target` (path and query) sent to `node` at `now`."""
    fields = [
        VERSION,
        f"{now:.3f}",
        _b64(node),
        _b64(caller.name),
        ",".join(sorted(caller.scopes)),
        _b64(caller.project),
    ]
    return " ".join([*fields, _mac(secret, fields, method, target)])


def verify(secret: bytes, value: str, here: str, method: str, target: str, now: float) -> Caller:
    """The caller a forwarded request carries, or Unauthenticated: a header that is malformed,
    signed with another secret, meant for another node or request, or older than MAX_AGE."""
    parts = value.split(" ")
    if len(parts) != 7 or parts[0] != VERSION:
        raise Unauthenticated("the forwarded identity is malformed")
    fields, mac = parts[:6], parts[6]
    if not hmac.compare_digest(mac, _mac(secret, fields, method, target)):
        raise Unauthenticated("the forwarded identity is not signed with this fleet's secret")
    try:
        at, node, name, project = float(fields[1]), _unb64(fields[2]), _unb64(fields[3]), _unb64(fields[5])
    except ValueError:
        raise Unauthenticated("the forwarded identity is malformed") from None
    if node != here:
        raise Unauthenticated(f"the forwarded request was meant for node {node!r}")
    if not -MAX_AGE < now - at < MAX_AGE:
        raise Unauthenticated("the forwarded identity is stale")
    return Caller(name, frozenset(s for s in fields[4].split(",") if s), project)


def _mac(secret: bytes, fields: list[str], method: str, target: str) -> str:
    message = "\n".join([*fields, method.upper(), target]).encode("utf-8", "surrogatepass")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=") or "-"


def _unb64(text: str) -> str:
    if text == "-":
        return ""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not base64") from None
