"""In-process store: for tests, one-off runs and the in-process guard without persistence.

Every method runs without awaiting in between, so it is atomic for coroutines on one event
loop; a lock makes it atomic for threads too. Records are copied in and out, so a caller
mutating a returned item never changes the stored one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from redline.errors import InputError
from redline.guard import rate_limit
from redline.guard.store.base import AgentRecord, LedgerEntry, ReviewItem, ReviewStatus


class MemoryStore:
    """State in dictionaries; lost when the process exits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ledgers: dict[str, LedgerEntry] = {}
        self._reviews: dict[str, ReviewItem] = {}
        self._agents: dict[str, AgentRecord] = {}
        self._by_credential: dict[str, str] = {}
        self._children: dict[str, list[str]] = {}
        self._buckets: dict[str, rate_limit.Bucket] = {}

    async def get_ledgers(self, keys: Sequence[str]) -> list[LedgerEntry | None]:
        return [self._ledgers.get(key) for key in keys]

    async def update_ledger(
        self, key: str, update: Callable[[LedgerEntry | None], LedgerEntry]
    ) -> LedgerEntry:
        with self._lock:
            entry = update(self._ledgers.get(key))
            self._ledgers[key] = entry
            return entry

    async def take_token(self, key: str, rate_per_s: float, now: float) -> float | None:
        with self._lock:
            self._buckets[key], wait = rate_limit.take(self._buckets.get(key), rate_per_s, now)
            return wait

    async def add_review(self, item: ReviewItem) -> None:
        with self._lock:
            if item.id in self._reviews:
                raise InputError(f"review {item.id!r} already exists")
            self._reviews[item.id] = item.model_copy(deep=True)

    async def get_review(self, review_id: str) -> ReviewItem | None:
        item = self._reviews.get(review_id)
        return item.model_copy(deep=True) if item is not None else None

    async def list_reviews(self, status: ReviewStatus | None = None) -> list[ReviewItem]:
        with self._lock:
            items = [i for i in self._reviews.values() if status is None or i.status == status]
            return sorted((i.model_copy(deep=True) for i in items), key=lambda i: i.created_at)

    async def decide_review(
        self, review_id: str, status: ReviewStatus, by: str, at: float, note: str = ""
    ) -> ReviewItem | None:
        with self._lock:
            item = self._reviews.get(review_id)
            if item is None or item.status != "pending":
                return None
            decided = item.model_copy(
                update={"status": status, "decided_by": by, "decided_at": at, "note": note}
            )
            self._reviews[review_id] = decided
            return decided.model_copy(deep=True)

    async def add_agent(self, record: AgentRecord) -> None:
        with self._lock:
            if record.id in self._agents:
                raise InputError(f"agent {record.id!r} already exists")
            if record.credential_sha256 in self._by_credential:
                raise InputError("an agent with this credential already exists")
            self._agents[record.id] = record.model_copy()
            self._by_credential[record.credential_sha256] = record.id
            if record.parent is not None:
                self._children.setdefault(record.parent, []).append(record.id)

    async def get_agent(self, agent_id: str) -> AgentRecord | None:
        record = self._agents.get(agent_id)
        return record.model_copy() if record is not None else None

    async def agent_by_credential(self, credential_sha256: str) -> AgentRecord | None:
        agent_id = self._by_credential.get(credential_sha256)
        return await self.get_agent(agent_id) if agent_id is not None else None

    async def children(self, agent_id: str) -> list[AgentRecord]:
        with self._lock:
            return [self._agents[c].model_copy() for c in self._children.get(agent_id, [])]

    async def mark_revoked(self, agent_ids: list[str], at: float, by: str, reason: str) -> None:
        with self._lock:
            for agent_id in agent_ids:
                record = self._agents.get(agent_id)
                if record is not None and record.revoked_at is None:
                    self._agents[agent_id] = record.model_copy(
                        update={"revoked_at": at, "revoked_by": by, "reason": reason}
                    )

    async def close(self) -> None:
        return None
