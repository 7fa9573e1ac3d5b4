"""Direct database set-up for the operator (``redline observatory org/member/key``): the
first admin has no API key to call the API with."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from redline.errors import InputError, NotFoundError
from redline.observatory.auth import issue_key
from redline.observatory.roles import ROLES
from redline.observatory.schemas import OrgCreate
from redline.observatory.tables import ApiKey, Member, Org, now


def create_org(session: Session, slug: str, name: str, *, share_excerpts: bool = False) -> Org:
    body = OrgCreate(slug=slug, name=name, share_excerpts=share_excerpts)
    if session.scalar(select(Org).where(Org.slug == slug)) is not None:
        raise InputError(f"organisation {slug!r} exists already")
    org = Org(slug=body.slug, name=body.name, share_excerpts=body.share_excerpts)
    session.add(org)
    session.flush()
    return org


def add_member(session: Session, org_slug: str, name: str, role: str) -> tuple[Member, str]:
    """A member with one fresh API key; returns the member and the token (shown once)."""
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}", field="role")
    org = session.scalar(select(Org).where(Org.slug == org_slug))
    if org is None:
        raise NotFoundError(f"no organisation {org_slug!r}")
    member = Member(org_id=org.id, name=name, role=role)
    session.add(member)
    session.flush()
    return member, issue_key(session, member)


def revoke_key(session: Session, prefix: str) -> int:
    """Revoke the live keys whose token starts with ``prefix``; returns how many."""
    keys = list(session.scalars(select(ApiKey).where(ApiKey.prefix == prefix,
                                                     ApiKey.revoked_at.is_(None))))
    for key in keys:
        key.revoked_at = now()
    return len(keys)
