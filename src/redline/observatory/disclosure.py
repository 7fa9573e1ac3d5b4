"""Coordinated disclosure of vulnerability reports.

report → triage → affected vendors notified (the embargo starts: default 90 days) → fix →
publication. While unpublished, only the reporter's organisation, the affected vendors and
coordinators can read a report. Publication needs a fix or the embargo's end (the Project Zero
rule: the deadline holds whether or not the vendor fixed it).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from redline.lexicon import load_lexicon
from redline.observatory.auth import Principal
from redline.observatory.problems import Rejected
from redline.observatory.roles import Role
from redline.observatory.tables import VulnReport

State = Literal["reported", "triaged", "vendors_notified", "fixed", "published", "rejected"]
Action = Literal["triage", "notify", "fix", "publish", "reject"]
Severity = Literal["low", "medium", "high", "critical"]
CVE_ID_PATTERN = r"^CVE-\d{4}-\d{4,19}$"

#: action → (states it applies to, state it leads to, role needed).
TRANSITIONS: dict[str, tuple[tuple[str, ...], str, Role]] = {
    "triage": (("reported",), "triaged", "coordinator"),
    "notify": (("triaged",), "vendors_notified", "coordinator"),
    "fix": (("vendors_notified",), "fixed", "reviewer"),
    "publish": (("vendors_notified", "fixed"), "published", "coordinator"),
    "reject": (("reported", "triaged"), "rejected", "coordinator"),
}


class Affected(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Slug of the vendor organisation (a member of the observatory).
    vendor: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    product: str = Field(min_length=1, max_length=200)
    version: str = Field(default="", max_length=100)
    #: Weights digest (sha256) when the affected artefact is a model file.
    digest: str = Field(default="", max_length=80)


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    description: str = Field(min_length=1, max_length=20_000)
    categories: list[str] = Field(min_length=1, max_length=20)
    affected: list[Affected] = Field(min_length=1, max_length=20)
    severity: Severity

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        lexicon = load_lexicon()
        unknown = [c for c in value if c not in lexicon.ids()]
        if unknown:
            raise ValueError(f"unknown lexicon categories: {', '.join(unknown)}")
        return value


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    #: At triage: the embargo length, counted from vendor notification.
    embargo_days: int | None = Field(default=None, ge=1, le=365)
    cve_id: str | None = Field(default=None, pattern=CVE_ID_PATTERN)
    note: str = Field(default="", max_length=2000)


class ReportOut(ReportIn):
    id: int
    reporter: str
    state: State
    embargo_days: int
    embargo_until: datetime | None
    cve_id: str | None
    published_at: datetime | None
    history: list[dict[str, str]]


def can_read(p: Principal | None, report: VulnReport, vendor_org_ids: set[int]) -> bool:
    if report.state == "published":
        return True
    if p is None:
        return False
    return (p.org_id == report.reporter_org_id or p.org_id in vendor_org_ids
            or p.can("coordinator"))


def apply(report: VulnReport, action: ActionIn, p: Principal, vendor_org_ids: set[int],
          now: datetime) -> None:
    """Move the report along the workflow, or refuse saying why."""
    sources, target, role = TRANSITIONS[action.action]
    if not p.can(role):
        raise Rejected("forbidden", f"{action.action} needs the {role} role", status=403)
    if action.action == "fix" and not (p.org_id in vendor_org_ids or p.can("coordinator")):
        raise Rejected("forbidden", "only an affected vendor or a coordinator marks a fix",
                       status=403)
    if report.state not in sources:
        raise Rejected("state", f"cannot {action.action} a report in state {report.state!r}",
                       status=409)
    if action.action == "publish" and report.state != "fixed":
        assert report.embargo_until is not None
        if now < report.embargo_until:
            raise Rejected("embargo", f"no fix yet and the embargo runs until "
                           f"{report.embargo_until.isoformat()}", status=409)
    if action.embargo_days is not None:
        if action.action != "triage":
            raise Rejected("embargo", "the embargo length is set at triage")
        report.embargo_days = action.embargo_days
    if action.cve_id is not None:
        report.cve_id = action.cve_id
    if action.action == "notify":
        report.embargo_until = now + timedelta(days=report.embargo_days)
    if action.action == "publish":
        report.published_at = now
    report.state = target
    report.history = [*report.history, {"at": now.isoformat(), "action": action.action,
                                        "by": p.org_slug, "note": action.note}]
