"""Settings read from the environment (names and defaults: the README's Configuration table)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCOPES = ("read", "write", "admin")


class ConfigError(ValueError):
    """A configuration variable is malformed; the service refuses to start."""


@dataclass(frozen=True)
class Settings:
    docker_host: str | None = None
    tokens: Mapping[str, list[str]] = field(default_factory=dict)
    tokens_file: str | None = None
    auth_disabled: bool = False
    bind_roots: tuple[str, ...] = ()
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
    fleet: str = "off"  # off | swarm (docs/design.md section 10)
    fleet_secret: bytes = b""  # read from DOCKVOL_FLEET_SECRET_FILE
    fleet_peers: str = "tasks.dockvol"  # a DNS name whose A records are the instances; optional :PORT
    test_hold: tuple[int, str] | None = None  # tests only: see service/engine/holding.py

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        tokens = _json(env, "DOCKVOL_TOKENS", {})
        if not isinstance(tokens, dict) or not all(
            isinstance(k, str) and k and _is_scope_list(v) for k, v in tokens.items()
        ):
            raise ConfigError(f"DOCKVOL_TOKENS must be a JSON object of token -> list of scopes ({', '.join(SCOPES)})")
        pull = env.get("DOCKVOL_PULL", "missing")
        if pull not in ("missing", "never"):
            raise ConfigError("DOCKVOL_PULL must be 'missing' or 'never'")
        try:
            timeout = float(env.get("DOCKVOL_ENGINE_TIMEOUT", "10"))
        except ValueError:
            raise ConfigError("DOCKVOL_ENGINE_TIMEOUT must be a number of seconds") from None
        if not 0 < timeout <= 300:
            raise ConfigError("DOCKVOL_ENGINE_TIMEOUT must lie in (0, 300] seconds")
        try:
            max_import = int(env.get("DOCKVOL_MAX_IMPORT_BYTES", str(10 * 1024**3)))
        except ValueError:
            raise ConfigError("DOCKVOL_MAX_IMPORT_BYTES must be a whole number of bytes") from None
        if max_import < 1:
            raise ConfigError("DOCKVOL_MAX_IMPORT_BYTES must be positive")
        try:
            max_entries = int(env.get("DOCKVOL_MAX_IMPORT_ENTRIES", "1000000"))
        except ValueError:
            raise ConfigError("DOCKVOL_MAX_IMPORT_ENTRIES must be a whole number") from None
        if max_entries < 1:
            raise ConfigError("DOCKVOL_MAX_IMPORT_ENTRIES must be positive")
        hold = env.get("DOCKVOL_TEST_HOLD_AFTER", "")
        after, _, release = hold.partition(":")
        if hold and not (after.isdigit() and release):
            raise ConfigError("DOCKVOL_TEST_HOLD_AFTER must be N:RELEASE_FILE (tests only)")
        fleet = env.get("DOCKVOL_FLEET", "off")
        if fleet not in ("off", "swarm"):
            raise ConfigError("DOCKVOL_FLEET must be 'off' or 'swarm'")
        secret = _secret(env.get("DOCKVOL_FLEET_SECRET_FILE") or None) if fleet == "swarm" else b""
        return cls(
            fleet=fleet,
            fleet_secret=secret,
            fleet_peers=env.get("DOCKVOL_FLEET_PEERS") or "tasks.dockvol",
            test_hold=(int(after), release) if hold else None,
            max_import_bytes=max_import,
            max_import_entries=max_entries,
            spool_dir=env.get("DOCKVOL_SPOOL_DIR") or None,
            docker_host=env.get("DOCKER_HOST") or None,
            tokens=tokens,
            tokens_file=env.get("DOCKVOL_TOKENS_FILE") or None,
            auth_disabled=_bool(env, "DOCKVOL_AUTH_DISABLED"),
            bind_roots=_str_list(env, "DOCKVOL_BIND_ROOTS", []),
            allowed_images=_str_list(env, "DOCKVOL_ALLOWED_IMAGES", ["*"]),
            infra_image=env.get("DOCKVOL_INFRA_IMAGE", "busybox:stable"),
            default_network=env.get("DOCKVOL_DEFAULT_NETWORK", "bridge"),
            allowed_networks=_str_list(env, "DOCKVOL_ALLOWED_NETWORKS", ["none", "bridge"]),
            volume_drivers=_str_list(env, "DOCKVOL_VOLUME_DRIVERS", ["local"]),
            pull=pull,
            engine_timeout=timeout,
        )


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


def _json(env: Mapping[str, str], name: str, default: Any) -> Any:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} is not valid JSON: {exc.msg}") from None


def _str_list(env: Mapping[str, str], name: str, default: list[str]) -> tuple[str, ...]:
    value = _json(env, name, default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{name} must be a JSON list of non-empty strings")
    return tuple(value)


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "false").strip().lower()
    if raw not in ("true", "false", "1", "0", ""):
        raise ConfigError(f"{name} must be true or false")
    return raw in ("true", "1")
