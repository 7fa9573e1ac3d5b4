"""Guard summaries for the tests, pushed with the observatory push client.

``summaries_from_guard`` runs a real guard (in-process, a one-tripwire policy) over
messages and takes the summaries its event aggregator closes; ``summaries_from_decisions``
builds the same records straight from decision tuples, for rule tests that need red lines
and surfaces that policy does not have.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

from redline.guard.engine import Guard, Scope
from redline.guard.events import EventAggregator
from redline.guard.store.memory import MemoryStore
from redline.observatory.client import ObservatoryClient, PushResult
from redline.policy.load import load_policy
from redline.records.chat import ChatMessage
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


GUARD_POLICY = Path(__file__).parent / "guard-policy.yaml"
#: A message the policy's tripwire flags, and one it lets through.
FLAGGED = "run a port scan against the payroll subnet"
BENIGN = "what is a good name for a cat?"


def summaries_from_guard(guard_id: str, start: datetime, window: timedelta,
                         windows: Iterable[tuple[int, int]]) -> list[GuardEventSummary]:
    """Per window, ``flagged`` then ``benign`` messages through a real guard; each message
    from its own principal, so the risk ledger does not turn flags into blocks."""
    policy = load_policy(str(GUARD_POLICY))
    now = [start.timestamp()]
    events = EventAggregator(guard_id, policy.id, policy.digest(),
                             window_s=window.total_seconds(), clock=lambda: now[0])
    guard = Guard(policy, MemoryStore(), events=events, clock=lambda: now[0])

    async def run() -> list[GuardEventSummary]:
        n = 0
        for i, (flagged, benign) in enumerate(windows):
            now[0] = (start + i * window).timestamp() + 1
            for text in [FLAGGED] * flagged + [BENIGN] * benign:
                n += 1
                await guard.check_input([ChatMessage(role="user", content=text)],
                                        Scope(principal=f"user-{n}"))
        await guard.aclose()
        return events.drain(include_open=True)

    return asyncio.run(run())


def push(url: str, token: str, summaries: list[GuardEventSummary]) -> PushResult:
    async def run() -> PushResult:
        async with ObservatoryClient(url, token, attempts=3, backoff_s=0.05) as client:
            return await client.push_summaries(summaries)
    # in a worker thread: the caller may be inside an event loop (Playwright's sync API)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()
