"""Policy records: red lines, the evidence that tests them and the tripwires that enforce them.

Cross-references that need the lexicon or other files (category ids, ``extends``, profile
ids) are checked by the loader, which knows where each value sits in its file.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from redline.errors import NotFoundError
from redline.lexicon import did_you_mean

Severity = Literal["critical", "high", "medium", "low"]
#: Where a tripwire looks: the user's input, the model's output, a tool call the model makes,
#: or the result a tool returns (where injected instructions arrive).
Surface = Literal["input", "output", "tool_call", "tool_result"]
Detector = Literal["rules", "semantic", "external", "probe"]
#: Ordered from least to most severe; ``revoke_agent`` also stops the agent's copies.
Action = Literal["allow", "flag", "redact", "block", "review", "end_session", "revoke_agent"]
Direction = Literal["higher_is_worse", "lower_is_worse"]

#: Ids and protocol names share the suite naming rule, so a protocol name is a suite name.
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
Jurisdiction = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*$")]


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return pattern


Regex = Annotated[str, AfterValidator(_compiles)]


class TierThreshold(BaseModel):
    """Cut-offs on the metric for one Common Risk Tier (1..4 = CRT-1..CRT-4).

    Crossing ``early_warning`` means the tier cannot be ruled out (precautionary);
    crossing ``confirmatory`` means the evidence supports the tier.
    """

    model_config = ConfigDict(extra="forbid")

    tier: int = Field(ge=1, le=4)
    early_warning: float = Field(ge=0, le=1)
    confirmatory: float = Field(ge=0, le=1)


class EvidenceSpec(BaseModel):
    """Which protocol (suite) produces evidence for a red line, and how to read it."""

    model_config = ConfigDict(extra="forbid")

    protocol: Name
    metric: Literal["fail_rate"] = "fail_rate"
    direction: Direction = "higher_is_worse"
    thresholds: list[TierThreshold] = Field(min_length=1)
    #: Fewer scored samples than this and the evidence supports no determination.
    min_samples: int = Field(default=5, ge=1)

    @field_validator("thresholds")
    @classmethod
    def _ordered(cls, thresholds: list[TierThreshold], info: ValidationInfo) -> list[TierThreshold]:
        direction = info.data.get("direction")
        if direction is None:  # direction itself was invalid; that error is reported instead
            return thresholds
        sign = 1 if direction == "higher_is_worse" else -1
        previous: TierThreshold | None = None
        for t in thresholds:
            if previous is not None and t.tier <= previous.tier:
                raise ValueError("list thresholds by strictly ascending tier")
            if sign * (t.confirmatory - t.early_warning) < 0:
                raise ValueError(
                    f"tier {t.tier}: early_warning {t.early_warning} must not be past "
                    f"confirmatory {t.confirmatory} for {direction}"
                )
            if previous is not None and (
                sign * (t.early_warning - previous.early_warning) < 0
                or sign * (t.confirmatory - previous.confirmatory) < 0
            ):
                raise ValueError(
                    f"tier {t.tier}: cut-offs must not be less severe than tier {previous.tier}'s"
                )
            previous = t
        return thresholds


class Tripwire(BaseModel):
    """A runtime check the guard runs for a red line, and what it does on a match."""

    model_config = ConfigDict(extra="forbid")

    id: Name
    applies_to: list[Surface] = Field(min_length=1)
    detector: Detector
    #: Detector score at or above which the action fires; rules score 1.0 on a match.
    threshold: float = Field(default=0.5, gt=0, le=1)
    action: Action
    #: Regular expressions searched in the inspected text (for tool calls: the arguments).
    patterns: list[Regex] = Field(default_factory=list)
    #: Tool-name globs (``fnmatch``) a tool tripwire watches; with ``patterns`` as well, a
    #: call matches when its name matches a glob and its arguments match a pattern.
    tools: list[Annotated[str, StringConstraints(min_length=1)]] = Field(default_factory=list)
    #: Lexicon ids the detector looks for; empty means the red line's own category.
    categories: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _meaningful(self) -> Tripwire:
        if len(set(self.applies_to)) != len(self.applies_to):
            raise ValueError("applies_to lists a surface twice")
        if self.tools and not {"tool_call", "tool_result"} & set(self.applies_to):
            raise ValueError("tools are given but applies_to has neither tool_call nor tool_result")
        if self.detector == "rules" and not (self.patterns or self.tools):
            raise ValueError("a rules detector needs patterns or tools to match")
        return self


class RedLine(BaseModel):
    """One line that must not be crossed: what it says, how it is tested, how it is enforced."""

    model_config = ConfigDict(extra="forbid")

    id: Name
    statement: str = Field(min_length=1)
    category: str
    severity: Severity
    evidence: list[EvidenceSpec] = Field(default_factory=list)
    tripwires: list[Tripwire] = Field(default_factory=list)
    #: Jurisdiction tags (e.g. "eu") where this red line is legally or contractually required.
    mandatory_in: list[Jurisdiction] = Field(default_factory=list)
    #: Human-readable references to the frameworks it implements, e.g. "IDAIS Beijing RL1".
    framework_refs: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _testable_or_enforced(self) -> RedLine:
        if not self.evidence and not self.tripwires:
            raise ValueError("a red line needs evidence (to test it) or tripwires (to enforce it)")
        for tripwire in self.tripwires:
            if not tripwire.categories:
                tripwire.categories = [self.category]
        return self

    def protocols(self) -> list[str]:
        return list(dict.fromkeys(e.protocol for e in self.evidence))


class WeightsRequirement(BaseModel):
    """What the policy demands of open weights before they are loaded."""

    model_config = ConfigDict(extra="forbid")

    require_signature: bool = False
    #: PEM public key (elliptic curve) of the publisher, relative to the policy file.
    public_key: str | None = None
    #: OpenSSF model-signing bundle; default ``model.sig`` inside the model directory.
    signature: str | None = None

    @model_validator(mode="after")
    def _key_when_required(self) -> WeightsRequirement:
        if self.require_signature and not self.public_key:
            raise ValueError("require_signature needs public_key")
        return self


class Profile(BaseModel):
    """A jurisdiction's view of a policy: the red lines that must be tested and enforced there."""

    model_config = ConfigDict(extra="forbid")

    id: Name
    jurisdiction: Jurisdiction
    title: str = ""
    mandatory: list[Name] = Field(min_length=1)


