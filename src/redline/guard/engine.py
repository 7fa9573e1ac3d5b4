"""The in-process guard: check inputs, outputs, tool calls and tool results against a policy.

One ``Guard`` serves many sessions. For every item it runs each tripwire that applies to the
item's surface, compares the score with a threshold that the session's and principal's risk
ledgers have moved, applies agent rules to tool calls, records every check and decision in
the audit log, and carries out the action (queue for review, end the session, revoke the
agent). The proxy is a thin HTTP layer over this class.

    guard = await Guard.open(load_policy("idais"), store="memory:")
    decision = await guard.check_input([ChatMessage(role="user", content="hi")],
                                       Scope(principal="alice"))
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redline.errors import RedlineError
from redline.guard import agent_rules, ledger
from redline.guard.audit import AuditLog
from redline.guard.decision import SEVERITY, Decision, Trip, decide, most_severe
from redline.guard.detectors.base import Detector, DetectorResources, Inspected, detectors
from redline.guard.events import EventAggregator
from redline.guard.review import ReviewQueue
from redline.guard.revocation import AgentRegistry
from redline.guard.store.base import GuardStore, LedgerEntry
from redline.guard.store.open import open_store_checked
from redline.policy.model import Policy, RedLine, Surface, Tripwire
from redline.records.chat import ChatMessage, ToolCall
from redline.registry import UnknownPluginError

logger = logging.getLogger(__name__)

#: Modules that register the built-in detectors, imported when a policy first needs one.
BUILTIN_DETECTORS: dict[str, str] = {
    "rules": "redline.guard.detectors.rules",
    "semantic": "redline.guard.detectors.semantic",
    "external": "redline.guard.detectors.external",
    "probe": "redline.probes.detector",
}
#: Earlier user turns handed to detectors as context.
CONTEXT_TURNS = 6
#: Characters of a held item shown to a reviewer.
REVIEW_EXCERPT_CHARS = 400
#: Pseudo red lines for agent rules that no tripwire declares.
REPLICATION_CATEGORY = "CAT.ARA"
EGRESS_CATEGORY = "SEC.EXCESSIVE_AGENCY"


class TripwireUnavailableError(RedlineError):
    """A tripwire's detector cannot run here (not installed, or missing its model)."""

    exit_code = 4


@dataclass(frozen=True)
class Scope:
    """Who is talking and where: the keys of the risk ledgers and the agent registry."""

    principal: str
    session: str | None = None
    #: Registered agent instance making the call, if any.
    agent: str | None = None
    #: Deployment context id (``guard.contexts`` of the policy); ``None`` is the default.
    context: str | None = None

    @property
    def session_key(self) -> str:
        return f"session:{self.principal}:{self.session or '-'}"

    @property
    def principal_key(self) -> str:
        return f"principal:{self.principal}"

    @property
    def ended_key(self) -> str:
        return f"ended:{self.principal}:{self.session or '-'}"


@dataclass(frozen=True)
class _Armed:
    red_line: RedLine
    tripwire: Tripwire
    detector: Detector


@dataclass
class GuardStatus:
    """Which tripwires run and which could not be armed (with the reason)."""

    armed: list[str] = field(default_factory=list)
    inactive: dict[str, str] = field(default_factory=dict)


