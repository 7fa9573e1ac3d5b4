"""The assessment record: what a run's evidence supports, per red line and per category.

An assessment is a pure function of a run log and a policy (no clock, no randomness that is
not seeded by the log), so anyone holding both can recompute it byte for byte; the evidence
part signs it on that basis. The HTML, Markdown and JSON reports all render this one record.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from redline.assess.backdoor import BackdoorSweep
from redline.assess.protocols import AwarenessFigures, HonestyFigures, PersuasionFigures
from redline.policy.model import Direction, Severity, TierThreshold
from redline.records.runlog import Outcome, TargetInfo

#: Bumped when a field changes meaning or disappears; additions keep the version.
ASSESSMENT_SCHEMA_VERSION = "1"

#: ``not_assessed``: the evidence cannot support any determination (too few samples, or
#: too few to rule anything out). ``ruled_out``: every tier excluded, CRT-0. ``precautionary``:
#: an early warning tripped and the tier cannot be ruled out, so it is assumed.
#: ``confirmed``: the interval itself lies past the tier's confirmatory cut-off.
Determination = Literal["not_assessed", "ruled_out", "precautionary", "confirmed"]
ProtocolKind = Literal["safety", "usability"]
#: The multi-exchange protocols whose headline is not a fail rate.
FigureName = Literal["honesty", "awareness", "persuasion", "backdoor"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rate(_Record):
    """Fail counts of a group of samples with an exact interval robust to unscored samples."""

    n: int
    scored: int
    fail: int
    passed: int
    unscored: int
    #: Failures over scored samples; None when nothing was scored.
    rate: float | None
    #: Clopper–Pearson 95% bounds over all ``n`` samples: the lower bound counts unscored
    #: samples as passes, the upper bound as fails, so the interval holds however they
    #: would have been scored. Without unscored samples it is the plain exact interval.
    ci_low: float
    ci_high: float


class CorrectedRate(_Record):
    """The fail rate corrected for the primary scorer's validated misclassification rates."""

    scorer: str
    #: The scorer's own rates, as recorded in its scores' metadata (positive = refusal).
    fpr: float
    fnr: float
    fpr_ci: tuple[float, float] | None = None
    fnr_ci: tuple[float, float] | None = None
    rate: float | None
    ci_low: float
    ci_high: float


class Verdict(_Record):
    """Common Risk Tier and determination, with the rule that decided them."""

    #: CRT-0..CRT-4; None when not assessed.
    tier: int | None
    determination: Determination
    #: Name of the rule that fired (see ``redline.assess.tiers``).
    rule: str
    #: The rule in words, with the numbers it compared.
    basis: str
    #: Highest tier the lower bound confirms (0 when none); below ``tier`` when precautionary.
    confirmed_tier: int = 0
    #: Tiers the policy declares for this evidence.
    declared_tiers: list[int] = Field(default_factory=list)
    #: Declared tiers whose early warning the conservative bound is below.
    ruled_out_tiers: list[int] = Field(default_factory=list)
    #: Samples needed for zero failures to rule out the lowest tier, where that is the gap.
    samples_needed: int | None = None


class EvidenceAssessment(_Record):
    """One evidence declaration of a red line, read against its own thresholds."""

    red_line: str
    protocol: str
    category: str
    direction: Direction
    min_samples: int
    thresholds: list[TierThreshold]
    rate: Rate
    corrected: CorrectedRate | None = None
    verdict: Verdict


class RedLineAssessment(_Record):
    """A red line's verdict: the most severe of its evidence."""

    id: str
    statement: str
    category: str
    severity: Severity
    framework_refs: list[str] = Field(default_factory=list)
    #: All samples of its protocols pooled (for display; the verdict comes from ``evidence``).
    rate: Rate
    corrected: CorrectedRate | None = None
    verdict: Verdict
    evidence: list[EvidenceAssessment]


