"""Versions: what a resource's ETag stands for, owned by the domain. A resource's version is a
digest of what it is (its fields, as the engine holds them), so it changes whenever anything a
client can see of it changes; a change a client asks for `if_match` some versions goes ahead only
while the resource still has one of them (HTTP's If-Match, which the HTTP layer reads)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..errors import PreconditionFailed


def digest(resource: Any, **replaced: Any) -> str:
    """The version of a dataclass instance: a digest of its fields (`replaced`: some of them
    stood in for by what is stable, e.g. a volume's identity for its creation time)."""
    fields = {**dataclasses.asdict(resource), **replaced}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class IfMatch:
    """The versions a caller read: a change goes ahead only if the resource still has one of
    them, or has any version at all (`any`, HTTP's `*`). No versions and not `any`: nothing
    matches (an If-Match that names no tag)."""

    versions: frozenset[str] = frozenset()
    any: bool = False

    def check(self, version: str, what: str) -> None:
        if not self.any and version not in self.versions:
            raise PreconditionFailed(f"{what} changed since you read it (If-Match does not match)")


def check(if_match: IfMatch | None, version: str, what: str) -> None:
    """No If-Match: anything goes."""
    if if_match is not None:
        if_match.check(version, what)
