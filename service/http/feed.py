"""The node's change feed (domain/watch.py) over its services: every resource shown as GET shows
it, read from the view of the engine as it stands right after each event. The app builds it once
(app.py); GET /api/v1/events streams it (events.py)."""

from __future__ import annotations

from collections.abc import Callable

from ..domain.bindings import BindingQuery
from ..domain.changes import BACKUP, BINDING, GROUP, RESTORE, VOLUME, Key
from ..domain.record_feed import RecordFeed
from ..domain.volumes import VolumeQuery
from ..domain.watch import Watch
from ..engine.viewed import ViewedEngine
from ..errors import NotFound
from ..json_types import JSON
from ..wiring import Services
from .backups.schemas import backup_document, restore_document
from .documents import binding_document, group_document, volume_document


def new_watch(services: Services, engine: ViewedEngine, observe: Callable[[str, float], None]) -> Watch:
    """The node's change feed, showing each resource as GET does; it reads them from the view of
    the engine (`engine`) as it stands right after each event."""
    return Watch(_representer(services, engine), _everything(services, engine), observe)


def new_record_feed(services: Services) -> RecordFeed:
    """The watch's second source: backup runs and restores, as their records change."""
    return RecordFeed(_records(services), services.watch)


def _records(services: Services) -> Callable[[], dict[Key, tuple[JSON, int]]]:
    """Every backup run and restore recorded on this node, as GET shows it, with its record's time."""

    def read() -> dict[Key, tuple[JSON, int]]:
        node = services.nodes.here()
        found: dict[Key, tuple[JSON, int]] = {
            (BACKUP, b.id): (backup_document(b, node), at) for b, at in services.backups.records()
        }
        found.update(((RESTORE, r.id), (restore_document(r, node), at)) for r, at in services.restores.records())
        return found

    return read


def _representer(services: Services, engine: ViewedEngine) -> Callable[[Key], JSON | None]:
    """Read one resource the way GET shows it; None when it does not exist (or is hidden)."""

    def represent(key: Key) -> JSON | None:
        resource, name = key
        engine.trusted_scope()  # the view as it stands, right after the event
        try:
            if resource == VOLUME:
                return volume_document(services.volumes.get(name), services.nodes.here())
            if resource == BINDING:
                return binding_document(services.bindings.get(name), services.nodes.here())
            return group_document(services.sharing_groups.get(name), services.nodes.here())
        except NotFound:
            return None
        finally:
            engine.end_scope()

    return represent


def _everything(services: Services, engine: ViewedEngine) -> Callable[[], dict[Key, JSON]]:
    """Every resource the way the lists show it, by key."""

    def read() -> dict[Key, JSON]:
        engine.trusted_scope()
        try:
            node = services.nodes.here()
            found: dict[Key, JSON] = {
                (VOLUME, v.name): volume_document(v, node) for v in services.volumes.list(VolumeQuery())
            }
            bindings = services.bindings.list(BindingQuery())
            found.update(((BINDING, b.name), binding_document(b, node)) for b in bindings)
            found.update(((GROUP, g.name), group_document(g, node)) for g in services.sharing_groups.list())
            found.update((key, document) for key, (document, _) in _records(services)().items())
            return found
        finally:
            engine.end_scope()

    return read