class FrameworkReading(_Record):
    """What a category's result means in one framework's own vocabulary."""

    framework: str
    name: str
    version: str
    native_ids: list[str]
    #: Short native level, e.g. "below High", "Good", "CCL cannot be ruled out".
    level: str
    reading: str


class CategoryAssessment(_Record):
    """A lexicon category's verdict: the most severe of the red lines drawn on it."""

    id: str
    name: str
    layer: str
    red_lines: list[str]
    rate: Rate
    corrected: CorrectedRate | None = None
    verdict: Verdict
    readings: list[FrameworkReading] = Field(default_factory=list)


class ProtocolFigure(_Record):
    """One protocol's figures; usability protocols measure over-refusal."""

    protocol: str
    kind: ProtocolKind
    red_line: str | None
    categories: list[str]
    rate: Rate
    corrected: CorrectedRate | None = None


class ProtocolFigures(_Record):
    """The headline figures of the multi-exchange protocols, beside their fail rates.

    A fail rate alone misreads them: honesty must be told apart from accuracy, evaluation
    awareness is a paired difference, persuasion separates how far a user moved from how.
    Each is None when no sample of the run was scored for it (by the ``honesty`` scorer,
    the ``answer`` scorer with pair metadata, the ``persuasion`` scorer), or, for the
    backdoor sweep, when no sample carries sweep metadata.
    """

    honesty: HonestyFigures | None = None
    awareness: AwarenessFigures | None = None
    #: The awareness difference in words: sandbagging, its opposite, or no evidence.
    awareness_reading: str | None = None
    persuasion: PersuasionFigures | None = None
    #: Per candidate trigger of a backdoor sweep, the shift against the sweep's control.
    backdoor: BackdoorSweep | None = None
    #: The protocols (suites) whose samples each figure pools.
    sources: dict[FigureName, list[str]] = Field(default_factory=dict)


class RiskCell(_Record):
    category: str
    attack: str
    rate: Rate


class RiskMap(_Record):
    """Safety fail rates by lexicon category (rows) and attack (columns)."""

    categories: list[str]
    attacks: list[str]
    cells: list[RiskCell]


class BalanceRow(_Record):
    """Attack success on harmful requests beside over-refusal of benign ones, per attack."""

    attack: str
    attack_success: Rate
    over_refusal: Rate


class TranscriptMessage(_Record):
    role: str
    content: str
    tool_calls: list[str] = Field(default_factory=list)


class ScoreNote(_Record):
    scorer: str
    outcome: Outcome
    label: str
    explanation: str


class Transcript(_Record):
    """One sample as the model saw and answered it. Every string is untrusted."""

    sample_id: str
    #: The red line (or usability protocol) it illustrates.
    group: str
    protocol: str
    category: str
    attack: str
    outcome: Outcome
    messages: list[TranscriptMessage]
    reply: str
    error: str | None = None
    scores: list[ScoreNote] = Field(default_factory=list)
    truncated: bool = False


class Assessment(_Record):
    """Everything a report shows about one run under one policy."""

    schema_version: str = ASSESSMENT_SCHEMA_VERSION
    tool_version: str
    run_id: str
    run_created_at: str
    run_status: str
    target: TargetInfo
    policy_id: str | None
    policy_version: str | None
    policy_title: str | None
    #: Digest of the policy used here, and the one the run recorded; a mismatch is warned.
    policy_digest: str | None
    run_policy_digest: str | None
    samples: int
    planned_samples: int
    attacks: list[str]
    confidence: float
    red_lines: list[RedLineAssessment]
    categories: list[CategoryAssessment]
    protocols: list[ProtocolFigure]
    protocol_figures: ProtocolFigures = Field(default_factory=ProtocolFigures)
    risk_map: RiskMap
    balance: list[BalanceRow]
    transcripts: list[Transcript]
    #: How the numbers were computed, in sentences a reader can check.
    method: list[str]
    warnings: list[str] = Field(default_factory=list)


def assessment_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the assessment and of the JSON report."""
    return ({"$schema": "https://json-schema.org/draft/2020-12/schema"}
            | Assessment.model_json_schema())
