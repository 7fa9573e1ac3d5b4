"""Run a campaign: expand the plan, skip shards whose logs are complete, run the rest on an
executor, and keep the manifest current as shards end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from redline.campaign.executors import OnSample, ShardExecutor
from redline.campaign.manifest import (
    CampaignManifest,
    apply_outcome,
    build_manifest,
    write_manifest,
)
from redline.campaign.plan import CampaignPlan
from redline.campaign.shard_run import ShardOutcome
from redline.campaign.shards import expand_shards


def run_campaign(
    plan: CampaignPlan,
    root: Path,
    executor: ShardExecutor,
    *,
    on_sample: OnSample | None = None,
    on_outcome: Callable[[ShardOutcome], None] | None = None,
) -> CampaignManifest:
    """Complete the campaign in ``root``: only shards without a complete log run, and a
    shard killed part-way runs only its missing samples (the engine resumes its log)."""
    shards = expand_shards(plan)
    manifest = build_manifest(root, plan, shards, executor.name)
    todo = [s for s in shards if manifest.entry(s.id).status != "complete"]
    for shard in todo:
        manifest.entry(shard.id).status = "running"
    write_manifest(root, manifest)

    def ended(outcome: ShardOutcome) -> None:
        apply_outcome(manifest, outcome)
        write_manifest(root, manifest)
        if on_outcome is not None:
            on_outcome(outcome)

    executor.execute(todo, root, ended, on_sample)
    return manifest
