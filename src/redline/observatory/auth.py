"""API keys and the principal behind a request.

A key is a random token shown once; only its sha256 is stored. Requests carry it as
``Authorization: Bearer <token>``; the dashboard keeps it in an HttpOnly, SameSite=Strict
cookie. Revoked keys and unknown keys get 401; a known key without the role gets 403.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from redline.observatory.roles import Role, at_least
from redline.observatory.tables import ApiKey, Member, Org

TOKEN_PREFIX = "rlo_"
TOKEN_BYTES = 32
PREFIX_CHARS = 10
SESSION_COOKIE = "redline_observatory"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    member_id: int
    member_name: str
    org_id: int
    org_slug: str
    role: str

    def can(self, role: Role) -> bool:
        return at_least(self.role, role)


def issue_key(session: Session, member: Member) -> str:
    """Store the hash of a fresh token for ``member`` and return the token (shown once)."""
    token = new_token()
    session.add(ApiKey(member_id=member.id, prefix=token[:PREFIX_CHARS],
                       token_hash=token_hash(token)))
    session.flush()
    return token


def lookup(session: Session, token: str) -> Principal | None:
    """The principal of a live key, else None."""
    digest = token_hash(token)
    row = session.execute(
        select(ApiKey, Member, Org)
        .join(Member, ApiKey.member_id == Member.id)
        .join(Org, Member.org_id == Org.id)
        .where(ApiKey.token_hash == digest)
    ).first()
    if row is None:
        return None
    key, member, org = row
    if not hmac.compare_digest(key.token_hash, digest) or key.revoked_at is not None:
        return None
    return Principal(member_id=member.id, member_name=member.name, org_id=org.id,
                     org_slug=org.slug, role=member.role)


def request_token(request: Request, *, allow_cookie: bool) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if allow_cookie:
        return request.cookies.get(SESSION_COOKIE)
    return None


def unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail={"reason": "unauthorized", "message": message},
                         headers={"WWW-Authenticate": "Bearer"})


def principal_of(request: Request, *, allow_cookie: bool) -> Principal | None:
    """Resolve the request's key; None without one; 401 for an unknown or revoked key."""
    token = request_token(request, allow_cookie=allow_cookie)
    if token is None:
        return None
    db = request.app.state.db
    with db.session() as session:
        principal = lookup(session, token)
    if principal is None:
        raise unauthorized("unknown or revoked API key")
    return principal


def optional_principal(request: Request) -> Principal | None:
    """For routes a public client may call: a key, if sent, must be valid."""
    return principal_of(request, allow_cookie=True)


def require(role: Role) -> Callable[[Request], Principal]:
    """A dependency that admits keys of ``role`` or above."""

    def dependency(request: Request) -> Principal:
        principal = principal_of(request, allow_cookie=False)
        if principal is None:
            raise unauthorized("an API key is required (Authorization: Bearer …)")
        if not principal.can(role):
            raise HTTPException(status_code=403, detail={
                "reason": "forbidden", "message": f"this needs the {role} role or above"})
        return principal

    return dependency
