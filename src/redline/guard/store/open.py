"""Open a guard store from a URL.

=============================  ==========================================================
``memory:``                    in-process, lost on exit
``sqlite:PATH`` or ``PATH``    SQLite file (the default); ``sqlite://PATH`` also accepted
``redis://HOST:PORT/DB``       Redis (``rediss://`` for TLS); ``?prefix=P`` namespaces keys
=============================  ==========================================================

An unknown scheme is an ``InputError`` (exit 2) naming it. An unreachable Redis is a
``StoreUnreachableError`` (a ``TargetUnreachableError``, exit 3) on the first call, or from
:func:`open_store_checked`, which pings it.
"""

from __future__ import annotations

import re
import urllib.parse

from redline.errors import InputError
from redline.guard.store.base import GuardStore
from redline.guard.store.memory import MemoryStore
from redline.guard.store.redis import DEFAULT_PREFIX, RedisStore, StoreUnreachableError
from redline.guard.store.sqlite import SQLiteStore

#: ``scheme:`` at the start of a URL; one letter is a Windows drive, i.e. a bare path.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
SCHEMES = ("memory", "sqlite", "redis", "rediss")
MAX_URL_CHARS = 4096

__all__ = ["SCHEMES", "StoreUnreachableError", "open_store", "open_store_checked"]


def _redis(url: str) -> RedisStore:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    prefix = query.pop("prefix", [DEFAULT_PREFIX])[-1]
    if not prefix:
        raise InputError("guard store: the Redis key prefix must not be empty", field="prefix")
    rest = urllib.parse.urlencode(query, doseq=True)
    return RedisStore(urllib.parse.urlunsplit(parts._replace(query=rest)), prefix=prefix)


def open_store(url: str) -> GuardStore:
    """The store a URL names (see the module docstring)."""
    if len(url) > MAX_URL_CHARS:
        raise InputError(f"guard store URL longer than {MAX_URL_CHARS} characters")
    if not url.strip():
        raise InputError("guard store URL is empty")
    match = _SCHEME.match(url)
    if match is None:
        return SQLiteStore(url)
    scheme = match.group(1).lower()
    rest = url[match.end():]
    if scheme == "memory":
        if rest:
            raise InputError(f"guard store URL 'memory:' takes nothing after it, got {url!r}")
        return MemoryStore()
    if scheme == "sqlite":
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            raise InputError("guard store URL 'sqlite:' needs a path, e.g. sqlite:guard.db")
        return SQLiteStore(path)
    if scheme in ("redis", "rediss"):
        return _redis(url)
    raise InputError(
        f"unknown guard store scheme {scheme!r}; use one of "
        + ", ".join(f"{s}:" for s in SCHEMES)
    )


async def open_store_checked(url: str) -> GuardStore:
    """:func:`open_store`, then fail now (not on the first request) if Redis is unreachable."""
    store = open_store(url)
    if isinstance(store, RedisStore):
        try:
            await store.ping()
        except StoreUnreachableError:
            await store.close()
            raise
    return store
