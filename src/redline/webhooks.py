"""Webhook calls: HMAC-SHA256 signed with a timestamp, retried with exponential backoff.
The observatory sends alerts with them (and keeps each call's outcome, so a missed one can be
sent again); the guard tells reviewers what it held.

The header is ``X-Redline-Signature: t=<unix seconds>,v1=<hex>`` where the hex is
HMAC-SHA256(secret, ``"<t>." + body``). Signing the timestamp lets a receiver refuse old
calls replayed at it (``verify_signature`` takes a tolerance).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

SIGNATURE_HEADER = "X-Redline-Signature"
EVENT_HEADER = "X-Redline-Event"
DELIVERY_HEADER = "X-Redline-Delivery"
#: Default age beyond which a receiver should refuse a signed call.
DEFAULT_TOLERANCE_S = 300
#: Longest failure text kept with a delivery.
MAX_ERROR_CHARS = 500

log = logging.getLogger(__name__)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(secret: str, body: bytes, header: str, *,
                     tolerance_s: int = DEFAULT_TOLERANCE_S, now: float | None = None) -> bool:
    """What a receiver runs: the MAC matches and the timestamp is recent."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass(frozen=True)
class Delivery:
    url: str
    secret: str
    event: str
    delivery_id: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int
    backoff_s: float
    timeout_s: float

    def longest_s(self) -> float:
        """The most one delivery can take: a delivery pending for longer was abandoned (its
        process stopped mid-way) and may be sent again."""
        waits = sum(self.backoff_s * 2.0**i for i in range(self.attempts - 1))
        return self.attempts * self.timeout_s + waits


@dataclass(frozen=True)
class Outcome:
    attempts: int
    delivered: bool
    #: The last failure (``HTTP 500``, a connection error), empty once delivered.
    error: str = ""


async def deliver(http: aiohttp.ClientSession, d: Delivery, policy: RetryPolicy) -> Outcome:
    """POST until a 2xx answer or the attempts run out."""
    body = json.dumps(d.payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    timeout = aiohttp.ClientTimeout(total=policy.timeout_s)
    error = ""
    for attempt in range(1, policy.attempts + 1):
        headers = {"Content-Type": "application/json", EVENT_HEADER: d.event,
                   DELIVERY_HEADER: d.delivery_id,
                   SIGNATURE_HEADER: sign(d.secret, body, int(time.time()))}
        try:
            async with http.post(d.url, data=body, headers=headers, timeout=timeout) as resp:
                if 200 <= resp.status < 300:
                    return Outcome(attempts=attempt, delivered=True)
                error = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        log.warning("webhook %s failed: %s (attempt %d)", d.url, error, attempt)
        if attempt < policy.attempts:
            await asyncio.sleep(policy.backoff_s * 2 ** (attempt - 1))
    return Outcome(attempts=policy.attempts, delivered=False, error=error)


#: Records a finished call (blocking: run in a worker thread).
Record = Callable[[Delivery, Outcome], None]


class Dispatcher:
    """Webhook calls in the background, so the code that raises an event never waits: one
    task per call on one HTTP session, retried by ``policy``; ``record`` keeps each outcome."""

    def __init__(self, policy: RetryPolicy, record: Record | None = None) -> None:
        self.policy = policy
        self.record = record
        self._tasks: set[asyncio.Task[Outcome]] = set()
        self._http: aiohttp.ClientSession | None = None

    def send(self, d: Delivery) -> None:
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

    async def drain(self) -> None:
        """Wait for the calls in flight (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, grace_s: float = 0.0) -> None:
        """Give the calls in flight ``grace_s`` to finish, cancel the rest, end the session."""
        if self._tasks and grace_s > 0:
            await asyncio.wait(list(self._tasks), timeout=grace_s)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._http is not None:
            await self._http.close()
