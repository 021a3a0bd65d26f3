"""The app factory: `service.app:create_app()` (gunicorn and `flask` run it)."""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable
from typing import IO, Any

from flask import Flask, Response, request, url_for

from .config import Settings
from .domain.projects import QUOTA_LOCK_WAIT, ProjectScope
from .domain.volumes import VolumeQuery
from .engine.instrumented import InstrumentedEngine
from .engine.port import Engine
from .engine.viewed import View, ViewedEngine
from .errors import DockvolError
from .fleet.locks import STALE_AFTER
from .fleet.members import Fleet
from .fleet.peers import HttpTransport, Resolver, Transport, dns_resolver
from .fleet.quota import FleetProjects
from .http import docs, events, feed, health, hooks, limits, mount_schemas, observability, problems
from .http.backup_policies import routes as backup_policy_routes
from .http.backups import routes as backup_routes
from .http.bindings import routes as binding_routes
from .http.documents import answer
from .http.fields import (
    NameConverter,
    VolumeNameConverter,
    dict_keys_to_openapi,
    name_param_schema,
    volume_param_schema,
)
from .http.fleet import projects as fleet_projects
from .http.fleet.router import Router
from .http.nodes import routes as node_routes
from .http.projects import routes as project_routes
from .http.repositories import routes as repository_routes
from .http.restores import routes as restore_routes
from .http.sharing_groups import routes as sharing_group_routes
from .http.smorest import Api
from .http.volumes import data_routes  # noqa: F401  # volume data's routes join the volumes blueprint
from .http.volumes import routes as volume_routes
from .http.volumes import schemas as volume_schemas
from .wiring import Services, build_services


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    peers: tuple[Resolver, Transport] | None = None,
) -> Flask:
    """The app for one engine (`settings`: from the environment unless given; `engine`: the
    Docker engine they name unless given); with DOCKVOL_FLEET=swarm, one node's instance of a
    fleet, finding its peers through DNS over HTTP (`peers` replaces both in tests)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.json = limits.JSONProvider(app)  # request bodies within dockvol's JSON limits, whoever reads them
    app.config.update(
        API_TITLE="dockvol",
        API_VERSION="1",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=docs.ASSETS_URL,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
    )

    if engine is None:
        engine = docker_engine(settings)
    engine = InstrumentedEngine(engine, observability.observe_engine_call)
    view = View(engine, observability.observe_view)
    engine = ViewedEngine(engine, view)  # reads from the view once a worker starts it (gunicorn.conf.py)
    services = build_services(settings, engine, view)
    app.extensions["dockvol"] = services
    services.backups.ended.append(observability.observe_backup)
    services.watch = feed.new_watch(services, engine, observability.observe_watch)
    view.listeners.append(services.watch.applied)
    view.relisted.append(services.watch.relisted)
    services.record_feed = feed.new_record_feed(services)  # started with the view (gunicorn.conf.py)

    if settings.fleet == "swarm":
        router = _fleet_router(settings, services, peers)
        hooks.register(app, engine, lambda: router.route(request))
    else:
        hooks.register(app, engine, hooks.only_this_node)
    app.register_error_handler(DockvolError, problems.from_dockvol_error)
    app.register_error_handler(Exception, problems.from_unexpected)
    app.register_blueprint(observability.blp)
    docs.init_app(app)

    api = Api(app, spec_kwargs={"info": {"description": "A narrow, safe REST door to a Docker engine's storage."}})
    app.url_map.converters["name"] = NameConverter
    app.url_map.converters["volume"] = VolumeNameConverter
    api.register_converter(NameConverter, name_param_schema)
    api.register_converter(VolumeNameConverter, volume_param_schema)
    api.ma_plugin.converter.add_attribute_function(dict_keys_to_openapi)
    mount_schemas.register(api)
    volume_schemas.register(api)
    api.register_blueprint(health.blp)
    api.register_blueprint(volume_routes.blp)
    api.register_blueprint(binding_routes.blp)
    api.register_blueprint(sharing_group_routes.blp)
    api.register_blueprint(node_routes.blp)
    api.register_blueprint(project_routes.blp)
    api.register_blueprint(events.blp)
    api.register_blueprint(repository_routes.blp)
    api.register_blueprint(backup_routes.blp)
    api.register_blueprint(restore_routes.blp)
    api.register_blueprint(backup_policy_routes.blp)
    app.wsgi_app = limits.PacedBodies(app.wsgi_app)  # type: ignore[method-assign]  # WSGI middleware, Flask's way
    return app


def docker_engine(settings: Settings) -> Engine:
    """The Docker engine the settings name; the SDK loads only when a real engine is wanted."""
    from .engine.docker_engine import DockerEngine

    return DockerEngine(settings.docker_host, settings.engine_timeout)


def _fleet_router(settings: Settings, services: Services, peers: tuple[Resolver, Transport] | None) -> Router:
    resolve, transport = peers or (dns_resolver(settings.fleet_peers), HttpTransport())

    def identity() -> dict[str, Any]:
        info = services.engine.info()
        shown: dict[str, Any] = {
            "name": info.name,
            "id": info.node_id or info.engine_id,
            "role": "manager" if info.manager else "worker",
            "engine_version": info.server_version,
            "api_version": info.api_version,
            "volumes": len(services.volumes.list(VolumeQuery(managed=True))),
        }
        if info.manager:
            shown["swarm"] = [dataclasses.asdict(n) for n in services.engine.list_nodes()]
        return shown

    def receive_here(name: str, labels: dict[str, str], export: Callable[[], IO[bytes]]) -> Response:
        volume = services.volume_data.receive(name, labels, export)
        return answer(volume, 201, url_for("volumes.VolumeItem", name=name))

    fleet = Fleet(services.nodes.here, settings.fleet_secret, resolve, transport, settings.engine_timeout)
    return Router(fleet, services.auth, identity, receive_here, _fleet_projects(settings, services, fleet))


def _fleet_projects(settings: Settings, services: Services, fleet: Fleet) -> fleet_projects.Served:
    """Quotas counted over every node, under one fleet-wide lock per project (a Swarm config)
    behind the same seam as one engine's; usage summed over the nodes."""
    # A holder's hold is a count here, one on the other nodes and a create: each within the
    # engine's timeout. A lock older than that, with room to spare, is a dead holder's.
    across = FleetProjects(fleet, services.engine, max(STALE_AFTER, 4 * settings.engine_timeout))
    services.projects.elsewhere = across.elsewhere
    scope = services.engine
    assert isinstance(scope, ProjectScope)
    local = scope.lock
    scope.lock = lambda key: across.lock(key, QUOTA_LOCK_WAIT) if key.startswith("quota/") else local(key)

    def here(project: str) -> dict[str, Any]:
        usage = services.projects.here(project)
        return {k: v for k, v in dataclasses.asdict(usage).items() if k != "unreachable"}

    return fleet_projects.Served(here, across.locks)


def after_worker(pid: int) -> None:
    """What a gunicorn worker that ended (even a killed one) leaves behind: its live metrics and
    its helper containers. deploy/gunicorn.conf.py runs this in a process of its own, so that the
    master never loads the app (see there), unless the worker left cleanly (`worker_leaving`)."""
    from .http.observability import JsonFormatter

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    worker_leaving(pid)


def worker_leaving(pid: int) -> bool:
    """Remove what worker `pid` leaves: its live metrics, then its helper containers. A worker that
    ends gracefully calls it itself, with the app it has loaded; True: nothing is left."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
    return sweep_helpers_of(pid)


def sweep_helpers_of(pid: int) -> bool:
    """Remove the helper containers a (gone or leaving) worker left; True if none is left."""
    from .domain.helpers import Helpers, owner

    try:
        removed = Helpers(docker_engine(Settings.from_env())).sweep(owner(pid))
    except DockvolError as exc:
        logging.getLogger(__name__).error("could not sweep the helpers of worker %s: %s", pid, exc.detail)
        return False
    if removed:
        logging.getLogger(__name__).warning("removed %d helper container(s) left by worker %s", removed, pid)
    return True
