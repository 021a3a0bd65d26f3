"""Bindings: containers bound to storage, made, replaced and removed without losing data.

Docker fixes a container's mounts when it is created, so changing a binding means recreating its
container; volumes and host paths are what carry the data across.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..engine.port import ContainerRecord, ContainerSpec, Engine
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from . import labels as label
from . import versions
from .intents import Intent, Intents
from .mounts import Mount, MountPlanner, MountRequest, PreparedMounts, check_unique, remove_unused_volumes, shown_mounts
from .policy import ContainerPolicy, create_container
from .projects import project_of
from .sharing import Membership
from .versions import IfMatch

log = logging.getLogger(__name__)
HIDDEN_ROLES = ("infra", "helper", "lock")  # dockvol's own containers are not bindings
ASIDE = "dockvol-aside-"  # a binding's old container, mid-replace: dockvol-aside-OP-r (it ran) or -s


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
    project: str | None  # None: not dockvol's
    mounts: tuple[Mount, ...]

    @property
    def version(self) -> str:
        return versions.digest(self)


@dataclass(frozen=True)
class BindingQuery:
    volume: str | None = None
    sharing_group: str | None = None
    state: str | None = None
    labels: Sequence[str] = ()
    project: str | None = None


def to_binding(c: ContainerRecord) -> Binding:
    managed = label.is_managed(c.labels)
    spec = json.loads(c.labels.get(label.SPEC, "{}")) if managed else {}
    return Binding(
        name=c.name,
        id=c.id,
        image=spec.get("image", c.image),
        command=tuple(spec["command"]) if spec.get("command") is not None else None,
        environment=spec.get("environment", {}) if managed else None,
        labels=label.user_labels(c.labels),
        network=c.network,
        sharing_group=c.labels.get(label.GROUP) if managed else None,
        sharing_mode=spec.get("sharing_mode") if c.labels.get(label.GROUP) else None,
        restart=spec.get("restart", "no") if managed else None,
        state=c.state,
        created_at=c.created_at,
        managed=managed,
        project=project_of(c.labels),
        mounts=shown_mounts(c.mounts),
    )


class Bindings:
    """Every change runs as an intent (intents.py): locked per binding (and per named volume and
    sharing group it uses), recovered from the engine's state if it dies half-way."""

    def __init__(
        self,
        engine: Engine,
        planner: MountPlanner,
        policy: ContainerPolicy,
        membership: Callable[[str, str], Membership],
        intents: Intents,
    ) -> None:
        self._engine = engine
        self._planner = planner
        self._policy = policy
        self._membership = membership
        self._intents = intents
        intents.recoverer("binding.create", self._recover_create)
        intents.recoverer("binding.replace", self._recover_replace)

    def list(self, query: BindingQuery) -> list[Binding]:
        labels = [*query.labels, *([f"{label.GROUP}={query.sharing_group}"] if query.sharing_group else [])]
        found = self._engine.list_containers(volume=query.volume, labels=labels)
        named = {c.name for c in found}
        shown = (_as_itself(c) for c in found if _is_binding(c) and (not _is_aside(c) or _owner_of(c) not in named))
        found_ = (to_binding(c) for c in shown if query.state in (None, c.state))
        return sorted((b for b in found_ if query.project in (None, b.project)), key=lambda b: b.name)

    def get(self, name: str) -> Binding:
        return to_binding(self._record(name))

    def create(self, spec: BindingSpec) -> Binding:
        with (
            self._intents.run("binding.create", _keys(spec.name, spec), name=spec.name) as intent,
            self._planner.exclusive(spec.mounts),
        ):
            if self._engine.list_containers(name=spec.name):
                raise Conflict(f"a container named {spec.name} exists already")
            start = spec.start is not False
            intent.begin()
            container, prepared = self._prepare(spec, {}, None, intent, start)
            made = create_container(self._engine, container)
            self._planner.confirm_volumes(prepared, made)
            if start:
                self._start_new(spec.name)
        return self.get(spec.name)

    def replace(self, name: str, spec: BindingSpec, if_match: IfMatch | None = None) -> Binding:
        with (
            self._intents.run("binding.replace", _keys(name, spec), name=name) as intent,
            self._planner.exclusive(spec.mounts),
        ):
            old = self._owned(name, if_match)
            carried = {
                m.target: m.name for m in old.mounts if m.type == "volume" and m.name in self._anonymous_of(name)
            }
            was_running = old.state == "running"
            start = spec.start if spec.start is not None else was_running
            intent.begin()
            container, prepared = self._prepare(spec, carried, old.id, intent, start)
            # The old container steps aside under a name that says whether it ran, so that a
            # recovery can put it back as it was; readers see it under the binding's name meanwhile.
            self._engine.rename_container(old.id, f"{ASIDE}{intent.op}-{'r' if was_running else 's'}")
            if was_running:
                self._engine.stop_container(old.id)
            made = create_container(self._engine, container)
            self._planner.confirm_volumes(prepared, made)
            if start:
                self._start_new(name)
            self._engine.remove_container(old.id)
        return self.get(name)

    def delete(self, name: str, remove_anonymous_volumes: bool, if_match: IfMatch | None = None) -> None:
        # Needs no recovery: until the container goes nothing has changed, and once it has gone
        # the binding is deleted; anonymous volumes a dead delete did not reach stay (prunable).
        with self._intents.run("binding.delete", [f"binding/{name}"], name=name):
            binding = self._owned(name, if_match)
            doomed = self._anonymous_of(name) & {m.name for m in binding.mounts} if remove_anonymous_volumes else set()
            self._engine.remove_container(binding.id)
            for volume in sorted(doomed):
                try:
                    self._engine.remove_volume(volume)
                except Conflict:  # another container mounts it now: it is no longer this binding's alone
                    log.info("kept anonymous volume %s of %s: still in use", volume, name)

    def start(self, name: str) -> Binding:
        with self._intents.run("binding.start", [f"binding/{name}"]):
            binding = self._owned(name)
            self._planner.start(binding.id, binding.mounts)
        return self.get(name)

    def stop(self, name: str) -> Binding:
        with self._intents.run("binding.stop", [f"binding/{name}"]):
            self._engine.stop_container(self._owned(name).id)
        return self.get(name)

    # -- recovery (intents.py): from the engine's state alone, idempotent ----------------------------

    def _recover_create(self, intent: Intent) -> None:
        made = self._made_by(intent)
        if made is None or not _committed(made):
            if made is not None:
                self._engine.remove_container(made.id)
            remove_unused_volumes(self._engine, intent.op)
            self._planner.remove_made(intent.args.get("dirs", ()))

    def _recover_replace(self, intent: Intent) -> None:
        """Forward once the new container exists and runs (or was not to run); else back."""
        name = intent.args["name"]
        made = self._made_by(intent)
        aside = [
            c
            for c in self._engine.list_containers(labels=[f"{label.BINDING}={name}"])
            if c.name.startswith(f"{ASIDE}{intent.op}-")
        ]
        if made is not None and _committed(made):
            for c in aside:
                self._engine.remove_container(c.id)
            return
        if made is not None:
            self._engine.remove_container(made.id)
        for c in aside:
            self._engine.rename_container(c.id, name)
            if c.name.endswith("-r") and c.state != "running":
                self._engine.start_container(c.id)
        remove_unused_volumes(self._engine, intent.op)
        self._planner.remove_made(intent.args.get("dirs", ()))

    def _made_by(self, intent: Intent) -> ContainerRecord | None:
        found = [
            c for c in self._engine.list_containers(name=intent.args["name"]) if c.labels.get(label.OP) == intent.op
        ]
        return found[0] if found else None

    # -- helpers -------------------------------------------------------------------------------

    def _start_new(self, name: str) -> None:
        """Start the container just made under `name`, its host paths walked again first."""
        made = self._record(name)
        self._planner.start(made.id, made.mounts)

    def _record(self, name: str) -> ContainerRecord:
        found = [c for c in self._engine.list_containers(name=name) if _is_binding(c)]
        if not found:  # mid-replace, the binding's container stands aside: show it as itself
            found = [
                _as_itself(c) for c in self._engine.list_containers(labels=[f"{label.BINDING}={name}"]) if _is_aside(c)
            ]
        if not found:
            raise NotFound(f"binding {name} does not exist")
        return found[0]

    def _owned(self, name: str, if_match: IfMatch | None = None) -> Binding:
        binding = self.get(name)
        versions.check(if_match, binding.version, f"binding {name}")
        if not binding.managed:
            raise Forbidden(f"container {name} was not created by dockvol; it is read-only here")
        return binding

    def _anonymous_of(self, name: str) -> set[str]:
        owned = [f"{label.MANAGED}=true", f"{label.ANONYMOUS}=true", f"{label.BINDING}={name}"]
        return {v.name for v in self._engine.list_volumes(labels=owned)}

    def _prepare(
        self,
        spec: BindingSpec,
        reuse: Mapping[str, str],
        replacing: str | None,
        intent: Intent,
        start: bool,
    ) -> tuple[ContainerSpec, PreparedMounts]:
        image = self._policy.image(spec.image)
        member = self._membership(spec.sharing_group, spec.sharing_mode) if spec.sharing_group else None
        network = member.network if member and member.network else self._policy.network(spec.network)
        if member and member.network and spec.network is not None:
            raise InvalidInput("network", f"members of {spec.sharing_group} share its network")
        check_unique(spec.mounts, member.targets if member else ())
        self._policy.ensure_image(image)
        prepared = self._planner.prepare(
            spec.mounts,
            {label.BINDING: spec.name, **intent.label},
            lambda dirs: self._intents.note(intent, dirs=dirs),
            reuse,
            replacing,
        )
        stored = {
            "image": image,
            "command": spec.command,
            "environment": dict(spec.environment),
            "sharing_mode": spec.sharing_mode if member else None,
            "restart": spec.restart,
        }
        labels = {
            **spec.labels,
            label.MANAGED: "true",
            label.ROLE: "binding",
            label.BINDING: spec.name,
            label.SPEC: json.dumps(stored),
            label.START: str(start).lower(),
            **intent.label,
        }
        if member:
            labels[label.GROUP] = member.group
        return ContainerSpec(
            name=spec.name,
            image=image,
            command=spec.command,
            environment=spec.environment,
            labels=labels,
            mounts=prepared.mounts,
            network=network,
            ipc=member.ipc if member else None,
            pid=member.pid if member else None,
            volumes_from=member.volumes_from if member else (),
            restart=spec.restart,
        ), prepared


def _keys(name: str, spec: BindingSpec) -> list[str]:
    """What a create or replace locks: the binding, the named volumes it mounts, its group."""
    volumes = [f"volume/{m.source}" for m in spec.mounts if m.type == "volume" and m.source]
    return [f"binding/{name}", *volumes, *([f"group/{spec.sharing_group}"] if spec.sharing_group else [])]


def _committed(c: ContainerRecord) -> bool:
    return c.labels.get(label.START) == "false" or c.state == "running"


def _is_aside(c: ContainerRecord) -> bool:
    return label.is_managed(c.labels) and c.name.startswith(ASIDE)


def _owner_of(c: ContainerRecord) -> str:
    return c.labels.get(label.BINDING, "")


def _as_itself(c: ContainerRecord) -> ContainerRecord:
    return replace(c, name=_owner_of(c)) if _is_aside(c) else c


def binding_name(c: ContainerRecord) -> str | None:
    """The binding a container is shown as (itself, or the one it stands aside for); None if none."""
    return _as_itself(c).name if _is_binding(c) else None


def _is_binding(c: ContainerRecord) -> bool:
    return c.labels.get(label.ROLE) not in HIDDEN_ROLES if label.is_managed(c.labels) else True
