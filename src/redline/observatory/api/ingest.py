"""Ingest: attestations (with disclosure bundles) and guard event summaries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from redline.observatory import attestations, events
from redline.observatory.api.deps import Digest, db, hub, settings, slugs
from redline.observatory.auth import Principal, optional_principal, require
from redline.observatory.notify import alert_out, deliveries_for
from redline.observatory.problems import not_found
from redline.observatory.riskmap import RiskMap, risk_map
from redline.observatory.schemas import (
    AlertOut,
    AttestationIn,
    AttestationOut,
    CheckOut,
    DisclosureIn,
    DisclosureOut,
    EventBatch,
    EventBatchOut,
    SummaryOut,
)
from redline.observatory.tables import Attestation, Disclosure, EventSummary
from redline.observatory.visibility import can_read_attestation
from redline.webhooks import Delivery

router = APIRouter(prefix="/api", tags=["ingest"])
Member = Annotated[Principal, Depends(require("member"))]
MaybeMember = Annotated[Principal | None, Depends(optional_principal)]


def _out(s: Session, a: Attestation, slug: str) -> AttestationOut:
    count = s.scalar(select(func.count()).select_from(Disclosure)
                     .where(Disclosure.attestation_id == a.id)) or 0
    return AttestationOut(id=a.id, digest=a.digest, org=slug, key_id=a.key_id,
                          run_id=a.run_id, model=a.model, visibility=a.visibility,
                          received_at=a.received_at, disclosures=count)


@router.post("/attestations", response_model=AttestationOut, status_code=201)
def submit_attestation(body: AttestationIn, request: Request, p: Member) -> AttestationOut:
    """Verify the DSSE signature against this organisation's keys, refuse replays, store."""
    with db(request).session() as s:
        row = attestations.ingest(s, p, body)
        return _out(s, row, p.org_slug)


def _readable(s: Session, p: Principal | None, digest: str) -> Attestation:
    row = s.scalar(select(Attestation).where(Attestation.digest == digest))
    if row is None or not can_read_attestation(p, row):
        raise not_found(f"attestation {digest[:16]}")
    return row


@router.get("/attestations", response_model=list[AttestationOut])
def list_attestations(request: Request, p: MaybeMember) -> list[AttestationOut]:
    with db(request).session() as s:
        names = slugs(s)
        rows = s.scalars(select(Attestation).order_by(Attestation.received_at.desc()))
        return [_out(s, a, names[a.org_id]) for a in rows if can_read_attestation(p, a)]


@router.get("/attestations/{digest}", response_model=AttestationOut)
def get_attestation(digest: Digest, request: Request, p: MaybeMember) -> AttestationOut:
    with db(request).session() as s:
        row = _readable(s, p, digest)
        return _out(s, row, slugs(s)[row.org_id])


@router.post("/attestations/{digest}/disclosures", response_model=DisclosureOut,
             status_code=201)
def attach_disclosure(digest: Digest, body: DisclosureIn, request: Request,
                      p: Member) -> DisclosureOut:
    """A bundle from ``redline reveal``, verified against the stored root and signature."""
    with db(request).session() as s:
        row = _readable(s, p, digest)
        if row.org_id != p.org_id:
            raise not_found(f"attestation {digest[:16]} of your organisation")
        disclosure, report = attestations.attach_disclosure(s, row, body.bundle)
        return DisclosureOut(id=disclosure.id, attestation=row.digest,
                             revealed=disclosure.revealed,
                             checks=[CheckOut(**c.model_dump()) for c in report.checks])


@router.get("/riskmap", response_model=RiskMap)
def get_riskmap(request: Request, p: MaybeMember) -> RiskMap:
    """Models × categories from the latest attestation per model that the caller may read
    (public ones only without a key)."""
    with db(request).session() as s:
        return risk_map(a for a in s.scalars(select(Attestation))
                        if can_read_attestation(p, a))


@router.post("/events", response_model=EventBatchOut)
async def submit_events(body: EventBatch, request: Request, p: Member) -> EventBatchOut:
    """A batch of guard summaries; new windows are evaluated by the alert rules at once."""
    database, rules = db(request), settings(request).alerts

    def work() -> tuple[int, int, list[tuple[AlertOut, list[Delivery]]]]:
        with database.session() as s:
            accepted, dups, alerts = events.ingest_batch(s, p, body.summaries, rules)
            s.flush()
            names = slugs(s)
            return accepted, dups, [(alert_out(a, names), deliveries_for(s, a, names))
                                    for a in alerts]

    accepted, dups, raised = await run_in_threadpool(work)
    for alert, deliveries in raised:
        hub(request).publish(alert.model_dump(mode="json"), deliveries)
    return EventBatchOut(accepted=accepted, duplicates=dups, alerts=[a for a, _ in raised])


@router.get("/events", response_model=list[SummaryOut])
def list_events(request: Request, p: Member, guard_id: str | None = None,
                limit: int = 100) -> list[SummaryOut]:
    """Your organisation's own summaries only: runtime events are private."""
    limit = max(1, min(limit, 1000))
    with db(request).session() as s:
        q = select(EventSummary).where(EventSummary.org_id == p.org_id)
        if guard_id is not None:
            q = q.where(EventSummary.guard_id == guard_id)
        rows = s.scalars(q.order_by(EventSummary.window_start.desc()).limit(limit))
        return [SummaryOut(guard_id=r.guard_id, policy_id=r.policy_id,
                           window_start=r.window_start, window_end=r.window_end,
                           checks=r.checks, counts=r.counts, excerpts=r.excerpts)
                for r in rows]
