"""The services of one node, wired to one engine: the app factory (app.py) and the unit tier's
use-case tests both build them here, so that what the tests call is what the requests call.
No web framework is imported here."""

from __future__ import annotations

from dataclasses import dataclass, field

from .auth import TokenStore
from .config import Settings
from .domain.backups.policies import Policies
from .domain.backups.repositories import Repositories
from .domain.backups.restic import Restic
from .domain.backups.restores import Restores
from .domain.backups.runs import Backups
from .domain.backups.scheduler import Scheduler
from .domain.backups.state import StateDir
from .domain.bind_paths import BindPolicy, engine_paths
from .domain.bindings import Bindings
from .domain.byte_quota import ByteQuota
from .domain.helpers import Helpers
from .domain.intents import Intents
from .domain.mounts import MountPlanner
from .domain.nodes import Nodes
from .domain.policy import ContainerPolicy
from .domain.projects import QUOTA_LOCK_WAIT, Projects, ProjectScope, current
from .domain.reconcile import Reconciler
from .domain.record_feed import RecordFeed
from .domain.sharing import SharingGroups
from .domain.volume_data import VolumeData
from .domain.volumes import Volumes
from .domain.watch import Watch
from .engine.port import Engine
from .engine.viewed import View


@dataclass
class Services:
    """The use cases of one node, the policies they share, and the callers' tokens; the app keeps
    them in `current_app.extensions["dockvol"]` (http/context.py) with its view and watch."""

    settings: Settings
    engine: Engine  # as the use cases call it (the app's: instrumented, and read through its view)
    auth: TokenStore
    nodes: Nodes
    projects: Projects
    bind_policy: BindPolicy
    planner: MountPlanner
    policy: ContainerPolicy
    helpers: Helpers
    intents: Intents
    byte_quota: ByteQuota
    volumes: Volumes
    bindings: Bindings
    sharing_groups: SharingGroups
    volume_data: VolumeData
    reconciler: Reconciler
    repositories: Repositories
    backups: Backups
    restores: Restores
    policies: Policies
    scheduler: Scheduler  # each worker starts it (deploy/gunicorn.conf.py)
    view: View | None = None  # the app's view of the engine, which its GETs read
    watch: Watch = field(init=False)  # the app's change feed (http/feed.py): it reads through these services
    record_feed: RecordFeed = field(init=False)  # the watch's second source: backup runs and restores


def build_services(settings: Settings, engine: Engine, view: View | None = None) -> Services:
    """The services over `engine` (the app passes its instrumented, viewed engine and its view;
    tests a fake). The use cases get it as the caller's project sees it (domain/projects.py)."""
    auth = TokenStore.from_settings(settings.tokens, settings.tokens_file, settings.auth_disabled)
    projects = Projects(engine, settings.projects, auth.projects(), settings.usage_interval)
    engine = ProjectScope(engine, projects)
    nodes = Nodes(engine)
    bind_policy = BindPolicy(
        settings.bind_roots,
        engine_paths(settings.docker_host, lambda: nodes.identity().data_root),
        allowed=lambda: settings.bind_roots_of(current()),
    )
    planner = MountPlanner(engine, bind_policy)
    policy = ContainerPolicy(
        engine, settings.allowed_images, settings.allowed_networks, settings.default_network, settings.pull
    )
    helpers = Helpers(engine)
    intents = Intents(engine, helpers)
    # A quota's count and create are short, and a client that asked to create wants 201 or 403,
    # not "busy": twenty racers on a loaded host queue past the usual lock wait.
    engine.lock = lambda key: intents.run("project.quota", [key], wait=QUOTA_LOCK_WAIT)
    byte_quota = ByteQuota(projects, intents, lambda key: engine.lock(key))  # as set now or later (fleet mode)
    groups = SharingGroups(engine, planner, policy, settings.infra_image, intents)
    volumes = Volumes(engine, bind_policy, settings.volume_drivers, intents)
    volume_data = VolumeData(
        engine,
        volumes,
        helpers,
        intents,
        byte_quota,
        settings.max_import_bytes,
        settings.max_import_entries,
        settings.spool_dir,
    )
    state = StateDir(settings.state_dir)
    repositories = Repositories(
        state,
        Restic(f"{settings.state_dir}/cache"),
        BindPolicy(settings.backup_roots, bind_policy.engine_paths, setting=("backup root", "DOCKVOL_BACKUP_ROOTS")),
    )
    backups = Backups(volumes, volume_data, intents, repositories, state, quota=projects.quota)
    policies = Policies(state, repositories, volumes, backups)
    return Services(
        settings=settings,
        engine=engine,
        auth=auth,
        nodes=nodes,
        projects=projects,
        bind_policy=bind_policy,
        planner=planner,
        policy=policy,
        helpers=helpers,
        intents=intents,
        byte_quota=byte_quota,
        volumes=volumes,
        bindings=Bindings(engine, planner, policy, groups.membership, intents),
        sharing_groups=groups,
        volume_data=volume_data,
        reconciler=Reconciler(engine, planner, intents, settings.docker_host or "default"),
        repositories=repositories,
        backups=backups,
        restores=Restores(engine, backups, volumes, volume_data, state),
        policies=policies,
        scheduler=Scheduler(policies, state),
        view=view,
    )
