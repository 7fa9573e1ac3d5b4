"""Guard event-summary ingest, in batches, and the alerts each new window raises.

A summary is idempotent on (organisation, guard, window start): a retried push is counted as
a duplicate, not stored twice. Content excerpts are dropped unless the organisation opted in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from redline.observatory.alerts import (
    AlertDraft,
    Window,
    cross_org_rise,
    is_rising,
    red_line_crossed,
    tripwire_spike,
)
from redline.observatory.auth import Principal
from redline.observatory.incidents import plausible
from redline.observatory.problems import Rejected
from redline.observatory.settings import AlertRules
from redline.observatory.tables import Alert, EventSummary, Org
from redline.records.guard_events import GuardEventSummary


def window_of(row: EventSummary) -> Window:
    return Window(org_id=row.org_id, guard_id=row.guard_id, window_start=row.window_start,
                  window_end=row.window_end, checks=row.checks,
                  counts=[(c["red_line"], c["category"], c["decision"], c["count"])
                          for c in row.counts])


def history_of(session: Session, row: EventSummary, limit: int) -> list[Window]:
    """Earlier windows of the same guard, newest first."""
    rows = session.scalars(
        select(EventSummary)
        .where(EventSummary.org_id == row.org_id, EventSummary.guard_id == row.guard_id,
               EventSummary.window_start < row.window_start)
        .order_by(EventSummary.window_start.desc()).limit(limit))
    return [window_of(r) for r in rows]


def _rising_orgs(session: Session, category: str, end: datetime, rules: AlertRules) -> set[int]:
    start = end - timedelta(seconds=rules.cross_org_window_s)
    recent = session.scalars(
        select(EventSummary)
        .where(EventSummary.window_end > start, EventSummary.window_end <= end)
        .order_by(EventSummary.window_end.desc()))
    latest: dict[tuple[int, str], EventSummary] = {}
    for r in recent:
        latest.setdefault((r.org_id, r.guard_id), r)
    return {org_id for (org_id, _), r in latest.items()
            if is_rising(window_of(r), history_of(session, r, rules.baseline_windows),
                         category, rules)}


def _bucket(moment: datetime, seconds: int) -> datetime:
    stamp = int(moment.timestamp())
    return datetime.fromtimestamp(stamp - stamp % seconds, UTC)


def drafts_for(session: Session, row: EventSummary, rules: AlertRules) -> list[AlertDraft]:
    w = window_of(row)
    history = history_of(session, row, rules.baseline_windows)
    drafts = red_line_crossed(w, rules)
    drafts += tripwire_spike(w, history, rules)
    for category in sorted({cat for _, cat, decision, _ in w.counts if decision != "allow"}):
        if not is_rising(w, history, category, rules):
            continue  # this window changes no organisation count: nothing new to raise
        rising = _rising_orgs(session, category, row.window_end, rules)
        draft = cross_org_rise(category, rising, _bucket(row.window_end,
                                                         rules.cross_org_window_s), rules)
        if draft is not None:
            drafts.append(draft)
    return drafts


def store_alerts(session: Session, drafts: list[AlertDraft]) -> list[Alert]:
    """Insert the drafts not raised before (same rule, subject and window)."""
    new = []
    for d in drafts:
        if session.scalar(select(Alert.id).where(Alert.dedupe_key == d.dedupe_key)):
            continue
        alert = Alert(org_id=d.org_id, rule=d.rule, red_line=d.red_line, category=d.category,
                      message=d.message, details=d.details, dedupe_key=d.dedupe_key)
        try:
            with session.begin_nested():
                session.add(alert)
        except IntegrityError:
            continue
        new.append(alert)
    return new


def ingest_batch(session: Session, principal: Principal, summaries: list[GuardEventSummary],
                 rules: AlertRules) -> tuple[int, int, list[Alert]]:
    """Store new summaries (oldest first) and raise their alerts: (accepted, duplicates,
    alerts)."""
    org = session.get(Org, principal.org_id)
    assert org is not None
    accepted, duplicates, alerts = 0, 0, []
    for i, s in enumerate(sorted(summaries, key=lambda s: s.window_start)):
        try:
            plausible(s.window_start)
            plausible(s.window_end)
        except ValueError as exc:
            raise Rejected("window", f"summary {i} ({s.guard_id}): window time {exc}") from None
        if s.window_end <= s.window_start:
            raise Rejected("window", f"summary {i} ({s.guard_id}): window_end is not after "
                           "window_start")
        exists = session.scalar(select(EventSummary.id).where(
            EventSummary.org_id == org.id, EventSummary.guard_id == s.guard_id,
            EventSummary.window_start == s.window_start))
        if exists is not None:
            duplicates += 1
            continue
        row = EventSummary(
            org_id=org.id, guard_id=s.guard_id, policy_id=s.policy_id,
            window_start=s.window_start, window_end=s.window_end, checks=s.checks,
            counts=[c.model_dump(mode="json") for c in s.counts],
            excerpts=[e.model_dump(mode="json") for e in s.excerpts] if org.share_excerpts
            else [])
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # the same window, pushed concurrently
            duplicates += 1
            continue
        accepted += 1
        alerts += store_alerts(session, drafts_for(session, row, rules))
    return accepted, duplicates, alerts
