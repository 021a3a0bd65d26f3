"""Projects: the unit of isolation (docs/design.md, "Projects"). The one place that decides what a
caller's project may see and make: `ProjectScope`, the engine port as one project sees it, which
every use case is given instead of the engine itself.

- The caller's project is set by the HTTP layer for the length of one operation (`acting_for`);
  outside any request (the reconciler, the view's listeners) it is `*`, which sees everything.
- Reads: a project sees the managed volumes and containers that carry its `dockvol.project`
  label (`default`: those with none, made before projects existed); objects dockvol did not
  create are seen by `*` only. Lock and helper containers are dockvol's own machinery and are
  seen by all (no use case shows them). So another project's object is simply absent: each use
  case answers for it exactly as for a missing one, with the same words.
- Writes: every volume and binding or infrastructure container dockvol creates is labelled with
  the caller's project (a `*` caller's: the label the use case set, else `default`); a project
  with a quota for that kind counts what it holds and creates under one engine-wide lock per
  project (intents.py's lock containers; in fleet mode one fleet-wide lock, fleet/locks.py, and
  the other nodes' holdings added: `Projects.elsewhere`), so N concurrent creates against room
  for M give M.
- Bytes: a project's measured volume bytes (measured.py); while they are over its `bytes` quota,
  its new volumes are refused (the writes that would pass it: byte_quota.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from ..config import ALL_PROJECTS, DEFAULT_PROJECT, ProjectConfig
from ..engine.port import ContainerRecord, ContainerSpec, Engine, PruneReport, VolumeRecord
from ..errors import Conflict, EngineUnavailable, Forbidden, InvalidInput, NotFound, QuotaExceeded
from . import labels as label
from .measured import Meter

COUNTED_ROLES = {"binding": "bindings", "infra": "sharing_groups"}  # container role -> quota it counts in
MACHINERY = ("lock", "helper")  # dockvol's own containers: no project's, seen by all
QUOTA_LOCK_WAIT = 60.0  # seconds a create waits for its project's quota lock (a short hold)
STAGING_PREFIX = "dockvol-import-"  # an import's staging volume (volume_data.py): no new room in a quota

_caller: ContextVar[str] = ContextVar("dockvol_project", default=ALL_PROJECTS)


@contextlib.contextmanager
def acting_for(project: str) -> Iterator[None]:
    """Run what follows as a caller of `project` (the HTTP layer wraps each operation in this)."""
    token = _caller.set(project)
    try:
        yield
    finally:
        _caller.reset(token)


def current() -> str:
    """The caller's project; `*` outside any request."""
    return _caller.get()


def project_of(labels: Mapping[str, str]) -> str | None:
    """The project an object belongs to: its label; `default` for a managed one without; None for
    one dockvol did not create."""
    if not label.is_managed(labels):
        return None
    return labels.get(label.PROJECT) or DEFAULT_PROJECT


def sees(project: str, labels: Mapping[str, str]) -> bool:
    return project == ALL_PROJECTS or project_of(labels) == project


def owner(labels: Mapping[str, str]) -> str:
    """The project a new object of the caller's is born in: the caller's; a `*` caller's, the one
    the use case chose (a move to another project), else `default`."""
    caller = current()
    return caller if caller != ALL_PROJECTS else labels.get(label.PROJECT) or DEFAULT_PROJECT


@dataclass(frozen=True)
class Usage:
    volumes: int
    bindings: int
    sharing_groups: int
    bytes: int
    bytes_measured_at: str
    unreachable: tuple[str, ...] = ()  # fleet mode: nodes that did not say what the project holds there


@dataclass(frozen=True)
class Counted:
    """What a project holds on the fleet's other nodes (fleet/quota.py asks them), and the nodes
    that did not say."""

    volumes: int = 0
    bindings: int = 0
    sharing_groups: int = 0
    bytes: int = 0
    measured_at: str | None = None  # the oldest of their measurements
    unreachable: tuple[str, ...] = ()


