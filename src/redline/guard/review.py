"""The human-review queue: items the guard held, decided at most once, expiring unanswered.

State lives in the store, so a proxy replica can wait on a decision made through another
replica or the CLI: :meth:`ReviewQueue.wait` polls the store every ``POLL_INTERVAL_S``.
Expiry is applied lazily: an item read after ``expires_at`` is marked ``expired`` then, and
an expired item stays blocked.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from redline.errors import InputError, NotFoundError
from redline.guard.store.base import GuardStore, ReviewItem, ReviewStatus
from redline.policy.model import ReviewSettings

#: How often ``wait`` re-reads the store for a decision.
POLL_INTERVAL_S = 0.05
#: Bytes of random id (``secrets.token_urlsafe``): unguessable, so an id is a capability.
ID_BYTES = 18
#: Recorded as ``decided_by`` when an item expires.
EXPIRY_ACTOR = "redline:expiry"
MAX_SUMMARY_CHARS = 4000
MAX_NOTE_CHARS = 4000
MAX_NAME_CHARS = 256
#: Size of the held payload as JSON.
MAX_PAYLOAD_BYTES = 1 << 20


class ReviewClosedError(InputError):
    """The item was already decided or has expired; a review is decided at most once."""


def _bounded(name: str, value: str, limit: int, *, required: bool = False) -> None:
    if required and not value.strip():
        raise InputError(f"{name} must not be empty", field=name)
    if len(value) > limit:
        raise InputError(f"{name} is longer than {limit} characters", field=name)


def _closed(item: ReviewItem) -> ReviewClosedError:
    if item.status == "expired":
        return ReviewClosedError(
            f"review {item.id} expired at {item.expires_at:.0f} and can no longer be decided"
        )
    return ReviewClosedError(
        f"review {item.id} was already {item.status} by {item.decided_by} at "
        f"{item.decided_at or 0:.0f}"
    )


class ReviewQueue:
    """Submit, list, decide and wait on held items."""

    def __init__(
        self,
        store: GuardStore,
        settings: ReviewSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        #: Called with each newly held item (e.g. ``ReviewNotifier.held``); must not block.
        self.on_submit: Callable[[ReviewItem], None] | None = None

    async def submit(
        self,
        principal: str,
        session: str | None,
        surface: str,
        tripwires: list[str],
        summary: str,
        payload: dict[str, Any],
    ) -> ReviewItem:
        """Hold an item for review; it expires ``settings.ttl_s`` from now."""
        _bounded("principal", principal, MAX_NAME_CHARS, required=True)
        _bounded("session", session or "", MAX_NAME_CHARS)
        _bounded("surface", surface, MAX_NAME_CHARS, required=True)
        _bounded("summary", summary, MAX_SUMMARY_CHARS)
        try:
            size = len(json.dumps(payload, allow_nan=False).encode())
        except (TypeError, ValueError) as exc:
            raise InputError(f"review payload is not JSON: {exc}", field="payload") from None
        if size > MAX_PAYLOAD_BYTES:
            raise InputError(f"review payload is {size} bytes, over {MAX_PAYLOAD_BYTES}",
                             field="payload")
        now = self.clock()
        item = ReviewItem(
            id=secrets.token_urlsafe(ID_BYTES),
            created_at=now,
            expires_at=now + self.settings.ttl_s,
            principal=principal,
            session=session,
            surface=surface,
            tripwires=list(tripwires),
            summary=summary,
            payload=payload,
        )
        await self.store.add_review(item)
        if self.on_submit is not None:
            self.on_submit(item)
        return item

    async def _expire(self, item: ReviewItem, now: float) -> ReviewItem:
        """Mark a pending item past its deadline expired (or whatever it was decided to)."""
        if item.status != "pending" or now < item.expires_at:
            return item
        expired = await self.store.decide_review(item.id, "expired", EXPIRY_ACTOR, now)
        if expired is not None:
            return expired
        latest = await self.store.get_review(item.id)
        return latest if latest is not None else item

    async def get(self, review_id: str) -> ReviewItem:
        item = await self.store.get_review(review_id)
        if item is None:
            raise NotFoundError(f"no review {review_id!r}")
        return await self._expire(item, self.clock())

    async def pending(self) -> list[ReviewItem]:
        """Items still awaiting a decision, oldest first (expiring the overdue ones)."""
        now = self.clock()
        out = []
        for item in await self.store.list_reviews("pending"):
            item = await self._expire(item, now)
            if item.status == "pending":
                out.append(item)
        return out

    async def decide(self, review_id: str, approve: bool, by: str, note: str = "") -> ReviewItem:
        """Approve or deny a pending item; ``ReviewClosedError`` if decided or expired."""
        _bounded("by", by, MAX_NAME_CHARS, required=True)
        _bounded("note", note, MAX_NOTE_CHARS)
        item = await self.get(review_id)
        if item.status != "pending":
            raise _closed(item)
        status: ReviewStatus = "approved" if approve else "denied"
        decided = await self.store.decide_review(review_id, status, by, self.clock(), note)
        if decided is None:
            raise _closed(await self.get(review_id))
        return decided

    async def wait(self, review_id: str, timeout_s: float) -> ReviewItem:
        """The item as soon as it is decided (or expires), else as it is at the timeout."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            item = await self.get(review_id)
            remaining = deadline - time.monotonic()
            if item.status != "pending" or remaining <= 0:
                return item
            await asyncio.sleep(min(POLL_INTERVAL_S, remaining))
