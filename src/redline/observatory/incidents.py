"""Serious-incident records with the fields and deadlines of the EU GPAI Code of Practice.

Measure 9.2 lists the fields; Measure 9.3 sets the initial report deadline by the kind of
harm (counted from when the provider became aware), intermediate reports at least every four
weeks while unresolved, and a final report within 60 days of resolution.

Sharing follows FIRST TLP 2.0, mapped onto the observatory's organisations (the rule is
``visibility.can_read_incident``): RED (the default) stays with the reporting organisation
and the coordinators; AMBER+STRICT and AMBER add the organisations named in ``share_with``
(AMBER also lets them pass it to their own clients, a handling rule the label carries);
GREEN is shared with every member organisation; CLEAR is public.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

Tlp = Literal["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"]
#: Labels whose audience is the organisations named in ``share_with``.
NAMED_AUDIENCE: frozenset[str] = frozenset({"AMBER", "AMBER+STRICT"})
#: Most organisations one incident may be shared with by name.
MAX_SHARE_WITH = 50
OrgSlug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
HarmClass = Literal["critical_infrastructure", "cybersecurity", "death", "serious_harm"]
IncidentKind = Literal["serious_incident", "near_miss"]

#: Measure 9.3: days from awareness to the initial report, per kind of harm.
INITIAL_REPORT_DAYS: dict[str, int] = {
    "critical_infrastructure": 2,  # serious and irreversible disruption of critical infrastructure
    "cybersecurity": 5,  # serious cybersecurity breach, incl. (self-)exfiltration of weights
    "death": 10,
    "serious_harm": 15,  # health, fundamental rights, property or the environment
}
INTERMEDIATE_EVERY = timedelta(weeks=4)
FINAL_REPORT_AFTER_RESOLUTION = timedelta(days=60)
TEXT = 20_000
#: Dates outside these years are typing errors (and some do not convert to UTC).
YEARS = (1970, 2200)


def plausible(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("needs a UTC offset")
    if not YEARS[0] <= moment.year <= YEARS[1]:
        raise ValueError(f"year {moment.year} is outside {YEARS[0]}–{YEARS[1]}")
    return moment


Moment = Annotated[datetime, AfterValidator(plausible)]


class CopFields(BaseModel):
    """Measure 9.2: what to track and report (1–7 in the initial report, 8–9 later)."""

    model_config = ConfigDict(extra="forbid")

    start_date: Moment  # (1)
    end_date: Moment | None = None  # (1)
    harm: str = Field(max_length=TEXT)  # (2) the resulting harm…
    affected: str = Field(max_length=TEXT)  # (2) …and the victims or affected group
    chain_of_events: str = Field(max_length=TEXT)  # (3)
    model: str = Field(max_length=300)  # (4)
    model_involvement: str = Field(default="", max_length=TEXT)  # (5)
    response: str = Field(default="", max_length=TEXT)  # (6)
    recommendations: str = Field(default="", max_length=TEXT)  # (7)
    root_cause: str = Field(default="", max_length=TEXT)  # (8) incl. mitigation failures
    monitoring_patterns: str = Field(default="", max_length=TEXT)  # (9) incl. near misses


class Sharing(BaseModel):
    """Who besides the reporting organisation and the coordinators may read an incident."""

    model_config = ConfigDict(extra="forbid")

    tlp: Tlp = "RED"
    share_with: list[OrgSlug] = Field(default_factory=list, max_length=MAX_SHARE_WITH)

    @model_validator(mode="after")
    def _audience_fits_the_label(self) -> Sharing:
        if self.share_with and self.tlp not in NAMED_AUDIENCE:
            raise ValueError(f"share_with names organisations only under TLP:AMBER or "
                             f"TLP:AMBER+STRICT, not TLP:{self.tlp}")
        if self.tlp in NAMED_AUDIENCE and not self.share_with:
            raise ValueError(f"TLP:{self.tlp} needs share_with: the organisations to tell")
        return self


class IncidentIn(Sharing):
    title: str = Field(min_length=1, max_length=300)
    kind: IncidentKind = "serious_incident"
    harm_class: HarmClass
    #: When the provider became aware: the deadlines count from here.
    aware_at: Moment
    resolved_at: Moment | None = None
    fields: CopFields


class Deadlines(BaseModel):
    initial_report_due: datetime
    next_intermediate_due: datetime | None
    final_report_due: datetime | None


class IncidentOut(IncidentIn):
    id: int
    org: str
    deadlines: Deadlines


def deadlines(harm_class: str, aware_at: datetime, resolved_at: datetime | None,
              now: datetime) -> Deadlines:
    initial = aware_at + timedelta(days=INITIAL_REPORT_DAYS[harm_class])
    if resolved_at is not None:
        return Deadlines(initial_report_due=initial, next_intermediate_due=None,
                         final_report_due=resolved_at + FINAL_REPORT_AFTER_RESOLUTION)
    nxt = initial + INTERMEDIATE_EVERY
    while nxt < now:
        nxt += INTERMEDIATE_EVERY
    return Deadlines(initial_report_due=initial, next_intermediate_due=nxt,
                     final_report_due=None)
