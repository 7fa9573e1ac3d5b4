"""API keys for the guard proxy: key → principal, roles and deployment context.

Keys live in a YAML file as sha256 digests, never in clear, so the file can be read by
operators without exposing credentials:

    keys:
      - principal: alice
        sha256: 3b4c…          # redline guard keys add alice --file keys.yaml
        roles: [client]         # client, reviewer, admin
        context: strict         # optional guard context from the policy
        rate_per_s: 20          # optional request rate limit
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from redline.errors import InputError

Role = Literal["client", "reviewer", "admin"]
#: Prefix of generated client keys, so a leaked key is recognisable in logs and scanners.
KEY_PREFIX = "rlk_"
KEY_BYTES = 32


def _client_only() -> list[Role]:
    return ["client"]


class ClientKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    principal: str = Field(min_length=1, max_length=200)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    roles: list[Role] = Field(default_factory=_client_only)
    context: str | None = None
    rate_per_s: float | None = Field(default=None, gt=0)


class KeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[ClientKey] = Field(default_factory=list)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


class KeyRing:
    """Looks up a presented bearer token by its digest."""

    def __init__(self, keys: list[ClientKey]) -> None:
        self._by_digest = {k.sha256: k for k in keys}

    @classmethod
    def load(cls, path: str | Path) -> KeyRing:
        p = Path(path)
        try:
            raw = yaml.safe_load(p.read_text()) or {}
            return cls(KeyFile.model_validate(raw).keys)
        except FileNotFoundError:
            raise InputError(f"{p}: key file not found") from None
        except yaml.YAMLError as exc:
            raise InputError(f"{p}: not valid YAML: {exc}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise InputError(f"{p}: {where}: {first['msg']}") from None

    def lookup(self, token: str) -> ClientKey | None:
        return self._by_digest.get(digest(token))

    def for_principal(self, principal: str) -> ClientKey | None:
        """The first key of ``principal``: its context and rate also bind its agents."""
        return next((k for k in self._by_digest.values() if k.principal == principal), None)

    def entries(self) -> list[ClientKey]:
        return list(self._by_digest.values())

    def __len__(self) -> int:
        return len(self._by_digest)


def add_key(path: str | Path, principal: str, roles: list[Role], context: str | None = None,
            rate_per_s: float | None = None) -> str:
    """Create a key for ``principal``, store its digest in ``path`` and return the key."""
    p = Path(path)
    existing = KeyRing.load(p) if p.exists() else KeyRing([])
    token = new_key()
    entry = ClientKey(principal=principal, sha256=digest(token), roles=roles, context=context,
                      rate_per_s=rate_per_s)
    _write(p, [*existing.entries(), entry])
    return token


def remove_keys(path: str | Path, principal: str, sha256_prefix: str | None = None) -> int:
    """Drop ``principal``'s keys (only those whose digest starts with ``sha256_prefix``, if
    given) from ``path``; returns how many. A running guard stops accepting them once it
    reloads the file (SIGHUP)."""
    p = Path(path)
    keys = KeyRing.load(p).entries()
    kept = [k for k in keys if not (
        k.principal == principal and k.sha256.startswith(sha256_prefix or ""))]
    removed = len(keys) - len(kept)
    if removed:
        _write(p, kept)
    return removed


def _write(p: Path, keys: list[ClientKey]) -> None:
    """Replace the key file atomically, readable by its owner only."""
    body = KeyFile(keys=keys).model_dump(mode="json", exclude_none=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(yaml.safe_dump(body, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(p)
