"""Settings read from the environment (names and defaults: the README's Configuration table).

Every DOCKVOL_ variable is read here and nowhere else, gunicorn's own settings too
(deploy/gunicorn.conf.py); each default is the dataclass field's, written once."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, TypeVar

SCOPES = ("read", "write", "admin")
ALL_PROJECTS = "*"  # a token of this project reaches every project: the operator's
DEFAULT_PROJECT = "default"  # tokens without a project, and managed objects without the label
QUOTA_KEYS = ("volumes", "bindings", "sharing_groups", "backups", "bytes")
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")


class ConfigError(ValueError):
    """A configuration variable is malformed; the service refuses to start."""


@dataclass(frozen=True)
class ProjectConfig:
    """One project of DOCKVOL_PROJECTS: its quota (kind -> limit; absent: unlimited) and its bind
    roots (None: not given, see `Settings.bind_roots_of`)."""

    quota: Mapping[str, int] = field(default_factory=dict)
    bind_roots: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Settings:
    docker_host: str | None = None
    # token -> list of scopes (project `default`), or {"scopes": [...], "project": NAME}
    tokens: Mapping[str, Any] = field(default_factory=dict)
    tokens_file: str | None = None
    auth_disabled: bool = False
    bind_roots: tuple[str, ...] = ()
    projects: Mapping[str, ProjectConfig] = field(default_factory=dict)
    allowed_images: tuple[str, ...] = ("*",)
    infra_image: str = "busybox:stable"
    default_network: str = "bridge"
    allowed_networks: tuple[str, ...] = ("none", "bridge")
    volume_drivers: tuple[str, ...] = ("local",)
    pull: str = "missing"
    engine_timeout: float = 10.0
    max_body_bytes: int = 1024 * 1024
    max_import_bytes: int = 10 * 1024**3
    max_import_entries: int = 1_000_000
    spool_dir: str | None = None
    usage_interval: float = 300.0  # seconds a measurement of projects' volume bytes serves
    state_dir: str = "/var/lib/dockvol"  # repositories (with their passwords), backup and restore records
    backup_roots: tuple[str, ...] = ()  # where `local` repositories may lie
    fleet: str = "off"  # off | swarm (docs/design.md section 10)
    fleet_secret: bytes = b""  # read from DOCKVOL_FLEET_SECRET_FILE
    fleet_peers: str = "tasks.dockvol"  # a DNS name whose A records are the instances; optional :PORT
    # gunicorn's (deploy/gunicorn.conf.py) and the logs'
    listen: str = "127.0.0.1:8080"
    worker_class: str = "gevent"
    workers: int = 2
    threads: int = 8  # gthread only
    graceful_timeout: int = 30
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()  # the defaults
        tokens = _json(env, "DOCKVOL_TOKENS", {})
        if not isinstance(tokens, dict) or not all(
            isinstance(k, str) and k and _is_grant(v) for k, v in tokens.items()
        ):
            raise ConfigError(
                f"DOCKVOL_TOKENS must be a JSON object of token -> list of scopes ({', '.join(SCOPES)}) or "
                '{"scopes": [...], "project": NAME}'
            )
        bind_roots = _str_list(env, "DOCKVOL_BIND_ROOTS", d.bind_roots)
        pull = _choice(env, "DOCKVOL_PULL", d.pull, ("missing", "never"))
        timeout = _number(env, "DOCKVOL_ENGINE_TIMEOUT", d.engine_timeout, "a number of seconds", float)
        if not 0 < timeout <= 300:
            raise ConfigError("DOCKVOL_ENGINE_TIMEOUT must lie in (0, 300] seconds")
        usage_interval = _number(env, "DOCKVOL_USAGE_INTERVAL", d.usage_interval, "a number of seconds", float)
        if not 0 < usage_interval <= 86400:
            raise ConfigError("DOCKVOL_USAGE_INTERVAL must lie in (0, 86400] seconds")
        state_dir = env.get("DOCKVOL_STATE_DIR") or d.state_dir
        if not state_dir.startswith("/"):
            raise ConfigError("DOCKVOL_STATE_DIR must be an absolute path")
        backup_roots = _backup_roots(env, bind_roots)
        fleet = _choice(env, "DOCKVOL_FLEET", d.fleet, ("off", "swarm"))
        secret = _secret(env.get("DOCKVOL_FLEET_SECRET_FILE") or None) if fleet == "swarm" else d.fleet_secret
        log_level = env.get("DOCKVOL_LOG_LEVEL", d.log_level).upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError("DOCKVOL_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return cls(
            fleet=fleet,
            fleet_secret=secret,
            fleet_peers=env.get("DOCKVOL_FLEET_PEERS") or d.fleet_peers,
            max_import_bytes=_number(env, "DOCKVOL_MAX_IMPORT_BYTES", d.max_import_bytes, "a number of bytes"),
            max_import_entries=_number(env, "DOCKVOL_MAX_IMPORT_ENTRIES", d.max_import_entries, "a number"),
            spool_dir=env.get("DOCKVOL_SPOOL_DIR") or d.spool_dir,
            usage_interval=usage_interval,
            state_dir=state_dir,
            backup_roots=backup_roots,
            docker_host=env.get("DOCKER_HOST") or d.docker_host,
            tokens=tokens,
            tokens_file=env.get("DOCKVOL_TOKENS_FILE") or d.tokens_file,
            auth_disabled=_bool(env, "DOCKVOL_AUTH_DISABLED"),
            bind_roots=bind_roots,
            projects=_projects(env, bind_roots),
            allowed_images=_str_list(env, "DOCKVOL_ALLOWED_IMAGES", d.allowed_images),
            infra_image=env.get("DOCKVOL_INFRA_IMAGE", d.infra_image),
            default_network=env.get("DOCKVOL_DEFAULT_NETWORK", d.default_network),
            allowed_networks=_str_list(env, "DOCKVOL_ALLOWED_NETWORKS", d.allowed_networks),
            volume_drivers=_str_list(env, "DOCKVOL_VOLUME_DRIVERS", d.volume_drivers),
            pull=pull,
            engine_timeout=timeout,
            listen=env.get("DOCKVOL_LISTEN") or d.listen,
            worker_class=env.get("DOCKVOL_WORKER_CLASS") or d.worker_class,
            workers=_number(env, "DOCKVOL_WORKERS", d.workers, "a number"),
            threads=_number(env, "DOCKVOL_THREADS", d.threads, "a number"),
            graceful_timeout=_number(env, "DOCKVOL_GRACEFUL_TIMEOUT", d.graceful_timeout, "a number of seconds"),
            log_level=log_level,
        )

    def bind_roots_of(self, project: str) -> tuple[str, ...]:
        """Where a project's bind sources may lie: its own `bind_roots`; `*`, and `default` while
        no project has roots of its own (a service upgraded from before projects), all of
        DOCKVOL_BIND_ROOTS; any other project without roots: none (bind mounts refused)."""
        own = self.projects.get(project, ProjectConfig()).bind_roots
        if own is not None:
            return own
        if project == ALL_PROJECTS:
            return self.bind_roots
        if project == DEFAULT_PROJECT and all(p.bind_roots is None for p in self.projects.values()):
            return self.bind_roots
        return ()


def _secret(path: str | None) -> bytes:
    """The fleet secret: at least 16 bytes, surrounding whitespace ignored."""
    if not path:
        raise ConfigError("DOCKVOL_FLEET=swarm needs DOCKVOL_FLEET_SECRET_FILE (a Swarm secret)")
    try:
        with open(path, "rb") as f:
            secret = f.read().strip()
    except OSError as exc:
        raise ConfigError(f"DOCKVOL_FLEET_SECRET_FILE {path}: {exc.strerror}") from None
    if len(secret) < 16:
        raise ConfigError("DOCKVOL_FLEET_SECRET_FILE must hold at least 16 bytes")
    return secret


def _is_scope_list(value: Any) -> bool:
    return isinstance(value, list) and all(s in SCOPES for s in value)


def _is_grant(value: Any) -> bool:
    """A token's grant: a list of scopes, or {"scopes": [...], "project": NAME}."""
    if isinstance(value, dict):
        project = value.get("project", DEFAULT_PROJECT)
        return (
            set(value) <= {"scopes", "project"}
            and _is_scope_list(value.get("scopes"))
            and isinstance(project, str)
            and (project == ALL_PROJECTS or bool(PROJECT_NAME.fullmatch(project)))
        )
    return _is_scope_list(value)


