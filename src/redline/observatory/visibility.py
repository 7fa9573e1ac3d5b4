"""Who may read what. Every read goes through these, on the server, for API and dashboard."""

from __future__ import annotations

from redline.observatory.auth import Principal
from redline.observatory.tables import Alert, Attestation, Incident


def can_read_attestation(p: Principal | None, a: Attestation) -> bool:
    if a.visibility == "public":
        return True
    if p is None:
        return False
    return a.visibility == "members" or p.org_id == a.org_id or p.can("coordinator")


def can_read_alert(p: Principal | None, a: Alert) -> bool:
    """Alerts are for members: an organisation's own, the shared ones, all for coordinators."""
    if p is None:
        return False
    return a.org_id is None or a.org_id == p.org_id or p.can("coordinator")


def can_read_incident(p: Principal | None, i: Incident) -> bool:
    return p is not None and (p.org_id == i.org_id or p.can("coordinator"))
