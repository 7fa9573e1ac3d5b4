"""Runtime event summaries: what a guard saw in a time window, without the content.

The guard aggregates decisions into counts per red line, category, surface and decision;
the observatory ingests these summaries in batches. Prompts and replies are never part of
a summary unless the organisation opts in (``excerpts``).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from redline.errors import InputError

EVENT_SUMMARY_SCHEMA = "redline.guard-events/v1"
#: Largest summaries file read at once.
MAX_EVENTS_BYTES = 256 * 1024 * 1024


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


def read_event_summaries(path: Path) -> list[GuardEventSummary]:
    """Guard event summaries from a JSON Lines file; a bad line is named."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=path) from None
    if size > MAX_EVENTS_BYTES:
        raise InputError(f"file is {size} bytes; the limit is {MAX_EVENTS_BYTES}", file=path)
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(GuardEventSummary.model_validate_json(line))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or None
            raise InputError(f"invalid guard event summary: {err['msg']}", file=path,
                             line=lineno, field=field) from None
    return out


def append_event_summaries(path: Path, summaries: list[GuardEventSummary]) -> None:
    """Append summaries as JSON Lines (what ``redline observatory push --events`` and
    ``redline drift --events`` read). One ``O_APPEND`` write per batch, so lines from the
    workers of one guard sharing the file are never torn or interleaved."""
    if not summaries:
        return
    data = "".join(s.model_dump_json(by_alias=True) + "\n" for s in summaries).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
    finally:
        os.close(fd)
    if written != len(data):
        raise OSError(f"{path}: short write ({written} of {len(data)} bytes)")
