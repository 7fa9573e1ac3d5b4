"""What the guard decided about one item, and the rules that combine tripwire outcomes.

Pure functions and named constants, so the decision logic can be audited on one page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import get_args

from redline.policy.model import Action

#: Actions from least to most severe, as the policy declares them.
SEVERITY: tuple[Action, ...] = get_args(Action)
#: Actions after which the content does not reach its recipient (as it was).
STOPPING: frozenset[Action] = frozenset({"block", "review", "end_session", "revoke_agent"})
#: Actions that let content pass, possibly changed.
PASSING: frozenset[Action] = frozenset({"allow", "flag", "redact"})


@dataclass(frozen=True)
class Trip:
    """One tripwire (or the ledger) that fired."""

    red_line: str
    tripwire: str
    category: str
    action: Action
    score: float
    threshold: float
    #: Character spans of the inspected text that matched (for redaction).
    spans: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Decision:
    """The guard's verdict on one item: the action and every trip that led to it."""

    action: Action
    trips: tuple[Trip, ...] = ()
    #: Set when the action comes from accumulated risk rather than a single item.
    ledger: bool = False
    #: Review id when the action is ``review``.
    review_id: str | None = None
    #: Extra facts for the audit log (never sent to clients).
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def stops(self) -> bool:
        return self.action in STOPPING

    def red_lines(self) -> list[str]:
        return list(dict.fromkeys(t.red_line for t in self.trips))

    def spans(self) -> list[tuple[int, int]]:
        """Every matched span of every trip: what redaction replaces."""
        return [span for t in self.trips for span in t.spans]

    def categories(self) -> list[str]:
        return list(dict.fromkeys(t.category for t in self.trips))


ALLOW = Decision(action="allow")


def most_severe(actions: list[Action]) -> Action:
    """The most severe of ``actions`` (``allow`` when there are none)."""
    return max(actions, key=SEVERITY.index, default="allow")


def decide(trips: list[Trip]) -> Decision:
    """One decision from the trips of one item: the most severe action wins."""
    if not trips:
        return ALLOW
    return Decision(action=most_severe([t.action for t in trips]), trips=tuple(trips))


def redact(text: str, spans: list[tuple[int, int]], marker: str = "[redacted]") -> str:
    """``text`` with every span (merged where they overlap) replaced by ``marker``."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, pos = [], 0
    for start, end in merged:
        out.append(text[pos:start])
        out.append(marker)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def client_message(decision: Decision) -> str:
    """What the client reads when content is stopped: which red line and what happens next,
    never detector names, scores or patterns."""
    lines = ", ".join(decision.red_lines()) or "a policy red line"
    if decision.action == "review":
        return (
            f"I can't continue yet: this was held for human review under the red line(s) {lines}"
            f" (review {decision.review_id})."
        )
    if decision.action == "end_session":
        return (
            f"I can't help with that, and this session has ended: it crossed the red line(s)"
            f" {lines}."
        )
    if decision.action == "revoke_agent":
        return f"I can't help with that: this agent's credential was revoked for crossing {lines}."
    why = "accumulated risk in this conversation" if decision.ledger else "the request"
    return f"I can't help with that: it was blocked because {why} crosses the red line(s) {lines}."