class Projects:
    """The configured projects, and what each holds."""

    def __init__(
        self,
        engine: Engine,
        configured: Mapping[str, ProjectConfig],
        known: Sequence[str] = (),
        usage_interval: float = 300.0,
    ) -> None:
        self._engine = engine
        self.meter = Meter(engine, usage_interval, project_of)
        self.configured = dict(configured)
        self._known = sorted({DEFAULT_PROJECT, *configured, *(p for p in known if p != ALL_PROJECTS)})
        self.elsewhere: Callable[[str], Counted] | None = None  # fleet mode: what the other nodes hold

    def counted_elsewhere(self, project: str) -> Counted:
        """What the project holds on the fleet's other nodes: nothing outside fleet mode."""
        return Counted() if self.elsewhere is None else self.elsewhere(project)

    def names(self) -> list[str]:
        """Those the caller may see: every project for `*`, else its own."""
        caller = current()
        return list(self._known) if caller == ALL_PROJECTS else [caller]

    def quota(self, project: str) -> Mapping[str, int]:
        return self.configured.get(project, ProjectConfig()).quota

    def usage(self, project: str) -> Usage:
        """What the project holds fleet-wide: here (`here`) and, in fleet mode, on every other node
        that answers (those that do not are named)."""
        here = self.here(project)
        if self.elsewhere is None:
            return here
        there = self.elsewhere(project)
        return Usage(
            here.volumes + there.volumes,
            here.bindings + there.bindings,
            here.sharing_groups + there.sharing_groups,
            here.bytes + there.bytes,
            min(here.bytes_measured_at, there.measured_at or here.bytes_measured_at),
            there.unreachable,
        )

    def here(self, project: str) -> Usage:
        """What the project holds on this node's engine, from two listings (the engine's, or the
        view's in a read), and its bytes as last measured (never longer ago than the interval)."""
        volumes = [v for v in self._engine.list_volumes(labels=[f"{label.MANAGED}=true"]) if _counts_as(v, project)]
        containers = self._engine.list_containers(labels=[f"{label.MANAGED}=true"])
        held = _held(containers, project)
        measured = self.meter.measure()
        return Usage(
            len(volumes), len(held["bindings"]), len(held["sharing_groups"]), measured.used(project), measured.at
        )

    def get(self, name: str) -> str:
        """`name`, if the caller may see it; else NotFound, as for a project that does not exist."""
        if name not in self.names():
            raise NotFound(f"project {name} does not exist")
        return name

    def creating_in(self, project: str | None) -> ContextManager[None]:
        """Where a create lands: the caller's project, or (the operator's, `*`) the one it names,
        made there as that project makes it (its bind roots, its quota, its label)."""
        caller = current()
        if project is None or project == caller:
            return contextlib.nullcontext()
        if caller != ALL_PROJECTS:
            raise Forbidden("only a token of the project `*` creates in another project")
        if project not in self._known:
            raise InvalidInput("project", f"project {project} is not configured")
        return acting_for(project)


def _counts_as(v: VolumeRecord, project: str) -> bool:
    return project_of(v.labels) == project and not v.name.startswith(STAGING_PREFIX)


def _held(containers: Sequence[ContainerRecord], project: str) -> dict[str, set[str]]:
    """Quota kind -> names of the bindings and groups the project holds (a binding mid-replace
    has two containers, one name)."""
    held: dict[str, set[str]] = {"bindings": set(), "sharing_groups": set()}
    for c in containers:
        kind = COUNTED_ROLES.get(c.labels.get(label.ROLE, ""))
        if kind and project_of(c.labels) == project:
            held[kind].add(c.labels.get(label.BINDING if kind == "bindings" else label.GROUP, c.name))
    return held


