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

import aiohttp

from redline.webhooks import Delivery, Outcome, RetryPolicy, deliver

#: Alerts buffered per live subscriber before it starts missing them.
QUEUE_SIZE = 256


@dataclass(eq=False)
class Subscriber:
    accepts: Callable[[dict[str, Any]], bool]
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE))


#: Records a finished webhook call (blocking: run in a worker thread).
Record = Callable[[Delivery, Outcome], None]


class Hub:
    def __init__(self, policy: RetryPolicy, record: Record | None = None) -> None:
        self.policy = policy
        self.record = record
        self._subscribers: set[Subscriber] = set()
        self._tasks: set[asyncio.Task[Outcome]] = set()
        self._http: aiohttp.ClientSession | None = None

    def publish(self, alert: dict[str, Any] | None, deliveries: list[Delivery]) -> None:
        """Hand an alert to the subscribers that may see it and start its webhook calls
        (``alert=None``: only the calls, e.g. a redelivery)."""
        if alert is not None:
            for sub in list(self._subscribers):
                if sub.accepts(alert):
                    with contextlib.suppress(asyncio.QueueFull):
                        sub.queue.put_nowait(alert)
        for d in deliveries:
            task = asyncio.get_running_loop().create_task(self._deliver(d))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, d: Delivery) -> Outcome:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        outcome = await deliver(self._http, d, self.policy)
        if self.record is not None:
            await asyncio.to_thread(self.record, d, outcome)
        return outcome

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
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._http is not None:
            await self._http.close()
