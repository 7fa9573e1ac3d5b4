"""The push client: attestations and guard summaries go up, with retries and no duplicates.

Retries cover connection failures, timeouts, 429 and 5xx, with exponential backoff. They
cannot create duplicates: the service keys summaries on (guard, window start) and refuses a
second copy of an attestation as a ``replay``, which this client, for its own organisation's
attestation, takes as already delivered.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from redline.errors import InputError, RedlineError
from redline.records.guard_events import GuardEventSummary

#: Summaries per request (the service takes up to 500).
BATCH_SIZE = 200
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class PushError(RedlineError):
    """The observatory refused an item or stayed unreachable after the retries."""

    exit_code = 3


@dataclass(frozen=True)
class PushResult:
    sent: int
    already_there: int
    alerts: int


class ObservatoryClient:
    def __init__(self, url: str, token: str, *, attempts: int = 5, backoff_s: float = 0.5,
                 timeout_s: float = 30.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise InputError(f"observatory URL must start with http:// or https://: {url!r}")
        self.url = url.rstrip("/")
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ObservatoryClient:
        self._http = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._http is not None:
            await self._http.close()

    async def _post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        assert self._http is not None, "use the client as an async context manager"
        data = json.dumps(body).encode("utf-8")
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._http.post(self.url + path, data=data,
                                           headers={"Content-Type": "application/json"}) as r:
                    payload = await r.json(content_type=None)
                    if r.status not in RETRY_STATUSES:
                        return r.status, payload
                    last = f"HTTP {r.status}"
            except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise PushError(f"{self.url}{path} failed after {self.attempts} attempts ({last})")

    async def push_attestation(self, envelope: dict[str, Any], *,
                               visibility: str = "members") -> bool:
        """True if stored now, False if the observatory already had it from us."""
        status, body = await self._post("/api/attestations",
                                        {"envelope": envelope, "visibility": visibility})
        if status == 201:
            return True
        detail = body.get("detail", {}) if isinstance(body, dict) else {}
        if status == 409 and isinstance(detail, dict) and detail.get("reason") == "replay" \
                and "your organisation" in detail.get("message", ""):
            return False
        raise PushError(f"attestation refused (HTTP {status}): {detail}")

    async def push_summaries(self, summaries: list[GuardEventSummary]) -> PushResult:
        sent = already = alerts = 0
        for start in range(0, len(summaries), BATCH_SIZE):
            batch = [s.model_dump(mode="json", by_alias=True)
                     for s in summaries[start:start + BATCH_SIZE]]
            status, body = await self._post("/api/events", {"summaries": batch})
            if status != 200:
                raise PushError(f"summaries refused (HTTP {status}): {body}")
            sent += body["accepted"]
            already += body["duplicates"]
            alerts += len(body["alerts"])
        return PushResult(sent=sent, already_there=already, alerts=alerts)
