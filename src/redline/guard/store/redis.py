"""Redis store: guard state shared by several proxy replicas.

Records are JSON strings under keys that start with a prefix, so one Redis serves several
deployments. Read-modify-write is optimistic: the guard's Python update cannot run inside
Redis, so it runs here and is committed by compare-and-set, and runs again when another
replica changed the value in between, so no update is lost.

Ledger updates and rate-limit buckets, the hot path, use a small Lua compare-and-set
(``_CAS``) against the value this client last saw (an LRU of ``LEDGER_CACHE_KEYS``): one
round trip when nobody else wrote the key, one more per conflict, since a failed CAS returns
the current value.
Measured in ``bench/guard_state.py``, this costs about a third of the client CPU of
``WATCH``/``MULTI`` (three round trips and a reserved connection). Comparing whole values
is safe against ABA: an identical string is an identical entry. Reviews and agents, which
change rarely, use ``WATCH``/``MULTI``.

Layout (``P`` = prefix): ``P ledger:KEY``, ``P review:ID`` and the sorted set ``P reviews``
(by creation time), ``P bucket:PRINCIPAL`` (``[tokens, at]``), ``P agent:ID``,
``P cred:SHA256`` (→ agent id), ``P children:ID`` (list of child ids, in registration order).
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from redline.errors import InputError
from redline.guard import rate_limit
from redline.guard.store.base import (
    AgentRecord,
    LedgerEntry,
    ReviewItem,
    ReviewStatus,
    StoreUnavailableError,
)
from redline.models.errors import TargetTimeoutError, TargetUnreachableError

DEFAULT_PREFIX = "redline:guard:"
#: Seconds to open a connection, and to wait for one reply, before the store is unreachable.
CONNECT_TIMEOUT_S = 2.0
COMMAND_TIMEOUT_S = 5.0
#: Optimistic transactions attempted before giving up under extreme contention on one key.
MAX_WATCH_ATTEMPTS = 1000
#: Ledger values remembered per client as the expected value of the next compare-and-set.
LEDGER_CACHE_KEYS = 10_000
#: ARGV[1] = expected value ("" for absent), ARGV[2] = new value. Returns {1} on success,
#: else {0, current} ({0} when the key is absent).
_CAS = """
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return {1}
end
if cur == false then return {0} end
return {0, cur}
"""

T = TypeVar("T")


class StoreUnreachableError(TargetUnreachableError, StoreUnavailableError):
    """The Redis server did not answer (exit code 3, like an unreachable target)."""


class StoreContentionError(TargetTimeoutError, StoreUnavailableError):
    """One key changed under every one of ``MAX_WATCH_ATTEMPTS`` transactions."""


def _text(value: object) -> str:
    """A reply value as text (the client decodes replies; the stubs do not know it)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _multi(pipe: aioredis.client.Pipeline) -> None:
    """End the reads of an optimistic transaction; what follows is queued."""
    pipe.multi()  # type: ignore[no-untyped-call]


