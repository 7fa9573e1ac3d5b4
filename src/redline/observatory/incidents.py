"""Serious-incident records with the fields and deadlines of the EU GPAI Code of Practice.

Measure 9.2 lists the fields; Measure 9.3 sets the initial report deadline by the kind of
harm (counted from when the provider became aware), intermediate reports at least every four
weeks while unresolved, and a final report within 60 days of resolution.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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


class IncidentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
