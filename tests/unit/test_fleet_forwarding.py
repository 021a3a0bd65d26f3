"""A forwarded caller's identity: trusted only when signed with the fleet secret, for this node,
this request, and recently."""

from __future__ import annotations

import pytest

from service.errors import Unauthenticated
from service.fleet.forwarding import MAX_AGE, Caller, sign, verify

SECRET = b"fleet-secret-0123456789"
WRITER = Caller("token-ab12cd34", frozenset({"write"}))
T0 = 1_800_000_000.0


def signed(**change):
    args = {"secret": SECRET, "caller": WRITER, "node": "n2", "method": "POST", "target": "/api/v1/volumes", "now": T0}
    args.update(change)
    return sign(**args)


def test_a_signed_identity_verifies_on_its_node():
    assert verify(SECRET, signed(), "n2", "POST", "/api/v1/volumes", T0 + 1) == WRITER


def test_names_and_scopes_of_any_shape_survive():
    caller = Caller("ops team: ünïcode, spaces", frozenset({"read", "admin"}))
    value = signed(caller=caller)
    assert verify(SECRET, value, "n2", "POST", "/api/v1/volumes", T0) == caller


@pytest.mark.parametrize(
    "why, value, here, method, target, now",
    [
        ("another secret", signed(secret=b"guessed"), "n2", "POST", "/api/v1/volumes", T0),
        ("another node", signed(), "n3", "POST", "/api/v1/volumes", T0),
        ("another method", signed(), "n2", "DELETE", "/api/v1/volumes", T0),
        ("another target", signed(), "n2", "POST", "/api/v1/volumes/prune", T0),
        ("another query", signed(target="/api/v1/volumes?node=n2"), "n2", "POST", "/api/v1/volumes?node=n3", T0),
        ("stale", signed(), "n2", "POST", "/api/v1/volumes", T0 + MAX_AGE + 1),
        ("from the future", signed(), "n2", "POST", "/api/v1/volumes", T0 - MAX_AGE - 1),
        ("unsigned", "v1 1800000000.000 bjI dG9rZW4 admin", "n2", "POST", "/api/v1/volumes", T0),
        ("garbage", "hello", "n2", "POST", "/api/v1/volumes", T0),
        ("empty", "", "n2", "POST", "/api/v1/volumes", T0),
    ],
)
def test_anything_else_is_refused(why, value, here, method, target, now):
    with pytest.raises(Unauthenticated):
        verify(SECRET, value, here, method, target, now)


def test_scopes_cannot_be_raised_without_the_secret():
    fields = signed().split(" ")
    fields[4] = "admin"
    with pytest.raises(Unauthenticated):
        verify(SECRET, " ".join(fields), "n2", "POST", "/api/v1/volumes", T0)


def test_the_project_travels_signed_and_cannot_be_widened():
    web = Caller("token-web", frozenset({"write"}), "web")
    value = signed(caller=web)
    assert verify(SECRET, value, "n2", "POST", "/api/v1/volumes", T0).project == "web"
    parts = value.split(" ")
    parts[5] = sign(SECRET, Caller("x", frozenset(), "*"), "n2", "POST", "/", T0).split(" ")[5]  # the project `*`
    with pytest.raises(Unauthenticated):
        verify(SECRET, " ".join(parts), "n2", "POST", "/api/v1/volumes", T0)
