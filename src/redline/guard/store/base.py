"""The store contract shared by the memory, SQLite and Redis backends.

Every method is atomic with respect to other callers of the same store, including other
processes on SQLite and Redis: two proxy replicas updating one ledger never lose an update,
and a review is decided at most once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from redline.errors import RedlineError

ReviewStatus = Literal["pending", "approved", "denied", "expired"]


class StoreUnavailableError(RedlineError):
    """The store could not answer (unreachable, locked, contended): what the proxy turns
    into 503 without forwarding anything, since it cannot check without its state."""

    exit_code = 3


class LedgerEntry(BaseModel):
    """Accumulated risk of one session or one principal, as of ``updated_at``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    risk: float = 0.0
    #: Decaying count of scores that came close to a threshold without crossing it.
    near_misses: float = 0.0
    #: Times a tripwire fired (never decays; for reports).
    trips: int = 0
    #: Unix time of the last update; decay is computed from it.
    updated_at: float = 0.0


class ReviewItem(BaseModel):
    """Something the guard held for a human: a reply, a tool call or a request."""

    model_config = ConfigDict(extra="forbid")

    id: str
    status: ReviewStatus = "pending"
    created_at: float
    expires_at: float
    principal: str
    session: str | None = None
    surface: str
    tripwires: list[str] = Field(default_factory=list)
    #: What the reviewer reads: which tripwire, which tool, a short excerpt.
    summary: str = ""
    #: What is released on approval (e.g. the held chat completion), as JSON.
    payload: dict[str, Any] = Field(default_factory=dict)
    decided_by: str | None = None
    decided_at: float | None = None
    note: str = ""


class AgentRecord(BaseModel):
    """An agent instance, its parent and the digest of its credential."""

    model_config = ConfigDict(extra="forbid")

    id: str
    parent: str | None = None
    principal: str
    #: sha256 hex of the bearer credential; the credential itself is never stored.
    credential_sha256: str
    created_at: float
    revoked_at: float | None = None
    revoked_by: str | None = None
    reason: str = ""


class GuardStore(Protocol):
    """State backend. Implementations: ``memory``, ``sqlite`` (default), ``redis``."""

    async def get_ledgers(self, keys: Sequence[str]) -> list[LedgerEntry | None]:
        """The entries of ``keys`` in order (``None`` where absent), read together: a check
        needs three (session, principal, ended) and pays one round trip."""
        ...

    async def update_ledger(
        self, key: str, update: Callable[[LedgerEntry | None], LedgerEntry]
    ) -> LedgerEntry:
        """Atomic read-modify-write: ``update`` may run more than once under contention."""
        ...

    async def take_token(self, key: str, rate_per_s: float, now: float) -> float | None:
        """Take one request from ``key``'s token bucket (``rate_limit.take``, atomically):
        ``None`` if allowed, else the seconds until the next token."""
        ...

    async def add_review(self, item: ReviewItem) -> None: ...

    async def get_review(self, review_id: str) -> ReviewItem | None: ...

    async def list_reviews(self, status: ReviewStatus | None = None) -> list[ReviewItem]: ...

    async def decide_review(
        self, review_id: str, status: ReviewStatus, by: str, at: float, note: str = ""
    ) -> ReviewItem | None:
        """Set the status of a *pending* item; returns None if it is not pending (already
        decided or expired), so a review is decided at most once."""
        ...

    async def add_agent(self, record: AgentRecord) -> None: ...

    async def get_agent(self, agent_id: str) -> AgentRecord | None: ...

    async def agent_by_credential(self, credential_sha256: str) -> AgentRecord | None: ...

    async def children(self, agent_id: str) -> list[AgentRecord]: ...

    async def mark_revoked(self, agent_ids: list[str], at: float, by: str, reason: str) -> None:
        """Mark each listed agent revoked (idempotent; keeps the first revocation)."""
        ...

    async def close(self) -> None: ...