def _projects(env: Mapping[str, str], global_roots: tuple[str, ...]) -> dict[str, ProjectConfig]:
    """DOCKVOL_PROJECTS (JSON), else the file DOCKVOL_PROJECTS_FILE names, checked: names, quota
    limits, and bind roots that lie under DOCKVOL_BIND_ROOTS and overlap no other project's."""
    name = "DOCKVOL_PROJECTS"
    raw: Any = _json(env, name, None)
    if raw is None and env.get("DOCKVOL_PROJECTS_FILE"):
        name = "DOCKVOL_PROJECTS_FILE"
        try:
            with open(env["DOCKVOL_PROJECTS_FILE"], encoding="utf-8") as f:
                raw = json.load(f)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"DOCKVOL_PROJECTS_FILE {env['DOCKVOL_PROJECTS_FILE']}: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{name} must be a JSON object: project name -> {{quota, bind_roots}}")
    projects = {}
    for project, spec in raw.items():
        if not isinstance(project, str) or not PROJECT_NAME.fullmatch(project):
            raise ConfigError(f"{name}: {project!r} is not a project name (lowercase letters, digits, _.-)")
        if not isinstance(spec, dict) or not set(spec) <= {"quota", "bind_roots"}:
            raise ConfigError(f"{name}: project {project} must be an object with `quota` and/or `bind_roots`")
        quota = spec.get("quota", {})
        if not isinstance(quota, dict) or not all(
            k in QUOTA_KEYS and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in quota.items()
        ):
            raise ConfigError(f"{name}: the quota of {project} maps {', '.join(QUOTA_KEYS)} to whole numbers >= 0")
        roots = spec.get("bind_roots")
        if roots is not None:
            if not isinstance(roots, list) or not all(isinstance(r, str) and r.startswith("/") for r in roots):
                raise ConfigError(f"{name}: the bind_roots of {project} must be a list of absolute paths")
            outside = [r for r in roots if not any(_under(r, g) for g in global_roots)]
            if outside:
                raise ConfigError(
                    f"{name}: bind root {outside[0]} of project {project} does not lie under DOCKVOL_BIND_ROOTS"
                )
            roots = tuple(roots)
        projects[project] = ProjectConfig(dict(quota), roots)
    _no_shared_roots(name, projects)
    return projects


