"""Alert rules over the stream of guard summaries. Pure functions over plain numbers, so
each rule is tested on its own; ``redline.observatory.events`` feeds them from the database.

- ``red_line_crossed``: a guard took a crossing decision (block, end session, revoke agent)
  on a red line in the window;
- ``tripwire_spike``: a red line's tripwire rate (non-allow decisions per check) in a window
  is ``spike_factor`` times its own baseline (mean over earlier windows of the same guard);
- ``cross_org_rise``: the same category rises over its baseline in ``cross_org_min_orgs``
  organisations within ``cross_org_window_s``; shared with every member, naming no one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redline.observatory.settings import AlertRules

ALLOW = "allow"


@dataclass(frozen=True)
class Window:
    """One guard window reduced to what the rules read."""

    org_id: int
    guard_id: str
    window_start: datetime
    window_end: datetime
    checks: int
    #: (red_line, category, decision, count) rows.
    counts: Sequence[tuple[str, str, str, int]]

    def tripped(self, *, red_line: str | None = None, category: str | None = None) -> int:
        return sum(n for rl, cat, decision, n in self.counts if decision != ALLOW
                   and (red_line is None or rl == red_line)
                   and (category is None or cat == category))

    def rate(self, *, red_line: str | None = None, category: str | None = None) -> float:
        return self.tripped(red_line=red_line, category=category) / self.checks \
            if self.checks else 0.0


@dataclass(frozen=True)
class AlertDraft:
    rule: str
    org_id: int | None
    red_line: str | None
    category: str | None
    message: str
    dedupe_key: str
    details: dict[str, Any] = field(default_factory=dict)


def _window_key(w: Window) -> str:
    return f"{w.org_id}:{w.guard_id}:{w.window_start.isoformat()}"


def red_line_crossed(w: Window, rules: AlertRules) -> list[AlertDraft]:
    crossed: dict[tuple[str, str], dict[str, int]] = {}
    for rl, cat, decision, n in w.counts:
        if decision in rules.crossing_decisions:
            by = crossed.setdefault((rl, cat), {})
            by[decision] = by.get(decision, 0) + n
    return [AlertDraft(
        rule="red_line_crossed", org_id=w.org_id, red_line=rl, category=cat,
        message=f"red line {rl} crossed {sum(by.values())} time(s) at guard {w.guard_id}",
        dedupe_key=f"crossed:{_window_key(w)}:{rl}:{cat}",
        details={"guard_id": w.guard_id, "decisions": by,
                 "window_start": w.window_start.isoformat(),
                 "window_end": w.window_end.isoformat()},
    ) for (rl, cat), by in sorted(crossed.items())]


def baseline(history: Sequence[Window], **subject: str) -> float:
    return sum(h.rate(**subject) for h in history) / len(history)


def tripwire_spike(w: Window, history: Sequence[Window], rules: AlertRules) -> list[AlertDraft]:
    """``history``: earlier windows of the same guard, newest first."""
    history = history[:rules.baseline_windows]
    if len(history) < rules.spike_min_history:
        return []
    drafts = []
    for rl in sorted({rl for rl, _, _, _ in w.counts}):
        tripped = w.tripped(red_line=rl)
        if tripped < rules.spike_min_events:
            continue
        rate, base = w.rate(red_line=rl), baseline(history, red_line=rl)
        if rate < rules.spike_factor * base or rate == 0.0:
            continue
        drafts.append(AlertDraft(
            rule="tripwire_spike", org_id=w.org_id, red_line=rl, category=None,
            message=(f"tripwire {rl} at guard {w.guard_id}: rate {rate:.1%} against a baseline "
                     f"of {base:.1%} over {len(history)} windows"),
            dedupe_key=f"spike:{_window_key(w)}:{rl}",
            details={"guard_id": w.guard_id, "rate": rate, "baseline": base,
                     "tripped": tripped, "checks": w.checks, "history_windows": len(history),
                     "factor": rules.spike_factor,
                     "window_start": w.window_start.isoformat(),
                     "window_end": w.window_end.isoformat()},
        ))
    return drafts


def is_rising(latest: Window, history: Sequence[Window], category: str,
              rules: AlertRules) -> bool:
    if latest.tripped(category=category) < rules.spike_min_events:
        return False
    if not history:
        return False
    rate = latest.rate(category=category)
    return rate > 0 and rate >= rules.cross_org_rise_factor * baseline(history, category=category)


def cross_org_rise(category: str, rising_orgs: set[int], bucket: datetime,
                   rules: AlertRules) -> AlertDraft | None:
    if len(rising_orgs) < rules.cross_org_min_orgs:
        return None
    return AlertDraft(
        rule="cross_org_rise", org_id=None, red_line=None, category=category,
        message=(f"category {category} is rising in {len(rising_orgs)} organisations within "
                 f"{rules.cross_org_window_s // 60} minutes"),
        dedupe_key=f"cross:{category}:{bucket.isoformat()}",
        details={"organisations": len(rising_orgs), "window_s": rules.cross_org_window_s,
                 "factor": rules.cross_org_rise_factor},
    )
