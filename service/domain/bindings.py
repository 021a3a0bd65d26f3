"""Bindings: containers bound to storage, made, replaced and removed without losing data.

Docker fixes a container's mounts when it is created, so changing a binding means recreating its
container; volumes and host paths are what carry the data across.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from ..engine.port import ContainerRecord, ContainerSpec, Engine, MountRecord
from ..errors import Conflict, DockvolError, Forbidden, InvalidInput, NotFound
from . import labels as L
from .mounts import MountPlanner, MountRequest, Prepared, check_unique
from .policy import ContainerPolicy, create_container
from .sharing import Membership

log = logging.getLogger(__name__)
HIDDEN_ROLES = ("infra", "helper")  # dockvol's own containers are not bindings


@dataclass(frozen=True)
class BindingSpec:
    name: str
    image: str
    command: tuple[str, ...] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[MountRequest, ...] = ()
    network: str | None = None
    sharing_group: str | None = None
    sharing_mode: str = "rw"
    restart: str = "unless-stopped"
    start: bool | None = None  # None: create starts; replace keeps the old container's state


@dataclass(frozen=True)
class Binding:
    name: str
    id: str
    image: str
    command: tuple[str, ...] | None
    environment: Mapping[str, str] | None  # None for containers dockvol did not make
    labels: Mapping[str, str]
    network: str
    sharing_group: str | None
    sharing_mode: str | None
    restart: str | None  # None for containers dockvol did not create
    state: str
    created_at: str | None
    managed: bool
    mounts: tuple[MountRecord, ...]


@dataclass(frozen=True)
class BindingQuery:
    volume: str | None = None
    sharing_group: str | None = None
    state: str | None = None
    labels: Sequence[str] = ()


def to_binding(c: ContainerRecord) -> Binding:
    managed = L.is_managed(c.labels)
    spec = json.loads(c.labels.get(L.SPEC, "{}")) if managed else {}
    return Binding(
        name=c.name, id=c.id, image=spec.get("image", c.image),
        command=tuple(spec["command"]) if spec.get("command") is not None else None,
        environment=spec.get("environment", {}) if managed else None,
        labels=L.user_labels(c.labels), network=c.network,
        sharing_group=c.labels.get(L.GROUP) if managed else None,
        sharing_mode=spec.get("sharing_mode") if c.labels.get(L.GROUP) else None,
        restart=spec.get("restart", "no") if managed else None,
        state=c.state, created_at=c.created_at, managed=managed,
        mounts=tuple(sorted(c.mounts, key=lambda m: m.target)),
    )


class Bindings:
    def __init__(
        self, engine: Engine, planner: MountPlanner, policy: ContainerPolicy,
        membership: Callable[[str, str], Membership],
    ) -> None:
        self._engine = engine
        self._planner = planner
        self._policy = policy
        self._membership = membership

    def list(self, query: BindingQuery) -> list[Binding]:
        labels = [*query.labels, *([f"{L.GROUP}={query.sharing_group}"] if query.sharing_group else [])]
        found = self._engine.list_containers(volume=query.volume, labels=labels)
        return sorted(
            (to_binding(c) for c in found if _is_binding(c) and query.state in (None, c.state)),
            key=lambda b: b.name,
        )

    def get(self, name: str) -> Binding:
        return to_binding(self._record(name))

    def create(self, spec: BindingSpec) -> Binding:
        if self._engine.list_containers(name=spec.name):
            raise Conflict(f"a container named {spec.name} exists already")
        with self._planner.exclusive(spec.mounts):
            container, prepared = self._prepare(spec, reuse={}, replacing=None)
            made = None
            try:
                made = create_container(self._engine, container)
                if spec.start is not False:
                    self._start_new(spec.name)
            except DockvolError:
                self._discard(made, prepared)
                raise
        return self.get(spec.name)

    def replace(self, name: str, spec: BindingSpec, precondition: Callable[[Binding], None]) -> Binding:
        old = self._owned(name, precondition)
        carried = {m.target: m.name for m in old.mounts if m.type == "volume" and m.name in self._anonymous_of(name)}
        with self._planner.exclusive(spec.mounts):
            container, prepared = self._prepare(spec, reuse=carried, replacing=old.id)
            was_running = old.state == "running"
            aside = f"dockvol-replaced-{old.id[:12]}"
            made = None
            try:
                if was_running:
                    self._engine.stop_container(old.id)
                self._engine.rename_container(old.id, aside)
                made = create_container(self._engine, container)
                if spec.start if spec.start is not None else was_running:
                    self._start_new(name)
            except DockvolError:
                self._discard(made, prepared)
                self._restore(old, aside, was_running)
                raise
        self._engine.remove_container(old.id)
        return self.get(name)

    def delete(self, name: str, remove_anonymous_volumes: bool, precondition: Callable[[Binding], None]) -> None:
        binding = self._owned(name, precondition)
        doomed = self._anonymous_of(name) & {m.name for m in binding.mounts} if remove_anonymous_volumes else set()
        self._engine.remove_container(binding.id)
        for volume in sorted(doomed):
            try:
                self._engine.remove_volume(volume)
            except Conflict:  # another container mounts it now: it is no longer this binding's alone
                log.info("kept anonymous volume %s of %s: still in use", volume, name)

    def start(self, name: str) -> Binding:
        binding = self._owned(name)
        self._planner.start(binding.id, binding.mounts)
        return self.get(name)

    def stop(self, name: str) -> Binding:
        self._engine.stop_container(self._owned(name).id)
        return self.get(name)

    # -- helpers -------------------------------------------------------------------------------

    def _start_new(self, name: str) -> None:
        """Start the container just made under `name`, its host paths walked again first."""
        made = self._record(name)
        self._planner.start(made.id, made.mounts)

    def _record(self, name: str) -> ContainerRecord:
        found = [c for c in self._engine.list_containers(name=name) if _is_binding(c)]
        if not found:
            raise NotFound(f"binding {name} does not exist")
        return found[0]

    def _owned(self, name: str, precondition: Callable[[Binding], None] = lambda b: None) -> Binding:
        binding = self.get(name)
        precondition(binding)
        if not binding.managed:
            raise Forbidden(f"container {name} was not created by dockvol; it is read-only here")
        return binding

    def _anonymous_of(self, name: str) -> set[str]:
        owned = [f"{L.MANAGED}=true", f"{L.ANONYMOUS}=true", f"{L.BINDING}={name}"]
        return {v.name for v in self._engine.list_volumes(labels=owned)}

    def _prepare(self, spec: BindingSpec, reuse: Mapping[str, str], replacing: str | None) -> tuple[ContainerSpec, Prepared]:
        image = self._policy.image(spec.image)
        member = self._membership(spec.sharing_group, spec.sharing_mode) if spec.sharing_group else None
        network = member.network if member and member.network else self._policy.network(spec.network)
        if member and member.network and spec.network is not None:
            raise InvalidInput("network", f"members of {spec.sharing_group} share its network")
        check_unique(spec.mounts, member.targets if member else ())
        self._policy.ensure_image(image)
        prepared = self._planner.prepare(spec.mounts, {L.BINDING: spec.name}, reuse, replacing)
        stored = {"image": image, "command": spec.command, "environment": dict(spec.environment),
                  "sharing_mode": spec.sharing_mode if member else None, "restart": spec.restart}
        labels = {**spec.labels, L.MANAGED: "true", L.ROLE: "binding", L.BINDING: spec.name, L.SPEC: json.dumps(stored)}
        if member:
            labels[L.GROUP] = member.group
        return ContainerSpec(
            name=spec.name, image=image, command=spec.command, environment=spec.environment, labels=labels,
            mounts=prepared.mounts, network=network, ipc=member.ipc if member else None,
            pid=member.pid if member else None, volumes_from=member.volumes_from if member else (),
            restart=spec.restart,
        ), prepared

    def _discard(self, made: str | None, prepared: Prepared) -> None:
        if made is not None:
            try:
                self._engine.remove_container(made)
            except DockvolError:
                log.warning("could not remove container %s after a failed create", made)
        prepared.undo()

    def _restore(self, old: Binding, aside: str, was_running: bool) -> None:
        try:
            if self._engine.list_containers(name=aside):
                self._engine.rename_container(old.id, old.name)
            if was_running:
                self._engine.start_container(old.id)
        except DockvolError:
            log.error("could not restore binding %s (container %s) after a failed replace", old.name, old.id)


def _is_binding(c: ContainerRecord) -> bool:
    return c.labels.get(L.ROLE) not in HIDDEN_ROLES if L.is_managed(c.labels) else True
