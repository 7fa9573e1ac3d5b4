"""Who may read what. Every read goes through these, on the server, for API and dashboard."""

from __future__ import annotations

from redline.observatory.auth import Principal
from redline.observatory.incidents import NAMED_AUDIENCE
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
    """TLP 2.0 (see ``incidents``): CLEAR public, GREEN every member, AMBER(+STRICT) the
    named organisations, and always the reporting organisation and the coordinators."""
    if i.tlp == "CLEAR":
        return True
    if p is None:
        return False
    if p.org_id == i.org_id or p.can("coordinator") or i.tlp == "GREEN":
        return True
    return i.tlp in NAMED_AUDIENCE and p.org_id in i.share_with