class ProjectScope:
    """The engine port as the caller's project sees it (see the module's notes). Methods not
    defined here pass through: they act on names or ids a filtered read gave."""

    def __init__(self, engine: Engine, projects: Projects) -> None:
        self.unscoped = engine  # every project's objects: for checks that must see them all (host paths)
        self._projects = projects
        self.lock: Callable[[str], ContextManager[Any]] = lambda key: contextlib.nullcontext()  # wiring sets it

    def __getattr__(self, operation: str) -> Any:
        return getattr(self.unscoped, operation)

    # -- reads -------------------------------------------------------------------------------------

    def list_volumes(self, labels: Sequence[str] = (), driver: str | None = None) -> list[VolumeRecord]:
        project = current()
        return [v for v in self.unscoped.list_volumes(labels, driver) if sees(project, v.labels)]

    def inspect_volume(self, name: str) -> VolumeRecord:
        record = self.unscoped.inspect_volume(name)
        if not sees(current(), record.labels):
            raise NotFound("not found in the engine")
        return record

    def list_containers(
        self, volume: str | None = None, labels: Sequence[str] = (), name: str | None = None
    ) -> list[ContainerRecord]:
        project = current()
        found = self.unscoped.list_containers(volume, labels, name)
        return [c for c in found if _machinery(c.labels) or sees(project, c.labels)]

    # -- writes ------------------------------------------------------------------------------------

    def create_volume(
        self, name: str | None, driver: str, driver_opts: Mapping[str, str], labels: Mapping[str, str]
    ) -> VolumeRecord:
        if not label.is_managed(labels):
            return self.unscoped.create_volume(name, driver, driver_opts, labels)
        labels, project = self._stamped(labels)
        kinds = [k for k in ("bytes", "volumes") if k in self._projects.quota(project)]
        room = bool(kinds) and not _no_new_room(name, labels, project, self)
        with self._counted(project, kinds) if room else contextlib.nullcontext():
            return self.unscoped.create_volume(name, driver, driver_opts, labels)

    def create_container(self, spec: ContainerSpec) -> str:
        kind = COUNTED_ROLES.get(spec.labels.get(label.ROLE, ""))
        if kind is None or not label.is_managed(spec.labels):
            return self.unscoped.create_container(spec)
        labels, project = self._stamped(spec.labels)
        spec = replace(spec, labels=labels)
        named = labels.get(label.BINDING if kind == "bindings" else label.GROUP, spec.name)
        room = kind in self._projects.quota(project)
        with self._counted(project, [kind], named) if room else contextlib.nullcontext():
            try:
                return self.unscoped.create_container(spec)
            except Conflict:  # the engine's words could name the holder: say what a missing name's check says
                raise Conflict(f"a container named {spec.name} exists already") from None

    def prune_volumes(self, labels: Sequence[str]) -> PruneReport:
        """The caller's project's only; `default`'s include the managed volumes from before
        projects (no label: the engine cannot filter on a label's absence, so they are listed and
        removed one by one)."""
        project = current()
        if project == ALL_PROJECTS:
            return self.unscoped.prune_volumes(labels)
        report = self.unscoped.prune_volumes([*labels, f"{label.PROJECT}={project}"])
        if project != DEFAULT_PROJECT:
            return report
        unlabelled = [v.name for v in self.unscoped.list_volumes(labels) if label.PROJECT not in v.labels]
        if not unlabelled:
            return report
        used = {m.name for c in self.unscoped.list_containers() for m in c.mounts if m.type == "volume"}
        sizes = self.unscoped.volume_sizes()
        deleted, reclaimed = list(report.volumes_deleted), report.space_reclaimed
        for name in unlabelled:
            if name in used:
                continue
            try:
                self.unscoped.remove_volume(name)
            except (NotFound, Conflict):  # gone meanwhile, or taken by a container since the listing
                continue
            deleted.append(name)
            reclaimed += max(sizes.get(name, 0), 0)
        return PruneReport(tuple(deleted), reclaimed)

    # -- helpers -----------------------------------------------------------------------------------

    def _stamped(self, labels: Mapping[str, str]) -> tuple[dict[str, str], str]:
        """The labels with the owning project (`owner`)."""
        project = owner(labels)
        return {**labels, label.PROJECT: project}, project

    @contextlib.contextmanager
    def _counted(self, project: str, quotas: Sequence[str], name: str | None = None) -> Iterator[None]:
        """Count, then create, under the project's lock: atomic across workers and processes. `name`:
        a binding's or group's name, which a replace's new container shares (no new room)."""
        limits = self._projects.quota(project)
        with self.lock(f"quota/{project}"):  # fleet mode: one lock for the whole fleet (fleet/locks.py)
            there = self._projects.counted_elsewhere(project) if set(quotas) - {"bytes"} else Counted()
            if there.unreachable:
                raise EngineUnavailable(
                    f"the quota of {project} cannot be counted fleet-wide: not heard from "
                    f"{', '.join(there.unreachable)}",
                    nodes=list(there.unreachable),
                )
            for quota in quotas:
                limit = limits[quota]
                if quota == "bytes":  # as last measured: growth made by containers shows within the interval
                    used = self._projects.meter.measure().used(project)
                    fits = used <= limit
                elif quota == "volumes":
                    volumes = self.unscoped.list_volumes([f"{label.MANAGED}=true"])
                    used = sum(1 for v in volumes if _counts_as(v, project)) + there.volumes
                    fits = used < limit
                else:
                    held = _held(self.unscoped.list_containers(labels=[f"{label.MANAGED}=true"]), project)[quota]
                    used = len(held) + getattr(there, quota)
                    fits = name in held or used < limit
                if not fits:
                    raise QuotaExceeded(quota, limit, used)
            yield


def _machinery(labels: Mapping[str, str]) -> bool:
    return label.is_managed(labels) and labels.get(label.ROLE) in MACHINERY


def _no_new_room(name: str | None, labels: Mapping[str, str], project: str, scope: ProjectScope) -> bool:
    """An import's staging volume, or a rename's copy of a volume of the same project (the original
    goes when it is filled), takes no new room."""
    if name is not None and name.startswith(STAGING_PREFIX):
        return True
    moved = labels.get(label.MOVED_FROM)
    if not moved:
        return False
    try:
        return project_of(scope.unscoped.inspect_volume(moved).labels) == project
    except NotFound:
        return False


def unscoped(engine: Engine) -> Engine:
    """Every project's objects, for the checks that must see them all (bind sources may not
    overlap whoever's they are)."""
    found: Engine = getattr(engine, "unscoped", engine)
    return found
