"""Guard summaries for the tests: built from a stream of guard decisions, the way a guard
aggregates them, and pushed with the observatory push client.

The real guard is being built alongside; until it lands here, ``summaries_from_decisions``
stands in for its aggregation step (same record type, same counting rule).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from redline.observatory.client import ObservatoryClient, PushResult
from redline.records.guard_events import GuardEventCount, GuardEventSummary

#: (red_line, category, surface, decision) per checked item; None for an item that passed.
Decision = tuple[str, str, str, str] | None


def summaries_from_decisions(guard_id: str, start: datetime, window: timedelta,
                             windows: Iterable[list[Decision]]) -> list[GuardEventSummary]:
    out = []
    for i, decisions in enumerate(windows):
        counts = Counter(d for d in decisions if d is not None)
        out.append(GuardEventSummary(
            guard_id=guard_id, policy_id="idais", policy_digest="0" * 64,
            window_start=start + i * window, window_end=start + (i + 1) * window,
            checks=len(decisions),
            counts=[GuardEventCount(red_line=rl, category=cat, surface=surface,
                                    decision=decision, count=n)
                    for (rl, cat, surface, decision), n in sorted(counts.items())]))
    return out


def push(url: str, token: str, summaries: list[GuardEventSummary]) -> PushResult:
    async def run() -> PushResult:
        async with ObservatoryClient(url, token, attempts=3, backoff_s=0.05) as client:
            return await client.push_summaries(summaries)
    # in a worker thread: the caller may be inside an event loop (Playwright's sync API)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()