class LedgerSettings(BaseModel):
    """How risk accumulates per session and principal, and how it moves thresholds."""

    model_config = ConfigDict(extra="forbid")

    #: Time for accumulated risk to halve when nothing risky happens.
    half_life_s: float = Field(default=900.0, gt=0)
    #: Largest fraction by which accumulated risk can lower a tripwire's threshold.
    max_tighten: float = Field(default=0.5, ge=0, lt=1)
    #: Session risk at which the ledger itself trips, whatever the latest item scored.
    trip_risk: float = Field(default=2.0, gt=0)
    #: What a ledger trip does.
    action: Action = "block"
    #: Share of the principal's (cross-session) risk added to a session's own.
    principal_weight: float = Field(default=0.5, ge=0, le=1)


class ContextProfile(BaseModel):
    """A deployment context that shifts every threshold (positive: stricter)."""

    model_config = ConfigDict(extra="forbid")

    id: Name
    threshold_shift: float = Field(default=0.0, ge=-0.5, le=0.5)
    description: str = ""


class ReviewSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: A held item not decided within this time expires (and stays blocked).
    ttl_s: float = Field(default=3600.0, gt=0)
    #: How long a client waits for a decision by default before it gets "pending".
    wait_s: float = Field(default=0.0, ge=0)


class StreamSettings(BaseModel):
    """Hold-back for streamed replies: nothing is released before a window covering it
    has passed the output checks."""

    model_config = ConfigDict(extra="forbid")

    #: Tokens (stream chunks) held back and checked together.
    window_tokens: int = Field(default=16, ge=1, le=4096)
    #: Most a held token waits for its window to fill before it is checked and released.
    max_delay_ms: int = Field(default=250, ge=0, le=60000)


