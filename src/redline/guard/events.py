"""Aggregates guard decisions into per-window event summaries for the observatory.

Counts only, per red line, category, surface and decision; content leaves the guard only
when the deployment opts in to excerpts.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from redline.guard.decision import Decision
from redline.records.guard_events import (
    GuardEventCount,
    GuardEventSummary,
    append_event_summaries,
)

#: Default window of one summary.
WINDOW_S = 60.0


class EventAggregator:
    """Counts decisions in fixed windows aligned to the epoch, so replicas agree on them."""

    def __init__(
        self,
        guard_id: str,
        policy_id: str,
        policy_digest: str,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.guard_id, self.policy_id, self.policy_digest = guard_id, policy_id, policy_digest
        self.window_s = window_s
        self.clock = clock
        self._start = self._window_of(clock())
        self._checks = 0
        self._counts: Counter[tuple[str, str, str, str]] = Counter()
        self._closed: list[GuardEventSummary] = []

    def _window_of(self, t: float) -> float:
        return t - (t % self.window_s)

    def _roll(self) -> None:
        start = self._window_of(self.clock())
        if start > self._start:
            if self._checks:
                self._closed.append(self._summary(self._start))
            self._start, self._checks = start, 0
            self._counts = Counter()

    def _summary(self, start: float) -> GuardEventSummary:
        counts = [
            GuardEventCount(red_line=rl, category=cat, surface=surface, decision=action, count=n)
            for (rl, cat, surface, action), n in sorted(self._counts.items())
        ]
        return GuardEventSummary(
            guard_id=self.guard_id, policy_id=self.policy_id, policy_digest=self.policy_digest,
            window_start=datetime.fromtimestamp(start, UTC),
            window_end=datetime.fromtimestamp(start + self.window_s, UTC),
            checks=self._checks, counts=counts,
        )

    def record(self, surface: str, decision: Decision) -> None:
        self._roll()
        self._checks += 1
        for trip in decision.trips:
            self._counts[(trip.red_line, trip.category, surface, decision.action)] += 1

    def drain(self, *, include_open: bool = False) -> list[GuardEventSummary]:
        """Closed windows not yet taken (and the open one, e.g. at shutdown)."""
        self._roll()
        out, self._closed = self._closed, []
        if include_open and self._checks:
            out.append(self._summary(self._start))
            self._checks, self._counts = 0, Counter()
        return out


async def write_periodically(events: EventAggregator, path: Path,
                             every_s: float | None = None) -> None:
    """Append closed windows to ``path`` as they close, until cancelled; then the open one."""
    try:
        while True:
            await asyncio.sleep(every_s or min(events.window_s, 10.0))
            append_event_summaries(path, events.drain())
    finally:
        append_event_summaries(path, events.drain(include_open=True))
