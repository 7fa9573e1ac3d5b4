"""Drift in a campaign: each target's versions, in plan order, compared one to the next.

Shards of the same target version (its suites and seeds) are pooled; sample ids get the
seed as a prefix so that replicas of a case under different seeds stay distinct.
"""

from __future__ import annotations

from pathlib import Path

from redline.campaign.manifest import CampaignManifest, read_manifest
from redline.drift.changes import DEFAULT_ALPHA, Comparison, compare_groups
from redline.drift.significance import CorrectionName, TestName
from redline.engine.runlog import RunLog, read_runlog
from redline.records.runlog import SampleRecord

Group = tuple[str, list[SampleRecord]]


def run_label(log: RunLog) -> str:
    """``target@version`` for a campaign shard's log, else the run id."""
    campaign = log.header.target.metadata.get("campaign")
    if isinstance(campaign, dict) and "target" in campaign and "version" in campaign:
        return f"{campaign['target']}@{campaign['version']}"
    return log.header.run_id


def version_groups(root: Path, manifest: CampaignManifest | None = None) -> dict[str, list[Group]]:
    """Per target name, its versions in plan order with their pooled samples."""
    manifest = manifest or read_manifest(root)
    out: dict[str, list[Group]] = {}
    for target in manifest.plan.targets:
        samples: list[SampleRecord] = []
        for entry in manifest.shards:
            if (entry.target, entry.version) != (target.name, target.version):
                continue
            path = root / entry.log
            if path.exists():
                samples += [s.model_copy(update={"id": f"seed{entry.seed}/{s.id}"})
                            for s in read_runlog(path).samples]
        out.setdefault(target.name, []).append((target.label, samples))
    return out


def drift_campaign(
    root: Path,
    *,
    test: TestName = "fisher",
    correction: CorrectionName = "holm",
    alpha: float = DEFAULT_ALPHA,
) -> list[Comparison]:
    """One comparison per target that has at least two versions."""
    return [compare_groups(groups, test=test, correction=correction, alpha=alpha)
            for groups in version_groups(root).values() if len(groups) > 1]
