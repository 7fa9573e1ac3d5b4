"""Turn stored alerts into what goes out: API bodies, webhook deliveries, SSE filters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from redline.observatory.auth import Principal
from redline.observatory.schemas import AlertOut
from redline.observatory.tables import Alert, Webhook, WebhookDelivery, now
from redline.webhooks import Delivery, Outcome

ALERT_EVENT = "alert"


def alert_out(a: Alert, names: dict[int, str]) -> AlertOut:
    return AlertOut(id=a.id, rule=a.rule, org=names.get(a.org_id) if a.org_id else None,
                    red_line=a.red_line, category=a.category, message=a.message,
                    details=a.details, created_at=a.created_at)


def deliveries_for(session: Session, a: Alert, names: dict[int, str]) -> list[Delivery]:
    """One call per active webhook of an organisation that may see the alert, each stored
    as pending in the alert's own transaction (no alert without its delivery records)."""
    q = select(Webhook).where(Webhook.active.is_(True))
    if a.org_id is not None:
        q = q.where(Webhook.org_id == a.org_id)
    payload = {"event": ALERT_EVENT, "alert": alert_out(a, names).model_dump(mode="json")}
    out = []
    for w in session.scalars(q):
        row = WebhookDelivery(id=f"alert-{a.id}-hook-{w.id}", webhook_id=w.id,
                              event=ALERT_EVENT, payload=payload, status="pending",
                              attempts=0, last_error="")
        session.add(row)
        out.append(delivery_of(row, w))
    return out


def delivery_of(row: WebhookDelivery, hook: Webhook) -> Delivery:
    return Delivery(url=hook.url, secret=hook.secret, event=row.event, delivery_id=row.id,
                    payload=row.payload)


def record_outcome(session: Session, d: Delivery, outcome: Outcome) -> None:
    """Keep what a call came to: attempts add up over redeliveries."""
    row = session.get(WebhookDelivery, d.delivery_id)
    if row is None:
        return
    row.status = "delivered" if outcome.delivered else "failed"
    row.attempts += outcome.attempts
    row.last_error = outcome.error
    row.updated_at = now()


def feed_filter(p: Principal) -> Callable[[dict[str, Any]], bool]:
    """What a live feed subscriber may see: mirrors ``visibility.can_read_alert``."""
    def accepts(alert: dict[str, Any]) -> bool:
        return alert.get("org") in (None, p.org_slug) or p.can("coordinator")
    return accepts
