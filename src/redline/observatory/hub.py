"""Fan-out of new alerts: to live SSE subscribers and to registered webhooks.

Subscribers are in-process queues (one per open feed), each filtered by what its principal
may read; a slow subscriber whose queue is full misses alerts rather than stalling ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from redline.webhooks import Delivery, Dispatcher, Record, RetryPolicy

#: Alerts buffered per live subscriber before it starts missing them.
QUEUE_SIZE = 256


@dataclass(eq=False)
class Subscriber:
    accepts: Callable[[dict[str, Any]], bool]
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE))


class Hub:
    def __init__(self, policy: RetryPolicy, record: Record | None = None) -> None:
        #: The webhook calls; ``record`` keeps each outcome.
        self.calls = Dispatcher(policy, record)
        self._subscribers: set[Subscriber] = set()

    def publish(self, alert: dict[str, Any] | None, deliveries: list[Delivery]) -> None:
        """Hand an alert to the subscribers that may see it and start its webhook calls
        (``alert=None``: only the calls, e.g. a redelivery)."""
        if alert is not None:
            for sub in list(self._subscribers):
                if sub.accepts(alert):
                    with contextlib.suppress(asyncio.QueueFull):
                        sub.queue.put_nowait(alert)
        for d in deliveries:
            self.calls.send(d)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, accepts: Callable[[dict[str, Any]], bool]
    ) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        sub = Subscriber(accepts)
        self._subscribers.add(sub)
        try:
            yield sub.queue
        finally:
            self._subscribers.discard(sub)

    async def drain(self) -> None:
        """Wait for the webhook calls in flight (tests and shutdown)."""
        await self.calls.drain()

    async def close(self) -> None:
        await self.calls.close()
