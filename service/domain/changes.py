"""Which resources an engine event may have changed, for the watch (`GET /api/v1/events`).

A volume event touches that volume. A container event touches, before and after the change: the
binding it is shown as, its sharing group (as infrastructure or as a member), the volumes it
mounts (their `in_use` and `used_by`), and, for an operation's lock, the resource it locked (a
clone's copy is shown only once its lock goes). The watch then reads each resource again and
tells created, updated and deleted apart by what it showed before.
"""

from __future__ import annotations

from ..engine.port import ContainerRecord, EngineEvent
from . import labels as label
from .bindings import binding_name

VOLUME, BINDING, GROUP = "volume", "binding", "sharing-group"
BACKUP, RESTORE = "backup", "restore"  # not the engine's: dockvol's own records (record_feed.py)
_LOCKED = {"volume": VOLUME, "binding": BINDING, "group": GROUP}

Key = tuple[str, str]  # (resource, name)


def touched(event: EngineEvent, before: ContainerRecord | None, after: ContainerRecord | None) -> list[Key]:
    if event.type == "volume":
        return [(VOLUME, event.id)] if event.action in ("create", "destroy") else []
    keys: list[Key] = []
    for c in (before, after):
        if c is None:
            continue
        keys += [(VOLUME, m.name) for m in c.mounts if m.type == "volume" and m.name]
        role = c.labels.get(label.ROLE) if label.is_managed(c.labels) else None
        if role == "lock":
            kind, _, name = c.labels.get(label.LOCK, "").partition("/")
            if kind in _LOCKED and name:
                keys.append((_LOCKED[kind], name))
        elif role == "infra":
            keys.append((GROUP, c.labels.get(label.GROUP) or c.name))
        elif role != "helper":
            binding = binding_name(c)
            if binding:
                keys.append((BINDING, binding))
            if label.is_managed(c.labels) and c.labels.get(label.GROUP):
                keys.append((GROUP, c.labels[label.GROUP]))
    return list(dict.fromkeys(keys))
