"""The labels dockvol puts on what it creates (prefix `dockvol.`; docs/design.md section 3)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..engine.port import VolumeRecord

PREFIX = "dockvol."
MANAGED = "dockvol.managed"
ANONYMOUS = "dockvol.anonymous"
CREATE_ID = "dockvol.create-id"  # one-time label: tells "I created it" from "it was there"
ROLE = "dockvol.role"
SERVICE_ROLE = "service"  # dockvol.role of dockvol's own container (compose file, stack file)
BINDING = "dockvol.binding"
GROUP = "dockvol.group"
PROJECT = "dockvol.project"  # the project that owns it (projects.py); absent on a managed object: `default`
MOVED_FROM = "dockvol.moved-from"  # on a rename's copy: the volume it replaces (no new room in a quota)
OWNER = "dockvol.owner"  # host:pid of the worker that made a helper container
SPEC = "dockvol.spec"  # JSON: what a binding or group was asked for, beyond what the engine shows
OP = "dockvol.op"  # the operation that made it (intents.py)
START = "dockvol.start"  # "true" when the operation that made a container meant to start it
LOCK = "dockvol.lock"  # on a lock container: the resource it locks ("binding/web")
INTENT = "dockvol.intent"  # on a lock container: JSON {kind, keys, args} of the operation holding it
LOCKED_AT = "dockvol.locked-at"
FILLING = "dockvol.filling"  # on a volume being filled by an operation (its id): incomplete until it ends
ENGINE_ANONYMOUS = "com.docker.volume.anonymous"  # set by engines with API 1.42 and later

_ENGINE_PICKED_NAME = re.compile(r"[0-9a-f]{64}")


def user_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels a client sees: not dockvol's own, nor the engine's mark of a volume it named
    (engines from API 1.42 set it, 20.10 does not: `anonymous` says it alike on every engine)."""
    return {k: v for k, v in labels.items() if not k.startswith(PREFIX) and k != ENGINE_ANONYMOUS}


def is_managed(labels: Mapping[str, str]) -> bool:
    return labels.get(MANAGED) == "true"


def is_anonymous(name: str, labels: Mapping[str, str]) -> bool:
    """The engine picked the name. dockvol's own label decides for its volumes; for others,
    the engine's label where it sets one, else the shape of the name (engine 20.10 sets none)."""
    if ANONYMOUS in labels:
        return labels[ANONYMOUS] == "true"
    return ENGINE_ANONYMOUS in labels or bool(_ENGINE_PICKED_NAME.fullmatch(name))


def identity(record: VolumeRecord) -> str:
    """What tells this volume from one made again under its name: the one-time label dockvol put
    on it, else its creation time (which engine 20.10 moves when the volume's top level changes,
    so an identity without the label can look new when it is not)."""
    return record.labels.get(CREATE_ID) or f"created {record.created_at}"
