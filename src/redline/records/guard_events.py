"""Runtime event summaries: what a guard saw in a time window, without the content.

The guard aggregates decisions into counts per red line, category, surface and decision;
the observatory ingests these summaries in batches. Prompts and replies are never part of
a summary unless the organisation opts in (``excerpts``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

EVENT_SUMMARY_SCHEMA = "redline.guard-events/v1"


class GuardEventCount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    red_line: str
    category: str
    surface: str
    #: The action taken: allow, flag, redact, block, review, end_session, revoke_agent.
    decision: str
    count: int = Field(ge=1)


class GuardExcerpt(BaseModel):
    """Opt-in only: a short excerpt of content that tripped, for shared analysis."""

    model_config = ConfigDict(extra="forbid")

    red_line: str
    surface: str
    text: str = Field(max_length=2000)


class GuardEventSummary(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str = Field(default=EVENT_SUMMARY_SCHEMA, alias="schema")
    #: Stable id of the guard deployment (not of a replica); with ``window_start`` it makes
    #: a summary idempotent, so a retried push is not counted twice.
    guard_id: str
    policy_id: str
    policy_digest: str
    window_start: datetime
    window_end: datetime
    #: Items checked in the window (every surface), so rates have a denominator.
    checks: int = Field(ge=0)
    counts: list[GuardEventCount] = Field(default_factory=list)
    excerpts: list[GuardExcerpt] = Field(default_factory=list)