def _backup_roots(env: Mapping[str, str], bind_roots: tuple[str, ...]) -> tuple[str, ...]:
    """DOCKVOL_BACKUP_ROOTS: absolute, and clear of the bind roots in either direction (a container
    writing in a bind source above or below a repository could rewrite it)."""
    roots = _str_list(env, "DOCKVOL_BACKUP_ROOTS", ())
    for root in roots:
        if not root.startswith("/"):
            raise ConfigError("DOCKVOL_BACKUP_ROOTS must be a JSON list of absolute paths")
        for bind in bind_roots:
            if _under(root, bind) or _under(bind, root):
                raise ConfigError(f"DOCKVOL_BACKUP_ROOTS: {root} and the bind root {bind} overlap")
    return roots


def _under(path: str, root: str) -> bool:
    """Compared component by component, after resolving links: /srv/b2 is not under /srv/b."""
    p, r = PurePosixPath(os.path.realpath(path)), PurePosixPath(os.path.realpath(root))
    return p == r or p.is_relative_to(r)


def _no_shared_roots(name: str, projects: Mapping[str, ProjectConfig]) -> None:
    """Two projects whose roots nest or meet would reach each other's bind sources."""
    owned = [(root, project) for project, p in projects.items() for root in p.bind_roots or ()]
    for i, (root, project) in enumerate(owned):
        for other, other_project in owned[i + 1 :]:
            if other_project != project and (_under(root, other) or _under(other, root)):
                raise ConfigError(f"{name}: bind roots {root} ({project}) and {other} ({other_project}) overlap")


def _json(env: Mapping[str, str], name: str, default: Any) -> Any:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} is not valid JSON: {exc.msg}") from None


N = TypeVar("N", int, float)


def _number(env: Mapping[str, str], name: str, default: N, what: str, kind: type[N] = int) -> N:
    """A positive number (whole unless `kind` is float)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, default)
    if value not in allowed:
        raise ConfigError(f"{name} must be {' or '.join(repr(a) for a in allowed)}")
    return value


def _str_list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = _json(env, name, list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{name} must be a JSON list of non-empty strings")
    return tuple(value)


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "false").strip().lower()
    if raw not in ("true", "false", "1", "0", ""):
        raise ConfigError(f"{name} must be true or false")
    return raw in ("true", "1")