class AgentRules(BaseModel):
    """Rules for agents' tool calls beyond the tripwires: replication and egress."""

    model_config = ConfigDict(extra="forbid")

    #: Tool-name globs that copy the agent or start an instance; such a call must name an
    #: instance registered under the calling agent (argument ``instance_id``).
    replication_tools: list[str] = Field(default_factory=list)
    #: Hosts (globs, e.g. ``*.example.org``) tool calls may reach; URLs and ``host``
    #: arguments to other hosts are blocked. Empty: egress is not restricted.
    egress_allow: list[str] = Field(default_factory=list)


class GuardSettings(BaseModel):
    """Runtime settings shared by every tripwire of the policy."""

    model_config = ConfigDict(extra="forbid")

    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    contexts: list[ContextProfile] = Field(default_factory=list)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    streaming: StreamSettings = Field(default_factory=StreamSettings)
    agents: AgentRules = Field(default_factory=AgentRules)

    def context(self, context_id: str | None) -> ContextProfile:
        if context_id is None:
            return ContextProfile(id="default")
        for c in self.contexts:
            if c.id == context_id:
                return c
        known = [c.id for c in self.contexts]
        raise NotFoundError(
            f"no guard context {context_id!r}{did_you_mean(context_id, known)}"
        )


class Policy(BaseModel):
    """A set of red lines, loaded from YAML with ``extends`` already resolved."""

    model_config = ConfigDict(extra="forbid")

    id: Name
    version: str
    title: str
    description: str = ""
    #: A built-in policy name or a path relative to this file; kept as written, for provenance.
    extends: str | None = None
    red_lines: list[RedLine] = Field(default_factory=list)
    #: Protocols run alongside the red-line protocols to measure over-refusal.
    usability_protocols: list[Name] = Field(default_factory=list)
    #: Protocols run alongside for context on conduct and security categories that are no
    #: red line of this policy (harmful compliance, prompt injection, persuasion).
    context_protocols: list[Name] = Field(default_factory=list)
    profiles: list[Profile] = Field(default_factory=list)
    #: Requirements on model files (signatures) checked before a local model is loaded.
    weights: WeightsRequirement | None = None
    #: Runtime guard settings: ledger, contexts, review, streaming, agent rules.
    guard: GuardSettings = Field(default_factory=GuardSettings)

    def digest(self) -> str:
        """sha256 of the canonical JSON: run logs and attestations name the exact policy."""
        payload = json.dumps(
            self.model_dump(mode="json"),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def protocols(self) -> list[str]:
        """Protocols to run: evidence protocols in policy order, then usability, then context."""
        names = [p for rl in self.red_lines for p in rl.protocols()]
        return list(dict.fromkeys(names + self.usability_protocols + self.context_protocols))

    def red_line(self, red_line_id: str) -> RedLine:
        for rl in self.red_lines:
            if rl.id == red_line_id:
                return rl
        known = [rl.id for rl in self.red_lines]
        raise NotFoundError(
            f"policy {self.id!r} has no red line {red_line_id!r}{did_you_mean(red_line_id, known)}"
        )

    def mandatory_for(self, jurisdiction: str) -> list[RedLine]:
        """Red lines required in a jurisdiction, by its profiles or their own ``mandatory_in``."""
        tag = jurisdiction.lower()
        ids = {i for p in self.profiles if p.jurisdiction == tag for i in p.mandatory}
        return [rl for rl in self.red_lines if rl.id in ids or tag in rl.mandatory_in]

    def tripwires(self) -> list[tuple[RedLine, Tripwire]]:
        return [(rl, tw) for rl in self.red_lines for tw in rl.tripwires]
