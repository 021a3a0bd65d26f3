"""How the use cases are wired to one engine: the app factory (app.py) and the unit tier's
use-case tests both build them here, so that what the tests call is what the requests call.
No web framework is imported here."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Settings
from .domain.bind_paths import BindPolicy, engine_paths
from .domain.bindings import Bindings
from .domain.helpers import Helpers
from .domain.intents import Intents
from .domain.mounts import MountPlanner
from .domain.nodes import Nodes
from .domain.policy import ContainerPolicy
from .domain.reconcile import Reconciler
from .domain.sharing import SharingGroups
from .domain.volume_data import VolumeData
from .domain.volumes import Volumes
from .engine.port import Engine


@dataclass(frozen=True)
class UseCases:
    """The use cases of one node, and the policies they share."""

    nodes: Nodes
    bind_policy: BindPolicy
    planner: MountPlanner
    policy: ContainerPolicy
    helpers: Helpers
    intents: Intents
    volumes: Volumes
    bindings: Bindings
    sharing_groups: SharingGroups
    volume_data: VolumeData
    reconciler: Reconciler


def build_services(settings: Settings, engine: Engine) -> UseCases:
    """The use cases over `engine` (the app passes its instrumented, viewed engine; tests a fake)."""
    nodes = Nodes(engine)
    bind_policy = BindPolicy(
        settings.bind_roots, engine_paths(settings.docker_host, lambda: nodes.identity().data_root)
    )
    planner = MountPlanner(engine, bind_policy)
    policy = ContainerPolicy(
        engine, settings.allowed_images, settings.allowed_networks, settings.default_network, settings.pull
    )
    helpers = Helpers(engine)
    intents = Intents(engine, helpers)
    groups = SharingGroups(engine, planner, policy, settings.infra_image, intents)
    volumes = Volumes(engine, bind_policy, settings.volume_drivers, intents)
    return UseCases(
        nodes=nodes,
        bind_policy=bind_policy,
        planner=planner,
        policy=policy,
        helpers=helpers,
        intents=intents,
        volumes=volumes,
        bindings=Bindings(engine, planner, policy, groups.membership, intents),
        sharing_groups=groups,
        volume_data=VolumeData(
            engine,
            volumes,
            helpers,
            intents,
            settings.max_import_bytes,
            settings.max_import_entries,
            settings.spool_dir,
        ),
        reconciler=Reconciler(engine, planner, intents, settings.docker_host or "default"),
    )