def _display(url: str) -> str:
    """The URL without credentials, for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisStore:
    """Guard state in Redis (redis-py asyncio)."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.url = _display(url)
        self.prefix = prefix
        try:
            self._r = aioredis.Redis.from_url(
                url, socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=COMMAND_TIMEOUT_S, decode_responses=True,
            )
        except ValueError as exc:
            raise InputError(f"invalid Redis URL {self.url!r}: {exc}") from None
        self._cas = self._r.register_script(_CAS)
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def _reachable(self) -> AsyncIterator[None]:
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreUnreachableError(
                f"guard store: no answer from Redis at {self.url} ({exc})"
            ) from None

    async def _watched(self, keys: list[str], step: Callable[[aioredis.client.Pipeline],
                                                               Awaitable[T]]) -> T:
        """Run ``step`` (reads, then ``multi()`` and queued writes) until it commits."""
        async with self._reachable(), self._r.pipeline(transaction=True) as pipe:
            for _ in range(MAX_WATCH_ATTEMPTS):
                try:
                    await pipe.watch(*keys)
                    result = await step(pipe)
                    await pipe.execute()
                    return result
                except WatchError:
                    continue
        raise StoreContentionError(
            f"guard store: {keys[0]!r} kept changing for {MAX_WATCH_ATTEMPTS} attempts"
        )

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def ping(self) -> None:
        """Raise ``StoreUnreachableError`` unless the server answers."""
        async with self._reachable():
            await self._r.ping()

    async def get_ledgers(self, keys: Sequence[str]) -> list[LedgerEntry | None]:
        if not keys:
            return []
        async with self._reachable():
            raws = await self._r.mget([self._k("ledger", key) for key in keys])
        return [LedgerEntry.model_validate_json(raw) if raw is not None else None
                for raw in raws]

    async def update_ledger(
        self, key: str, update: Callable[[LedgerEntry | None], LedgerEntry]
    ) -> LedgerEntry:
        def step(raw: str | None) -> tuple[str, LedgerEntry]:
            entry = update(LedgerEntry.model_validate_json(raw) if raw else None)
            return entry.model_dump_json(), entry

        return await self._compare_and_set(self._k("ledger", key), step)

    async def take_token(self, key: str, rate_per_s: float, now: float) -> float | None:
        def step(raw: str | None) -> tuple[str, float | None]:
            old = rate_limit.Bucket(*json.loads(raw)) if raw else None
            bucket, wait = rate_limit.take(old, rate_per_s, now)
            return json.dumps([bucket.tokens, bucket.at]), wait

        return await self._compare_and_set(self._k("bucket", key), step)

    async def _compare_and_set(self, k: str, step: Callable[[str | None], tuple[str, T]]) -> T:
        """Apply ``step`` (old value → new value and a result) to key ``k`` by ``_CAS`` from
        the value this client last saw, again from the current value after each conflict."""
        async with self._reachable(), self._key_lock(k):
            raw = self._seen.get(k)
            for _ in range(MAX_WATCH_ATTEMPTS):
                new, result = step(raw)
                reply = await self._cas(keys=[k], args=[raw or "", new])
                if reply[0] == 1:
                    self._remember(k, new)
                    return result
                raw = _text(reply[1]) if len(reply) > 1 else None
        raise StoreContentionError(
            f"guard store: {k!r} kept changing for {MAX_WATCH_ATTEMPTS} attempts"
        )

    @asynccontextmanager
    async def _key_lock(self, key: str) -> AsyncIterator[None]:
        """Serialise this client's updates of one key: coroutines of one replica then never
        conflict with each other, only with other replicas."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def _remember(self, key: str, value: str) -> None:
        self._seen[key] = value
        self._seen.move_to_end(key)
        if len(self._seen) > LEDGER_CACHE_KEYS:
            self._seen.popitem(last=False)

    async def add_review(self, item: ReviewItem) -> None:
        # One transaction: a duplicate id re-adds the same member to the index, harmlessly.
        async with self._reachable(), self._r.pipeline(transaction=True) as pipe:
            pipe.set(self._k("review", item.id), item.model_dump_json(), nx=True)
            pipe.zadd(self._k("reviews"), {item.id: item.created_at})
            created, _ = await pipe.execute()
        if not created:
            raise InputError(f"review {item.id!r} already exists")

    async def get_review(self, review_id: str) -> ReviewItem | None:
        async with self._reachable():
            raw = await self._r.get(self._k("review", review_id))
        return ReviewItem.model_validate_json(raw) if raw is not None else None

    async def list_reviews(self, status: ReviewStatus | None = None) -> list[ReviewItem]:
        async with self._reachable():
            ids = await self._r.zrange(self._k("reviews"), 0, -1)
            if not ids:
                return []
            raws = await self._r.mget([self._k("review", _text(i)) for i in ids])
        items = [ReviewItem.model_validate_json(raw) for raw in raws if raw is not None]
        return [i for i in items if status is None or i.status == status]

    async def decide_review(
        self, review_id: str, status: ReviewStatus, by: str, at: float, note: str = ""
    ) -> ReviewItem | None:
        k = self._k("review", review_id)

        async def step(pipe: aioredis.client.Pipeline) -> ReviewItem | None:
            raw = await pipe.get(k)
            _multi(pipe)
            if raw is None:
                return None
            item = ReviewItem.model_validate_json(raw)
            if item.status != "pending":
                return None
            decided = item.model_copy(
                update={"status": status, "decided_by": by, "decided_at": at, "note": note}
            )
            pipe.set(k, decided.model_dump_json())
            return decided

        return await self._watched([k], step)

    async def add_agent(self, record: AgentRecord) -> None:
        k = self._k("agent", record.id)
        cred = self._k("cred", record.credential_sha256)

        async def step(pipe: aioredis.client.Pipeline) -> None:
            if await pipe.exists(k, cred):
                raise InputError(f"agent {record.id!r} or its credential already exists")
            _multi(pipe)
            pipe.set(k, record.model_dump_json())
            pipe.set(cred, record.id)
            if record.parent is not None:
                pipe.rpush(self._k("children", record.parent), record.id)

        await self._watched([k, cred], step)

    async def get_agent(self, agent_id: str) -> AgentRecord | None:
        async with self._reachable():
            raw = await self._r.get(self._k("agent", agent_id))
        return AgentRecord.model_validate_json(raw) if raw is not None else None

    async def agent_by_credential(self, credential_sha256: str) -> AgentRecord | None:
        async with self._reachable():
            agent_id = await self._r.get(self._k("cred", credential_sha256))
        return await self.get_agent(_text(agent_id)) if agent_id is not None else None

    async def children(self, agent_id: str) -> list[AgentRecord]:
        async with self._reachable():
            ids = await self._r.lrange(self._k("children", agent_id), 0, -1)
            if not ids:
                return []
            raws = await self._r.mget([self._k("agent", _text(i)) for i in ids])
        return [AgentRecord.model_validate_json(raw) for raw in raws if raw is not None]

    async def mark_revoked(self, agent_ids: list[str], at: float, by: str, reason: str) -> None:
        if not agent_ids:
            return
        keys = [self._k("agent", a) for a in agent_ids]

        async def step(pipe: aioredis.client.Pipeline) -> None:
            raws = await pipe.mget(keys)
            _multi(pipe)
            for key, raw in zip(keys, raws, strict=True):
                if raw is None:
                    continue
                record = AgentRecord.model_validate_json(raw)
                if record.revoked_at is None:
                    revoked = record.model_copy(
                        update={"revoked_at": at, "revoked_by": by, "reason": reason}
                    )
                    pipe.set(key, revoked.model_dump_json())

        await self._watched(keys, step)

    async def close(self) -> None:
        await self._r.aclose()
