"""Bearer tokens and scopes. Tokens are kept and compared as sha256 digests, in constant time."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import ALL_PROJECTS, DEFAULT_PROJECT, PROJECT_NAME, SCOPES, ConfigError
from .errors import Forbidden, Unauthenticated

log = logging.getLogger(__name__)

# Each scope includes the ones below it: admin > write > read.
RANK = {scope: i for i, scope in enumerate(SCOPES)}


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]
    project: str = DEFAULT_PROJECT  # where it acts (`*`: every project); its scopes say what it may do there

    def allows(self, scope: str) -> bool:
        return any(RANK[s] >= RANK[scope] for s in self.scopes)

    def require(self, scope: str) -> Principal:
        """Itself, or Forbidden (403) when it lacks the scope."""
        if not self.allows(scope):
            raise Forbidden(f"this token lacks the '{scope}' scope")
        return self


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    principal: Principal


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenStore:
    def __init__(self, entries: Iterable[_Entry], disabled: bool = False) -> None:
        self._entries = tuple(entries)
        self.disabled = disabled

    @classmethod
    def from_settings(cls, tokens: Mapping[str, Any], tokens_file: str | None, disabled: bool) -> TokenStore:
        """`tokens`: token -> list of scopes (project `default`) or {"scopes": [...], "project": NAME}."""
        entries = []
        for t, grant in tokens.items():
            scopes, project = (
                (grant["scopes"], grant.get("project", DEFAULT_PROJECT))
                if isinstance(grant, dict)
                else (grant, DEFAULT_PROJECT)
            )
            entries.append(_Entry(digest(t), Principal(f"token-{digest(t).hex()[:8]}", frozenset(scopes), project)))
        if tokens_file:
            entries += _read_file(tokens_file)
        if disabled:
            log.warning("AUTHENTICATION IS DISABLED (DOCKVOL_AUTH_DISABLED=true): local development only")
        elif not entries:
            log.warning("no tokens configured: every API call will answer 401")
        return cls(entries, disabled)

    def projects(self) -> list[str]:
        """The projects the tokens name."""
        return sorted({e.principal.project for e in self._entries})

    def authorize(self, header: str | None, scope: str) -> Principal:
        """The caller, or Unauthenticated (401) / Forbidden (403)."""
        found = self.identify(header)
        if found is None:
            scheme, _, token = (header or "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("send 'Authorization: Bearer TOKEN'")
            raise Unauthenticated("the token is not valid")
        return found.require(scope)

    def identify(self, header: str | None) -> Principal | None:
        """The holder of the bearer token in `header`, whatever its scopes; None for none or an unknown one."""
        if self.disabled:
            return Principal("auth-disabled", frozenset(SCOPES), ALL_PROJECTS)
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        presented = digest(token.strip())
        found = None
        for entry in self._entries:  # no early exit: the time taken does not depend on which matched
            if hmac.compare_digest(entry.digest, presented):
                found = entry.principal
        return found


def _read_file(path: str) -> list[_Entry]:
    """A JSON list of {"name": ..., "sha256": hex digest of the token, "scopes": [...], "project": ...}
    (no project: `default`)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        entries = []
        for item in data:
            scopes = item["scopes"]
            if not isinstance(scopes, list) or not set(scopes) <= set(SCOPES):
                raise ValueError(f"unknown scope in {scopes!r}")
            hashed = bytes.fromhex(item["sha256"])
            if len(hashed) != hashlib.sha256().digest_size:
                raise ValueError("sha256 must be 64 hex digits")
            project = item.get("project", DEFAULT_PROJECT)
            if not isinstance(project, str) or not (project == ALL_PROJECTS or PROJECT_NAME.fullmatch(project)):
                raise ValueError(f"{project!r} is not a project name")
            entries.append(_Entry(hashed, Principal(str(item["name"]), frozenset(scopes), project)))
        return entries
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"DOCKVOL_TOKENS_FILE {path}: {exc}") from None
