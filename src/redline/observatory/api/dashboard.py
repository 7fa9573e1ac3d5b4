"""The web dashboard: server-rendered (Jinja2, autoescaped) pages and a live alert feed.

Log-in takes an API key and keeps it in an HttpOnly, SameSite=Strict cookie; every page
reads through the same visibility rules as the API. Without a key the pages show the public
view: public attestations and published reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select

from redline.observatory import disclosure
from redline.observatory.api.deps import db, settings, slugs
from redline.observatory.auth import SESSION_COOKIE, Principal, lookup, optional_principal
from redline.observatory.incidents import deadlines
from redline.observatory.notify import alert_out
from redline.observatory.riskmap import risk_map
from redline.observatory.tables import Alert, Attestation, Incident, ReportVendor, VulnReport, now
from redline.observatory.visibility import (
    can_read_alert,
    can_read_attestation,
    can_read_incident,
)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
#: Alerts shown when a dashboard page loads; later ones arrive over the live feed.
RECENT_ALERTS = 50
#: Largest log-in form accepted.
MAX_FORM_BYTES = 4096

router = APIRouter(include_in_schema=False)
env = Environment(loader=FileSystemLoader(TEMPLATES),
                  autoescape=select_autoescape(default=True, default_for_string=True))


def page_principal(request: Request) -> Principal | None:
    """Like the API's optional key, but a stale cookie just shows the public view."""
    try:
        return optional_principal(request)
    except HTTPException:
        return None


MaybeMember = Annotated[Principal | None, Depends(page_principal)]


def _page(name: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(env.get_template(name).render(**context), headers={
        "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
                                   "style-src 'self'; object-src 'none'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff"})


def _view(request: Request, p: Principal | None) -> dict[str, Any]:
    with db(request).session() as s:
        names = slugs(s)
        riskmap = risk_map(a for a in s.scalars(select(Attestation))
                           if can_read_attestation(p, a))
        alerts = [alert_out(a, names) for a in
                  s.scalars(select(Alert).order_by(Alert.id.desc()).limit(RECENT_ALERTS * 4))
                  if can_read_alert(p, a)][:RECENT_ALERTS]
        incidents = [(i, names[i.org_id], deadlines(i.harm_class, i.aware_at, i.resolved_at,
                                                    now()))
                     for i in s.scalars(select(Incident).order_by(Incident.aware_at.desc()))
                     if can_read_incident(p, i)]
        reports = []
        for r in s.scalars(select(VulnReport).order_by(VulnReport.id.desc())):
            vendors = set(s.scalars(select(ReportVendor.org_id)
                                    .where(ReportVendor.report_id == r.id)))
            if disclosure.can_read(p, r, vendors):
                reports.append((r, names[r.reporter_org_id]))
    return {"p": p, "riskmap": riskmap, "alerts": alerts, "incidents": incidents,
            "reports": reports}


@router.get("/", response_class=HTMLResponse)
def home(request: Request, p: MaybeMember) -> HTMLResponse:
    return _page("dashboard.html", **_view(request, p))


@router.get("/login", response_class=HTMLResponse)
def login_form() -> HTMLResponse:
    return _page("login.html", error=None)


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _page("login.html", error="form too large")
    token = parse_qs(body.decode("utf-8", "replace")).get("api_key", [""])[0].strip()
    with db(request).session() as s:
        principal = lookup(s, token) if token else None
    if principal is None:
        page = _page("login.html", error="unknown or revoked API key")
        page.status_code = 401
        return page
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                        secure=settings(request).secure_cookies, path="/")
    return response


@router.post("/logout")
def logout() -> RedirectResponse:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
