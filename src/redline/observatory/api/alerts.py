"""Alerts: list, live Server-Sent Events feed, webhooks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import or_, select
from starlette.concurrency import run_in_threadpool

from redline.observatory.api.deps import RowId, db, hub, slugs
from redline.observatory.auth import Principal, optional_principal, require, unauthorized
from redline.observatory.notify import alert_out, delivery_of, feed_filter
from redline.observatory.problems import Rejected, not_found
from redline.observatory.schemas import AlertOut, DeliveryOut, WebhookCreate, WebhookOut
from redline.observatory.tables import Alert, Webhook, WebhookDelivery, now
from redline.observatory.visibility import can_read_alert
from redline.webhooks import Delivery

router = APIRouter(prefix="/api", tags=["alerts"])
Member = Annotated[Principal, Depends(require("member"))]
Reviewer = Annotated[Principal, Depends(require("reviewer"))]
MaybeMember = Annotated[Principal | None, Depends(optional_principal)]
#: Seconds between keep-alive comments on an idle feed (proxies drop silent connections).
HEARTBEAT_S = 15.0
#: Most alerts replayed to a client resuming the feed with Last-Event-ID.
RESUME_MAX = 1000


@router.get("/alerts", response_model=list[AlertOut])
def list_alerts(request: Request, p: Member, limit: int = 100) -> list[AlertOut]:
    limit = max(1, min(limit, 1000))
    with db(request).session() as s:
        names = slugs(s)
        q = select(Alert)
        if not p.can("coordinator"):
            q = q.where(or_(Alert.org_id.is_(None), Alert.org_id == p.org_id))
        rows = s.scalars(q.order_by(Alert.id.desc()).limit(limit))
        return [alert_out(a, names) for a in rows if can_read_alert(p, a)]


def _missed(request: Request, p: Principal, after: int) -> list[dict[str, Any]]:
    """Alerts after id ``after`` the caller may read, oldest first (at most ``RESUME_MAX``)."""
    with db(request).session() as s:
        names = slugs(s)
        q = select(Alert).where(Alert.id > after)
        if not p.can("coordinator"):
            q = q.where(or_(Alert.org_id.is_(None), Alert.org_id == p.org_id))
        rows = s.scalars(q.order_by(Alert.id).limit(RESUME_MAX))
        return [alert_out(a, names).model_dump(mode="json") for a in rows
                if can_read_alert(p, a)]


def _last_event_id(request: Request) -> int | None:
    raw = request.headers.get("Last-Event-ID", "").strip()
    return int(raw) if raw.isdigit() and len(raw) <= 18 else None


def _event(alert: dict[str, Any]) -> str:
    return f"id: {alert['id']}\nevent: alert\ndata: {json.dumps(alert)}\n\n"


async def _feed(request: Request, p: Principal) -> AsyncIterator[str]:
    async with hub(request).subscribe(feed_filter(p)) as queue:
        yield ": connected\n\n"
        # A reconnecting client (EventSource sends Last-Event-ID) first gets what it missed.
        # Subscribed before reading, so nothing falls between; live alerts already sent
        # from the backlog are skipped by id.
        sent = _last_event_id(request)
        if sent is not None:
            for alert in await run_in_threadpool(_missed, request, p, sent):
                sent = max(sent, int(alert["id"]))
                yield _event(alert)
        while not await request.is_disconnected():
            try:
                alert = await asyncio.wait_for(queue.get(), timeout=HEARTBEAT_S)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if sent is not None and int(alert["id"]) <= sent:
                continue
            yield _event(alert)


@router.get("/alerts/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def alert_stream(request: Request, p: MaybeMember) -> StreamingResponse:
    """Live feed of new alerts the caller may see (Server-Sent Events); with
    ``Last-Event-ID`` it first replays the alerts after that id."""
    if p is None:
        raise unauthorized("the alert feed is for members")
    return StreamingResponse(_feed(request, p), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _hook_out(w: Webhook) -> WebhookOut:
    return WebhookOut(id=w.id, url=w.url, active=w.active, created_at=w.created_at)


@router.post("/webhooks", response_model=WebhookOut, status_code=201)
def create_webhook(body: WebhookCreate, request: Request, p: Reviewer) -> WebhookOut:
    """Alerts your organisation may see are POSTed here, signed with the secret (which is
    never returned)."""
    with db(request).session() as s:
        hook = Webhook(org_id=p.org_id, url=body.url, secret=body.secret)
        s.add(hook)
        s.flush()
        return _hook_out(hook)


@router.get("/webhooks", response_model=list[WebhookOut])
def list_webhooks(request: Request, p: Reviewer) -> list[WebhookOut]:
    with db(request).session() as s:
        return [_hook_out(w) for w in
                s.scalars(select(Webhook).where(Webhook.org_id == p.org_id))]


@router.delete("/webhooks/{hook_id}", response_model=WebhookOut)
def disable_webhook(hook_id: RowId, request: Request, p: Reviewer) -> WebhookOut:
    with db(request).session() as s:
        hook = s.get(Webhook, hook_id)
        if hook is None or hook.org_id != p.org_id:
            raise not_found(f"webhook {hook_id}")
        hook.active = False
        return _hook_out(hook)


def _delivery_out(d: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(id=d.id, webhook_id=d.webhook_id, event=d.event, status=d.status,
                       attempts=d.attempts, last_error=d.last_error,
                       created_at=d.created_at, updated_at=d.updated_at)


@router.get("/webhooks/{hook_id}/deliveries", response_model=list[DeliveryOut])
def list_deliveries(hook_id: RowId, request: Request, p: Reviewer,
                    status: Literal["pending", "delivered", "failed"] | None = None,
                    limit: int = 100) -> list[DeliveryOut]:
    """Calls to one of your webhooks, newest first; ``status=failed`` lists the alerts it
    missed after every retry."""
    limit = max(1, min(limit, 1000))
    with db(request).session() as s:
        hook = s.get(Webhook, hook_id)
        if hook is None or hook.org_id != p.org_id:
            raise not_found(f"webhook {hook_id}")
        q = select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook_id)
        if status is not None:
            q = q.where(WebhookDelivery.status == status)
        q = q.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        return [_delivery_out(d) for d in s.scalars(q.limit(limit))]


def _may_resend(row: WebhookDelivery, longest_s: float) -> bool:
    if row.status == "failed":
        return True
    return row.status == "pending" and (now() - row.updated_at).total_seconds() > longest_s


@router.post("/webhooks/deliveries/{delivery_id}/redeliver", response_model=DeliveryOut,
             status_code=202)
async def redeliver(delivery_id: Annotated[str, Path(max_length=120)], request: Request,
                    p: Reviewer) -> DeliveryOut:
    """Send a failed delivery again (same id and payload, a fresh signature) with the full
    retry policy. A delivery still pending long after its retries would have ended (its
    process stopped) counts as failed. 409 otherwise, or if the webhook is disabled."""
    database, longest_s = db(request), hub(request).calls.policy.longest_s()

    def work() -> tuple[DeliveryOut, Delivery]:
        with database.session() as s:
            row = s.get(WebhookDelivery, delivery_id)
            hook = s.get(Webhook, row.webhook_id) if row is not None else None
            if row is None or hook is None or hook.org_id != p.org_id:
                raise not_found(f"delivery {delivery_id}")
            if not _may_resend(row, longest_s):
                raise Rejected("conflict", f"delivery {delivery_id} is {row.status}; only a "
                               "failed or abandoned delivery is sent again", status=409)
            if not hook.active:
                raise Rejected("conflict", f"webhook {hook.id} is disabled", status=409)
            row.status, row.updated_at = "pending", now()
            s.flush()
            return _delivery_out(row), delivery_of(row, hook)

    out, call = await run_in_threadpool(work)
    hub(request).publish(None, [call])
    return out
