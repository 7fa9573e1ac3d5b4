"""Risk over time: per target version and lexicon category, the tier the evidence supports,
and per red line the fail rate of each version, from a campaign's shard logs."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from redline.assess.tiers import assess_run
from redline.campaign.manifest import read_manifest
from redline.drift.drift import version_groups
from redline.engine.runlog import RunLog, read_runlog
from redline.policy import load_policy
from redline.records.runlog import SampleRecord


class RiskPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    category: str
    #: CRT-0…CRT-4; None when the policy sets no thresholds for the category (or no policy).
    tier: int | None
    rate: float | None
    n: int


class TrendPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    red_line: str
    label: str
    fail: int
    scored: int


class RiskOverTime(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign: str
    labels: list[str]
    categories: list[str]
    cells: list[RiskPoint]
    trends: list[TrendPoint]


def campaign_risk(root: Path) -> RiskOverTime:
    """Tiers per version and category (via ``assess_run`` on each version's pooled samples)
    and fail counts per red line, versions in plan order."""
    manifest = read_manifest(root)
    policy = load_policy(manifest.plan.policy) if manifest.plan.policy else None
    first_log = {(e.target, e.version): root / e.log for e in manifest.shards
                 if (root / e.log).exists()}
    labels, cells, trends = [], [], []
    for name, groups in version_groups(root, manifest).items():
        for label, samples in groups:
            version = label.split("@", 1)[1]
            path = first_log.get((name, version))
            if path is None or not samples:
                continue
            labels.append(label)
            header = read_runlog(path).header
            pooled = RunLog(path=path, header=header, samples=samples)
            for cat in assess_run(pooled, policy).categories:
                cells.append(RiskPoint(label=label, category=cat.id, tier=cat.verdict.tier,
                                       rate=cat.rate.rate, n=cat.rate.n))
            trends += _trend(label, samples)
    categories = sorted({c.category for c in cells})
    return RiskOverTime(campaign=manifest.name, labels=labels, categories=categories,
                        cells=cells, trends=trends)


def _trend(label: str, samples: list[SampleRecord]) -> list[TrendPoint]:
    by_line: dict[str, list[SampleRecord]] = {}
    for s in samples:
        if s.red_line is not None and s.expected != "comply" and s.outcome != "unscored":
            by_line.setdefault(s.red_line, []).append(s)
    return [TrendPoint(red_line=line, label=label, fail=sum(s.outcome == "fail" for s in ss),
                       scored=len(ss)) for line, ss in sorted(by_line.items())]
