"""Database tables (SQLAlchemy 2 declarative). The Alembic migrations in ``migrations/``
create exactly these; a test compares the two."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC, read back as aware UTC, so SQLite and PostgreSQL agree."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Org(Base):
    __tablename__ = "orgs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    #: Opt-in: keep the content excerpts guards attach to summaries (dropped otherwise).
    share_excerpts: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=now)


class Member(Base):
    __tablename__ = "members"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=now)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    #: The first characters of the token, to tell keys apart in listings.
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=now)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class SigningKey(Base):
    __tablename__ = "signing_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"), index=True)
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    public_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Attestation(Base):
    __tablename__ = "attestations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"), index=True)
    #: sha256 of the signed payload: unique, so a replayed attestation is refused.
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(300))
    visibility: Mapped[str] = mapped_column(String(16))
    envelope: Mapped[dict[str, Any]] = mapped_column()
    statement: Mapped[dict[str, Any]] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=now)


class Disclosure(Base):
    __tablename__ = "disclosures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    attestation_id: Mapped[int] = mapped_column(ForeignKey("attestations.id"), index=True)
    bundle_digest: Mapped[str] = mapped_column(String(64), unique=True)
    bundle: Mapped[dict[str, Any]] = mapped_column()
    revealed: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(default=now)


class EventSummary(Base):
    __tablename__ = "event_summaries"
    __table_args__ = (UniqueConstraint("org_id", "guard_id", "window_start"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"), index=True)
    guard_id: Mapped[str] = mapped_column(String(200))
    policy_id: Mapped[str] = mapped_column(String(200))
    window_start: Mapped[datetime] = mapped_column()
    window_end: Mapped[datetime] = mapped_column(index=True)
    checks: Mapped[int] = mapped_column(BigInteger)
    counts: Mapped[list[Any]] = mapped_column()
    excerpts: Mapped[list[Any]] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=now)


class Alert(Base):
    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: None for an alert shared with every member (cross-organisation rules).
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"), index=True)
    rule: Mapped[str] = mapped_column(String(32))
    red_line: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column()
    #: One alert per rule, subject and window: re-ingesting the same window adds none.
    dedupe_key: Mapped[str] = mapped_column(String(400), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=now)


class Webhook(Base):
    __tablename__ = "webhooks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    #: Needed in clear to sign calls; never returned by the API.
    secret: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=now)


class WebhookDelivery(Base):
    """One alert's call to one webhook, kept after the retries ran out so that an alert a
    receiver missed is listed and can be sent again instead of being lost."""

    __tablename__ = "webhook_deliveries"
    #: ``alert-<alert id>-hook-<webhook id>``, sent as ``X-Redline-Delivery`` (receivers
    #: deduplicate on it).
    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column()
    #: ``pending`` (queued or being retried), ``delivered`` or ``failed`` (retries spent).
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)


class Incident(Base):
    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(32))
    harm_class: Mapped[str] = mapped_column(String(48))
    aware_at: Mapped[datetime] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    #: The EU Code of Practice Measure 9.2 fields (see ``redline.observatory.incidents``).
    fields: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=now)
    #: FIRST TLP 2.0 label and, for AMBER, the ids of the organisations told.
    tlp: Mapped[str] = mapped_column(String(16), default="RED", server_default="RED")
    share_with: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")


class VulnReport(Base):
    __tablename__ = "vuln_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reporter_org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text)
    categories: Mapped[list[Any]] = mapped_column()
    affected: Mapped[list[Any]] = mapped_column()
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(24), index=True)
    embargo_days: Mapped[int] = mapped_column(Integer)
    embargo_until: Mapped[datetime | None] = mapped_column(default=None)
    cve_id: Mapped[str | None] = mapped_column(String(32), default=None)
    history: Mapped[list[Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=now)
    published_at: Mapped[datetime | None] = mapped_column(default=None)


class ReportVendor(Base):
    """An organisation named as an affected vendor of a report: it may read it in embargo."""

    __tablename__ = "report_vendors"
    report_id: Mapped[int] = mapped_column(ForeignKey("vuln_reports.id"), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"), primary_key=True)
