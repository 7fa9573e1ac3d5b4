"""Incidents (EU Code of Practice) and vulnerability reports (coordinated disclosure)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from redline.observatory import disclosure
from redline.observatory.api.deps import RowId, db, org_by_slug, settings, slugs
from redline.observatory.auth import Principal, optional_principal, require
from redline.observatory.cve import cve_record
from redline.observatory.disclosure import ActionIn, ReportIn, ReportOut
from redline.observatory.incidents import IncidentIn, IncidentOut, Sharing, deadlines
from redline.observatory.problems import Rejected, not_found
from redline.observatory.tables import Incident, ReportVendor, VulnReport, now
from redline.observatory.visibility import can_read_incident

router = APIRouter(prefix="/api", tags=["incidents and reports"])
Member = Annotated[Principal, Depends(require("member"))]
MaybeMember = Annotated[Principal | None, Depends(optional_principal)]
#: Assigner short name in exported CVE records.
ASSIGNER = "redline-observatory"


Reviewer = Annotated[Principal, Depends(require("reviewer"))]


def _incident_out(i: Incident, names: dict[int, str]) -> IncidentOut:
    return IncidentOut.model_validate({
        "id": i.id, "org": names[i.org_id], "title": i.title, "kind": i.kind,
        "harm_class": i.harm_class, "aware_at": i.aware_at, "resolved_at": i.resolved_at,
        "fields": i.fields, "tlp": i.tlp, "share_with": [names[o] for o in i.share_with],
        "deadlines": deadlines(i.harm_class, i.aware_at, i.resolved_at, now())})


def _audience(s: Session, sharing: Sharing) -> list[int]:
    """The ids of the organisations named in ``share_with`` (422 naming an unknown one)."""
    return sorted({org_by_slug(s, slug).id for slug in sharing.share_with})


@router.post("/incidents", response_model=IncidentOut, status_code=201)
def report_incident(body: IncidentIn, request: Request, p: Member) -> IncidentOut:
    """Record a serious incident or near miss; ``tlp`` (default RED) says who else may
    read it."""
    with db(request).session() as s:
        row = Incident(org_id=p.org_id, title=body.title, kind=body.kind,
                       harm_class=body.harm_class, aware_at=body.aware_at,
                       resolved_at=body.resolved_at, fields=body.fields.model_dump(mode="json"),
                       tlp=body.tlp, share_with=_audience(s, body))
        s.add(row)
        s.flush()
        return _incident_out(row, slugs(s))


@router.get("/incidents", response_model=list[IncidentOut])
def list_incidents(request: Request, p: MaybeMember) -> list[IncidentOut]:
    """The incidents you may read under their TLP labels (TLP:CLEAR ones without a key),
    with deadlines."""
    with db(request).session() as s:
        names = slugs(s)
        return [_incident_out(i, names)
                for i in s.scalars(select(Incident).order_by(Incident.aware_at.desc()))
                if can_read_incident(p, i)]


@router.put("/incidents/{incident_id}/sharing", response_model=IncidentOut)
def share_incident(incident_id: RowId, body: Sharing, request: Request,
                   p: Reviewer) -> IncidentOut:
    """Relabel one of your organisation's incidents (widen or narrow who may read it)."""
    with db(request).session() as s:
        row = s.get(Incident, incident_id)
        if row is None or row.org_id != p.org_id:
            raise not_found(f"incident {incident_id}")
        row.tlp, row.share_with = body.tlp, _audience(s, body)
        s.flush()
        return _incident_out(row, slugs(s))


def _vendors(s: Session, report: VulnReport) -> set[int]:
    return set(s.scalars(select(ReportVendor.org_id).where(ReportVendor.report_id == report.id)))


def _report_out(r: VulnReport, names: dict[int, str]) -> ReportOut:
    return ReportOut.model_validate({
        "id": r.id, "reporter": names[r.reporter_org_id], "title": r.title,
        "description": r.description, "categories": r.categories, "affected": r.affected,
        "severity": r.severity, "state": r.state, "embargo_days": r.embargo_days,
        "embargo_until": r.embargo_until, "cve_id": r.cve_id, "published_at": r.published_at,
        "history": r.history})


def _readable(s: Session, p: Principal | None, report_id: int) -> tuple[VulnReport, set[int]]:
    r = s.get(VulnReport, report_id)
    if r is None:
        raise not_found(f"report {report_id}")
    vendors = _vendors(s, r)
    if not disclosure.can_read(p, r, vendors):
        raise not_found(f"report {report_id}")
    return r, vendors


@router.post("/reports", response_model=ReportOut, status_code=201)
def submit_report(body: ReportIn, request: Request, p: Member) -> ReportOut:
    with db(request).session() as s:
        vendor_ids = {org_by_slug(s, a.vendor).id for a in body.affected}
        r = VulnReport(reporter_org_id=p.org_id, title=body.title, description=body.description,
                       categories=body.categories,
                       affected=[a.model_dump(mode="json") for a in body.affected],
                       severity=body.severity, state="reported",
                       embargo_days=settings(request).embargo_days,
                       history=[{"at": now().isoformat(), "action": "report",
                                 "by": p.org_slug, "note": ""}])
        s.add(r)
        s.flush()
        s.add_all(ReportVendor(report_id=r.id, org_id=v) for v in vendor_ids)
        return _report_out(r, slugs(s))


@router.get("/reports", response_model=list[ReportOut])
def list_reports(request: Request, p: MaybeMember) -> list[ReportOut]:
    """Published reports for everyone; embargoed ones only for the reporter, the affected
    vendors and coordinators."""
    with db(request).session() as s:
        names = slugs(s)
        return [_report_out(r, names)
                for r in s.scalars(select(VulnReport).order_by(VulnReport.id.desc()))
                if disclosure.can_read(p, r, _vendors(s, r))]


@router.get("/reports/{report_id}", response_model=ReportOut)
def get_report(report_id: RowId, request: Request, p: MaybeMember) -> ReportOut:
    with db(request).session() as s:
        r, _ = _readable(s, p, report_id)
        return _report_out(r, slugs(s))


@router.post("/reports/{report_id}/actions", response_model=ReportOut)
def act_on_report(report_id: RowId, body: ActionIn, request: Request, p: Member) -> ReportOut:
    """Advance the disclosure workflow: triage, notify, fix, publish or reject."""
    with db(request).session() as s:
        r, vendors = _readable(s, p, report_id)
        disclosure.apply(r, body, p, vendors, now())
        return _report_out(r, slugs(s))


@router.get("/reports/{report_id}/cve")
def export_cve(report_id: RowId, request: Request, p: MaybeMember) -> dict[str, Any]:
    """The report as a CVE JSON 5.1 record with lexicon and ATLAS taxonomy mappings."""
    with db(request).session() as s:
        r, _ = _readable(s, p, report_id)
        if r.state == "rejected":
            raise Rejected("state", "a rejected report has no CVE record", status=409)
        url = str(request.url_for("get_report", report_id=r.id))
        return cve_record(r, assigner=ASSIGNER, reporter=slugs(s)[r.reporter_org_id],
                          report_url=url, now=now())
