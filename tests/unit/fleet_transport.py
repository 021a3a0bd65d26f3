"""Fleet mode in the unit tier: three in-memory nodes whose instances reach each other through
their WSGI apps instead of HTTP (conftest's `fleet` fixture)."""

from __future__ import annotations

import time

from service.errors import EngineUnavailable
from service.fleet.peers import Reply

SECRET = b"unit-fleet-secret-0123456789"
NODES = ("n1", "n2", "n3")


class Wsgi:
    """The transport between instances: address -> that instance's app."""

    def __init__(self):
        self.apps, self.down, self.hidden, self.hanging = {}, set(), set(), set()
        self.cut = set()  # instances that die half-way through sending an archive

    def resolve(self):
        return sorted((set(self.apps) - self.hidden) | self.hanging)

    def send(self, address, method, target, headers, body, timeout, wait=None):
        if address in self.hanging:  # accepts the connection, never answers
            time.sleep(timeout)
            raise EngineUnavailable(f"the dockvol of {address} did not answer in time")
        if address in self.down:
            raise EngineUnavailable(f"the dockvol of {address} does not answer")
        data = (
            body
            if body is None or isinstance(body, bytes)
            else b"".join(body)
            if not hasattr(body, "read")
            else body.read()
        )
        if "/api/v1/events" in target:  # a stream: read as it comes
            r = self.apps[address].test_client().open(target, method=method, headers=headers, buffered=False)
            chunks = (c if isinstance(c, bytes) else c.encode() for c in r.response)
            return Reply(r.status_code, dict(r.headers), chunks, lambda: None)
        r = self.apps[address].test_client().open(target, method=method, headers=headers, data=data)
        if address in self.cut and "/archive" in target:
            return Reply(r.status_code, dict(r.headers), _cut(r.get_data()))
        return Reply(r.status_code, dict(r.headers), iter([r.get_data()]))


def _cut(data):
    yield data[: len(data) // 2]
    raise EngineUnavailable("the dockvol of the source stopped sending")
