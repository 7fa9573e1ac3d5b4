"""Organisations, members, API keys and signing keys."""

from __future__ import annotations

from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from redline.evidence.keys import key_id
from redline.observatory.api.deps import RowId, Slug, db, org_by_slug
from redline.observatory.auth import Principal, issue_key, require
from redline.observatory.problems import Rejected, not_found
from redline.observatory.schemas import (
    KeyOut,
    MemberCreate,
    MemberOut,
    NewKey,
    OrgCreate,
    OrgOut,
    SigningKeyCreate,
    SigningKeyOut,
)
from redline.observatory.tables import ApiKey, Member, Org, SigningKey, now

router = APIRouter(prefix="/api", tags=["admin"])
Admin = Annotated[Principal, Depends(require("admin"))]
Reviewer = Annotated[Principal, Depends(require("reviewer"))]
Anyone = Annotated[Principal, Depends(require("member"))]


@router.get("/me", response_model=MemberOut)
def me(p: Anyone) -> MemberOut:
    return MemberOut(id=p.member_id, org=p.org_slug, name=p.member_name, role=p.role)


@router.post("/orgs", response_model=OrgOut, status_code=201)
def create_org(body: OrgCreate, request: Request, _: Admin) -> OrgOut:
    with db(request).session() as s:
        if s.scalar(select(Org).where(Org.slug == body.slug)) is not None:
            raise Rejected("exists", f"organisation {body.slug!r} exists", status=409)
        org = Org(slug=body.slug, name=body.name, share_excerpts=body.share_excerpts)
        s.add(org)
        s.flush()
        return OrgOut(id=org.id, slug=org.slug, name=org.name,
                      share_excerpts=org.share_excerpts)


@router.get("/orgs", response_model=list[OrgOut])
def list_orgs(request: Request, _: Anyone) -> list[OrgOut]:
    with db(request).session() as s:
        return [OrgOut(id=o.id, slug=o.slug, name=o.name, share_excerpts=o.share_excerpts)
                for o in s.scalars(select(Org).order_by(Org.slug))]


@router.post("/orgs/{slug}/members", response_model=MemberOut, status_code=201)
def add_member(slug: Slug, body: MemberCreate, request: Request, _: Admin) -> MemberOut:
    with db(request).session() as s:
        org = org_by_slug(s, slug)
        member = Member(org_id=org.id, name=body.name, role=body.role)
        s.add(member)
        s.flush()
        return MemberOut(id=member.id, org=org.slug, name=member.name, role=member.role)


@router.post("/members/{member_id}/keys", response_model=NewKey, status_code=201)
def create_key(member_id: RowId, request: Request, _: Admin) -> NewKey:
    with db(request).session() as s:
        member = s.get(Member, member_id)
        if member is None:
            raise not_found(f"member {member_id}")
        token = issue_key(s, member)
        key = s.scalar(select(ApiKey).where(ApiKey.member_id == member.id)
                       .order_by(ApiKey.id.desc()))
        assert key is not None
        return NewKey(id=key.id, prefix=key.prefix, revoked=False, token=token)


@router.post("/keys/{key_id}/revoke", response_model=KeyOut)
def revoke_key(key_id: RowId, request: Request, p: Admin) -> KeyOut:
    with db(request).session() as s:
        key = s.get(ApiKey, key_id)
        if key is None:
            raise not_found(f"API key {key_id}")
        if key.member_id == p.member_id:
            raise Rejected("own_key", "another admin revokes your keys (so that no one locks "
                           "the observatory's last admin out)", status=409)
        key.revoked_at = key.revoked_at or now()
        return KeyOut(id=key.id, prefix=key.prefix, revoked=True)


def _signing_out(k: SigningKey, slug: str) -> SigningKeyOut:
    return SigningKeyOut(key_id=k.key_id, org=slug, created_at=k.created_at,
                         revoked=k.revoked_at is not None)


@router.post("/orgs/{slug}/signing-keys", response_model=SigningKeyOut, status_code=201)
def register_signing_key(slug: Slug, body: SigningKeyCreate, request: Request,
                         p: Reviewer) -> SigningKeyOut:
    """Register an Ed25519 public key whose attestations this organisation submits."""
    try:
        public = load_pem_public_key(body.public_pem.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError):
        raise Rejected("key", "not a PEM public key") from None
    if not isinstance(public, Ed25519PublicKey):
        raise Rejected("key", f"expected an Ed25519 key, got {type(public).__name__}")
    with db(request).session() as s:
        org = org_by_slug(s, slug)
        if org.id != p.org_id and not p.can("admin"):
            raise not_found(f"organisation {slug!r}")
        row = SigningKey(org_id=org.id, key_id=key_id(public), public_pem=body.public_pem)
        try:
            with s.begin_nested():
                s.add(row)
        except IntegrityError:
            raise Rejected("exists", "this key is registered already", status=409) from None
        return _signing_out(row, org.slug)


@router.get("/orgs/{slug}/signing-keys", response_model=list[SigningKeyOut])
def list_signing_keys(slug: Slug, request: Request, _: Anyone) -> list[SigningKeyOut]:
    with db(request).session() as s:
        org = org_by_slug(s, slug)
        return [_signing_out(k, org.slug) for k in
                s.scalars(select(SigningKey).where(SigningKey.org_id == org.id))]
