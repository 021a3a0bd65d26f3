"""Sharing groups: an infrastructure container holds the group's mounts and namespaces, and
members (bindings) join it with volumes-from and container: namespace modes (docs/design.md section 5).
The group's name is its infrastructure container's name, as in `docker run --name infracon`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from ..engine.port import ContainerRecord, ContainerSpec, Engine
from ..errors import Conflict, InvalidInput, NotFound
from . import labels as label
from . import versions
from .intents import Intent, Intents
from .mounts import Mount, MountPlanner, MountRequest, remove_unused_volumes, shown_mounts
from .policy import ContainerPolicy, create_container
from .projects import project_of
from .versions import IfMatch

# The infrastructure container's process: it only waits, and leaves at once on SIGTERM.
WAIT = ("sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done")


@dataclass(frozen=True)
class Membership:
    """How a member joins: the engine modes pointing at the infrastructure container."""

    group: str
    network: str | None
    ipc: str | None
    pid: str | None
    volumes_from: tuple[str, ...]
    targets: tuple[str, ...]


@dataclass(frozen=True)
class Infra:
    """A group's infrastructure container, as dockvol shows it."""

    name: str
    id: str
    state: str
    image: str


@dataclass(frozen=True)
class SharingGroup:
    name: str
    share: tuple[str, ...]
    mounts: tuple[Mount, ...]
    infra: Infra
    members: tuple[str, ...]
    created_at: str | None
    project: str | None = None

    @property
    def version(self) -> str:
        return versions.digest(self)


class SharingGroups:
    def __init__(
        self,
        engine: Engine,
        planner: MountPlanner,
        policy: ContainerPolicy,
        infra_image: str,
        intents: Intents,
    ) -> None:
        self._engine = engine
        self._planner = planner
        self._policy = policy
        self._infra_image = infra_image
        self._intents = intents
        intents.recoverer("group.create", self._recover_create)
        intents.recoverer("group.delete", self._recover_delete)

    def list(self, project: str | None = None) -> list[SharingGroup]:
        """Every group the caller sees; `project`: only that project's."""
        managed = self._engine.list_containers(labels=[f"{label.MANAGED}=true"])
        found = (_group(c, managed) for c in managed if _is_infra(c))
        return sorted((g for g in found if project in (None, g.project)), key=lambda g: g.name)

    def get(self, name: str) -> SharingGroup:
        infra = self._infra(name)
        members = self._engine.list_containers(labels=[f"{label.MANAGED}=true", f"{label.GROUP}={name}"])
        return _group(infra, members)

    def create(self, name: str, mounts: Sequence[MountRequest], share: Sequence[str]) -> SharingGroup:
        volumes = [f"volume/{m.source}" for m in mounts if m.type == "volume" and m.source]
        with (
            self._intents.run("group.create", [f"group/{name}", f"binding/{name}", *volumes], name=name) as intent,
            self._planner.exclusive(mounts),
        ):
            if self._engine.list_containers(name=name):
                raise Conflict(f"a container named {name} exists already")
            self._policy.ensure_image(self._infra_image)
            network = self._policy.network(None)
            labels = {
                label.MANAGED: "true",
                label.ROLE: "infra",
                label.GROUP: name,
                label.SPEC: json.dumps({"share": sorted(share)}),
                **intent.label,
            }
            intent.begin()
            prepared = self._planner.prepare(
                mounts, {label.GROUP: name, **intent.label}, lambda dirs: self._intents.note(intent, dirs=dirs)
            )
            spec = ContainerSpec(
                name=name,
                image=self._infra_image,
                command=WAIT,
                labels=labels,
                mounts=prepared.mounts,
                network=network,
                ipc="shareable" if "ipc" in share else None,
                restart="unless-stopped",
            )
            made = create_container(self._engine, spec)
            self._planner.confirm_volumes(prepared, made)
            infra = self._infra(name)
            self._planner.start(infra.id, infra.mounts)
        return self.get(name)

    def delete(self, name: str, cascade: bool, if_match: IfMatch | None = None) -> None:
        # The group's lock keeps new members out (joining takes it too) while this runs.
        with self._intents.run("group.delete", [f"group/{name}"], name=name, cascade=cascade) as intent:
            group = self.get(name)
            versions.check(if_match, group.version, f"sharing group {name}")
            if group.members and not cascade:
                raise Conflict(
                    f"sharing group {name} has members: {', '.join(group.members)}", members=list(group.members)
                )
            intent.begin()
            self._recover_delete_of(name, cascade)

    def _recover_create(self, intent: Intent) -> None:
        name = intent.args["name"]
        made = [c for c in self._engine.list_containers(name=name) if c.labels.get(label.OP) == intent.op]
        if made and made[0].state == "running":
            return
        for c in made:
            self._engine.remove_container(c.id)
        remove_unused_volumes(self._engine, intent.op)
        self._planner.remove_made(intent.args.get("dirs", ()))

    def _recover_delete(self, intent: Intent) -> None:
        """Forward: a cascade delete that began is finished (members first, then the group); a
        plain one removes only the infrastructure container, after finding no members."""
        self._recover_delete_of(intent.args["name"], intent.args.get("cascade", False))

    def _recover_delete_of(self, name: str, cascade: bool) -> None:
        members = self._engine.list_containers(
            labels=[f"{label.MANAGED}=true", f"{label.ROLE}=binding", f"{label.GROUP}={name}"]
        )
        if members and not cascade:
            return
        for c in members:
            with contextlib.suppress(NotFound):  # a member's own delete may have got there first
                self._engine.remove_container(c.id)
        for c in self._engine.list_containers(name=name):
            if _is_infra(c):
                self._engine.remove_container(c.id)

    def membership(self, name: str, mode: str) -> Membership:
        """How to join `name`; starts its infrastructure container if it is stopped."""
        try:
            infra = self._infra(name)
        except NotFound:
            raise InvalidInput("sharing_group", f"no sharing group named {name}") from None
        if infra.state != "running":
            self._planner.start(infra.id, infra.mounts)
        share = _share(infra)
        joined = f"container:{infra.id}"
        return Membership(
            group=name,
            network=joined if "network" in share else None,
            ipc=joined if "ipc" in share else None,
            pid=joined if "pid" in share else None,
            volumes_from=(f"{infra.id}:{mode}",),
            targets=tuple(m.target for m in infra.mounts),
        )

    def _infra(self, name: str) -> ContainerRecord:
        found = [c for c in self._engine.list_containers(name=name) if _is_infra(c)]
        if not found:
            raise NotFound(f"sharing group {name} does not exist")
        return found[0]


def _is_infra(c: ContainerRecord) -> bool:
    return label.is_managed(c.labels) and c.labels.get(label.ROLE) == "infra"


def _share(infra: ContainerRecord) -> tuple[str, ...]:
    return tuple(json.loads(infra.labels.get(label.SPEC, "{}")).get("share", ()))


def _group(infra: ContainerRecord, containers: Sequence[ContainerRecord]) -> SharingGroup:
    name = infra.labels[label.GROUP]
    members = sorted(
        c.name
        for c in containers
        if c.labels.get(label.ROLE) == "binding" and c.labels.get(label.GROUP) == name and label.is_managed(c.labels)
    )
    return SharingGroup(
        name=name,
        share=_share(infra),
        mounts=shown_mounts(infra.mounts),
        infra=Infra(infra.name, infra.id, infra.state, infra.image),
        members=tuple(members),
        created_at=infra.created_at,
        project=project_of(infra.labels),
    )