def _load_factory(name: str) -> Any:
    try:
        return detectors.get(name)
    except UnknownPluginError:
        module = BUILTIN_DETECTORS.get(name)
        if module is None:
            raise
        importlib.import_module(module)
        return detectors.get(name)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _parse_args(arguments: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {"_raw": arguments}
    return parsed if isinstance(parsed, dict) else {"_raw": arguments}


class Guard:
    """Runtime tripwires for one policy, over a state store and an audit log."""

    def __init__(
        self,
        policy: Policy,
        store: GuardStore,
        *,
        audit: AuditLog | None = None,
        resources: DetectorResources | None = None,
        events: EventAggregator | None = None,
        require_all: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.store = store
        self.audit = audit
        self.resources = resources or DetectorResources()
        self.events = events
        self.clock = clock
        self.settings = policy.guard
        self.reviews = ReviewQueue(store, policy.guard.review, clock=clock)
        self.agents = AgentRegistry(store, clock=clock)
        self.status = GuardStatus()
        self._by_surface: dict[Surface, list[_Armed]] = {}
        for red_line, tripwire in policy.tripwires():
            try:
                detector = _load_factory(tripwire.detector)(tripwire, self.resources)
            except (RedlineError, UnknownPluginError, ImportError) as exc:
                if require_all:
                    raise TripwireUnavailableError(
                        f"tripwire {tripwire.id!r} ({tripwire.detector}) cannot run: {exc}"
                    ) from exc
                self.status.inactive[tripwire.id] = f"{tripwire.detector}: {exc}"
                logger.warning("tripwire %s inactive: %s", tripwire.id, exc)
                continue
            self.status.armed.append(tripwire.id)
            for surface in tripwire.applies_to:
                self._by_surface.setdefault(surface, []).append(
                    _Armed(red_line, tripwire, detector)
                )
        if audit is not None:
            audit.append(
                "start",
                {
                    "policy": policy.id,
                    "policy_version": policy.version,
                    "policy_digest": policy.digest(),
                    "armed": self.status.armed,
                    "inactive": self.status.inactive,
                },
            )

    @classmethod
    async def open(
        cls,
        policy: Policy,
        store: str = "memory:",
        *,
        audit_path: str | None = None,
        options: dict[str, Any] | None = None,
        require_all: bool = False,
    ) -> Guard:
        """A guard over the store a URL names (``memory:``, ``sqlite:PATH``, ``redis://…``)."""
        audit = AuditLog(audit_path) if audit_path else None
        return cls(
            policy,
            await open_store_checked(store),
            audit=audit,
            resources=DetectorResources(options=dict(options or {})),
            require_all=require_all,
        )

    async def aclose(self) -> None:
        if self.audit is not None:
            self.audit.close()
        await self.store.close()

    # --- public checks --------------------------------------------------------------------

    async def check_input(
        self,
        messages: Sequence[ChatMessage],
        scope: Scope,
        *,
        held: dict[str, Any] | None = None,
    ) -> Decision:
        """Check the newest user turn, and tool results the client sends back to the model
        (where injected instructions arrive)."""
        users = [m.content for m in messages if m.role == "user"]
        context = tuple(users[-CONTEXT_TURNS - 1 : -1])
        decisions: list[Decision] = []
        tail = _since_last_assistant(messages)
        for m in tail:
            if m.role == "tool":
                item = Inspected(surface="tool_result", text=m.content, context=context)
                decisions.append(await self._check(item, scope, held=held))
        if any(m.role == "user" for m in tail):
            item = Inspected(surface="input", text=users[-1], context=context)
            decisions.append(await self._check(item, scope, held=held))
        return _combine(decisions)

    async def check_output(
        self,
        text: str,
        scope: Scope,
        *,
        tool_calls: Sequence[ToolCall] = (),
        context: Sequence[str] = (),
        held: dict[str, Any] | None = None,
        final: bool = True,
        waive: frozenset[str] = frozenset(),
    ) -> Decision:
        """Check a reply (its text and each tool call); ``context`` is the conversation's user
        turns (the last ``CONTEXT_TURNS`` are kept). ``final=False`` checks a streamed
        prefix: it is audited but does not add to the ledgers, so a reply counts once.
        ``waive`` names tripwires a reviewer already approved for this content: their
        ``review`` action becomes ``flag``."""
        decisions = []
        if text or not tool_calls:
            item = Inspected(surface="output", text=text,
                             context=tuple(context[-CONTEXT_TURNS:]))
            decisions.append(await self._check(item, scope, held=held, observe=final,
                                               waive=waive))
        for call in tool_calls:
            decisions.append(await self.check_tool_call(call.name, call.arguments, scope,
                                                        held=held, waive=waive))
        return _combine(decisions)

    async def check_tool_call(
        self,
        name: str,
        arguments: str | dict[str, Any],
        scope: Scope,
        *,
        held: dict[str, Any] | None = None,
        waive: frozenset[str] = frozenset(),
    ) -> Decision:
        args = _parse_args(arguments)
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        item = Inspected(surface="tool_call", text=text, tool_name=name, tool_args=args)
        return await self._check(item, scope, held=held, waive=waive)

    async def check_tool_result(self, text: str, scope: Scope, *, tool_name: str | None = None
                                ) -> Decision:
        item = Inspected(surface="tool_result", text=text, tool_name=tool_name)
        return await self._check(item, scope)

    async def record_outcome(self, scope: Scope, outcome: str, **data: Any) -> None:
        """Note what happened after a decision (the tool ran, the user reported harm…)."""
        self.audit_event("outcome", {"principal": scope.principal, "session": scope.session,
                                "agent": scope.agent, "outcome": outcome, **data})

    # --- internals --------------------------------------------------------------------------

    def audit_event(self, kind: str, data: dict[str, Any]) -> None:
        """Append a record to the audit log (reviews, registrations, revocations…)."""
        if self.audit is not None:
            self.audit.append(kind, data)

    async def _check(
        self,
        item: Inspected,
        scope: Scope,
        *,
        held: dict[str, Any] | None = None,
        observe: bool = True,
        waive: frozenset[str] = frozenset(),
    ) -> Decision:
        now = self.clock()
        ended, session, principal = await self.store.get_ledgers(
            (scope.ended_key, scope.session_key, scope.principal_key))
        if ended is not None:
            return self._finish(item, scope, Decision(action="end_session",
                                                      notes={"reason": "session ended"}), [])
        if scope.agent is not None and await self.agents.is_revoked(scope.agent):
            return self._finish(item, scope, Decision(action="revoke_agent",
                                                      notes={"reason": "agent revoked"}), [])
        context = self.settings.context(scope.context)
        trips: list[Trip] = []
        checks: list[dict[str, Any]] = []
        #: The highest score, the base threshold of its tripwire, and the tripwire.
        top: tuple[float, float, _Armed] | None = None
        for armed in self._by_surface.get(item.surface, []):
            finding = await armed.detector.detect(item)
            threshold = ledger.effective_threshold(
                armed.tripwire.threshold, session, principal, now, self.settings.ledger, context
            )
            tripped = finding.score >= threshold
            # The detector is the tripwire's, named in the policy the start record pins.
            checks.append({"tripwire": armed.tripwire.id, "score": round(finding.score, 4),
                           "threshold": round(threshold, 4), "tripped": tripped})
            if top is None or finding.score > top[0]:
                top = (finding.score, armed.tripwire.threshold, armed)
            if tripped:
                action = armed.tripwire.action
                if action == "review" and armed.tripwire.id in waive:
                    action = "flag"
                trips.append(Trip(red_line=armed.red_line.id, tripwire=armed.tripwire.id,
                                  category=_category(armed, finding.categories),
                                  action=action, score=finding.score,
                                  threshold=threshold, spans=finding.spans))
        if item.surface == "tool_call" and item.tool_name is not None:
            trips += await self._agent_rule_trips(item, scope, checks)
        decision = decide(trips)
        if observe and top is not None:
            decision = await self._observe(decision, scope, top, bool(trips), now)
        return await self._act(item, scope, decision, checks, held)

    async def _agent_rule_trips(
        self, item: Inspected, scope: Scope, checks: list[dict[str, Any]]
    ) -> list[Trip]:
        rules = self.settings.agents
        name, args = item.tool_name or "", item.tool_args or {}
        trips: list[Trip] = []
        if agent_rules.is_replication(rules, name):
            instance = agent_rules.requested_instance(args)
            record = await self.store.get_agent(instance) if instance else None
            registered = (record is not None and record.revoked_at is None
                          and scope.agent is not None and record.parent == scope.agent)
            checks.append({"rule": "agent.replication", "instance": instance,
                           "tripped": not registered})
            if not registered:
                trips.append(Trip(red_line=self._red_line_for(REPLICATION_CATEGORY),
                                  tripwire="agent.replication-unregistered",
                                  category=REPLICATION_CATEGORY, action="block",
                                  score=1.0, threshold=1.0))
        hosts = agent_rules.disallowed_hosts(rules, args)
        if rules.egress_allow:
            checks.append({"rule": "agent.egress", "disallowed": hosts, "tripped": bool(hosts)})
        if hosts:
            trips.append(Trip(red_line=self._red_line_for(EGRESS_CATEGORY),
                              tripwire="agent.egress", category=EGRESS_CATEGORY,
                              action="block", score=1.0, threshold=1.0))
        return trips

    def _red_line_for(self, category: str) -> str:
        for rl in self.policy.red_lines:
            if rl.category == category:
                return rl.id
        return "agent-rules"

    async def _observe(
        self,
        decision: Decision,
        scope: Scope,
        top: tuple[float, float, _Armed],
        tripped: bool,
        now: float,
    ) -> Decision:
        score, threshold, armed = top
        if score < ledger.NOISE_FRACTION * threshold and not tripped:
            return decision  # noise: the ledger would not change, so skip the writes
        settings = self.settings.ledger

        def update(entry: LedgerEntry | None) -> LedgerEntry:
            return ledger.observe(entry, score, threshold, tripped, now, settings)

        session = await self.store.update_ledger(scope.session_key, update)
        principal = await self.store.update_ledger(scope.principal_key, update)
        if decision.stops or not ledger.ledger_trips(session, principal, now, settings):
            return decision
        trip = Trip(red_line=armed.red_line.id, tripwire="ledger",
                    category=armed.red_line.category, action=settings.action,
                    score=ledger.combined_risk(session, principal, now, settings),
                    threshold=settings.trip_risk)
        action = most_severe([decision.action, settings.action])
        return Decision(action=action, trips=(*decision.trips, trip), ledger=True)

    async def _act(
        self,
        item: Inspected,
        scope: Scope,
        decision: Decision,
        checks: list[dict[str, Any]],
        held: dict[str, Any] | None,
    ) -> Decision:
        if decision.action == "review":
            excerpt = item.text[:REVIEW_EXCERPT_CHARS]
            summary = (f"{item.surface} tool {item.tool_name}: {excerpt}" if item.tool_name
                       else f"{item.surface}: {excerpt}")
            review = await self.reviews.submit(
                principal=scope.principal, session=scope.session, surface=item.surface,
                tripwires=[t.tripwire for t in decision.trips], summary=summary,
                payload=held or {},
            )
            decision = Decision(action="review", trips=decision.trips, ledger=decision.ledger,
                                review_id=review.id)
        elif decision.action == "end_session":
            now = self.clock()
            await self.store.update_ledger(
                scope.ended_key, lambda _e: LedgerEntry(trips=1, updated_at=now)
            )
        elif decision.action == "revoke_agent" and scope.agent is not None:
            revoked = await self.agents.revoke(scope.agent, by="guard",
                                               reason=",".join(decision.red_lines()))
            decision.notes["revoked"] = revoked
        return self._finish(item, scope, decision, checks)

    def _finish(
        self, item: Inspected, scope: Scope, decision: Decision, checks: list[dict[str, Any]]
    ) -> Decision:
        if self.audit is not None:
            # One record per item: the decision with every check that ran for it, so a
            # logged pass shows what scanned the content.
            self.audit.append("decision", {
                "surface": item.surface, "principal": scope.principal,
                "session": scope.session, "agent": scope.agent,
                "item_sha256": _digest(item.text), "chars": len(item.text),
                "action": decision.action, "ledger": decision.ledger,
                "red_lines": decision.red_lines(),
                "tripwires": [t.tripwire for t in decision.trips],
                "review": decision.review_id, "checks": checks, **decision.notes,
            })
        if self.events is not None:
            self.events.record(item.surface, decision)
        return decision


def _category(armed: _Armed, scores: dict[str, float]) -> str:
    if scores:
        return max(scores, key=lambda c: scores[c])
    return armed.red_line.category


def _since_last_assistant(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Messages after the model's last turn: what is new in this request."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "assistant":
            return list(messages[i + 1 :])
    return list(messages)


def _combine(decisions: list[Decision]) -> Decision:
    """Several items checked for one request: the most severe decision stands, with every
    trip kept for the record."""
    if not decisions:
        return decide([])
    worst = max(decisions, key=lambda d: SEVERITY.index(d.action))
    trips = tuple(t for d in decisions for t in d.trips)
    return Decision(action=worst.action, trips=trips, ledger=any(d.ledger for d in decisions),
                    review_id=worst.review_id, notes=worst.notes)
