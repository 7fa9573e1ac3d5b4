"""Request and response bodies of the API (the OpenAPI spec is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from redline.observatory.roles import Role
from redline.records.guard_events import GuardEventSummary

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
#: Summaries in one batch: a guard pushing every minute for a day fits in three.
MAX_BATCH = 500

#: ``org``: the submitting organisation only; ``members``: every member organisation;
#: ``public``: anyone, including the public dashboard.
Visibility = Literal["org", "members", "public"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrgCreate(_In):
    slug: str = Field(pattern=SLUG_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    share_excerpts: bool = False


class OrgOut(BaseModel):
    id: int
    slug: str
    name: str
    share_excerpts: bool


class MemberCreate(_In):
    name: str = Field(min_length=1, max_length=200)
    role: Role = "member"


class MemberOut(BaseModel):
    id: int
    org: str
    name: str
    role: str


class KeyOut(BaseModel):
    id: int
    prefix: str
    revoked: bool


class NewKey(KeyOut):
    #: The token itself: shown once, stored only as a hash.
    token: str


class SigningKeyCreate(_In):
    public_pem: str = Field(min_length=50, max_length=2000)


class SigningKeyOut(BaseModel):
    key_id: str
    org: str
    created_at: datetime
    revoked: bool


class AttestationIn(_In):
    #: The DSSE envelope exactly as ``redline attest`` wrote it.
    envelope: dict[str, Any]
    visibility: Visibility = "members"


class AttestationOut(BaseModel):
    id: int
    digest: str
    org: str
    key_id: str
    run_id: str
    model: str
    visibility: str
    received_at: datetime
    disclosures: int = 0


class CheckOut(BaseModel):
    name: str
    status: str
    detail: str


class DisclosureIn(_In):
    #: A disclosure bundle from ``redline reveal``.
    bundle: dict[str, Any]


class DisclosureOut(BaseModel):
    id: int
    attestation: str
    revealed: int
    checks: list[CheckOut]


class EventBatch(_In):
    summaries: list[GuardEventSummary] = Field(min_length=1, max_length=MAX_BATCH)


class AlertOut(BaseModel):
    id: int
    rule: str
    #: The organisation concerned, or None for an alert shared with every member.
    org: str | None
    red_line: str | None
    category: str | None
    message: str
    details: dict[str, Any]
    created_at: datetime


class EventBatchOut(BaseModel):
    accepted: int
    #: Summaries already held (same guard and window): a retried push, not counted twice.
    duplicates: int
    alerts: list[AlertOut]


class SummaryOut(BaseModel):
    guard_id: str
    policy_id: str
    window_start: datetime
    window_end: datetime
    checks: int
    counts: list[dict[str, Any]]
    excerpts: list[dict[str, Any]]


class WebhookCreate(_In):
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2000)
    #: Shared secret for the HMAC-SHA256 signature; write-only.
    secret: str = Field(min_length=16, max_length=200)


class WebhookOut(BaseModel):
    id: int
    url: str
    active: bool
    created_at: datetime


class DeliveryOut(BaseModel):
    id: str
    webhook_id: int
    event: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str
    created_at: datetime
    updated_at: datetime
