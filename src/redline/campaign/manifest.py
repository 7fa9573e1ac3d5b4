"""The campaign manifest: every shard, where its run log is, and how far it got.

The run logs are the truth; the manifest is rebuilt from them at the start of every
campaign run and rewritten (atomically) as each shard ends, so a killed driver leaves at
worst a stale manifest that the next run corrects.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from redline.campaign.plan import CampaignPlan
from redline.campaign.shard_run import ShardOutcome, shard_log
from redline.campaign.shards import Shard
from redline.engine.runlog import read_runlog
from redline.errors import InputError, NotFoundError, RedlineError

MANIFEST_NAME = "campaign.json"
MANIFEST_SCHEMA = "redline.campaign-manifest/v1"
#: A manifest larger than this is not one we wrote.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024

ShardStatus = Literal["pending", "running", "complete", "interrupted", "failed"]


class ShardEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    target: str
    version: str
    suite: str
    seed: int
    #: Run log, relative to the campaign folder.
    log: str
    status: ShardStatus = "pending"
    samples: int = 0
    planned: int = 0
    fail: int = 0
    unscored: int = 0
    error: str | None = None


class CampaignManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str = Field(default=MANIFEST_SCHEMA, alias="schema")
    name: str
    plan_digest: str
    plan: CampaignPlan
    updated_at: datetime
    executor: str = "local"
    shards: list[ShardEntry]

    def entry(self, shard_id: str) -> ShardEntry:
        return next(e for e in self.shards if e.id == shard_id)

    def missing(self) -> list[str]:
        return [e.id for e in self.shards if e.status != "complete"]


def entry_from_log(root: Path, shard: Shard) -> ShardEntry:
    """A shard's state as its run log on disk shows it."""
    path = shard_log(root, shard)
    entry = ShardEntry(id=shard.id, target=shard.target.name, version=shard.target.version,
                       suite=shard.suite, seed=shard.seed, log=str(path.relative_to(root)))
    if not path.exists():
        return entry
    try:
        log = read_runlog(path)
    except RedlineError as exc:
        return entry.model_copy(update={"status": "failed", "error": str(exc)})
    done = log.summary is not None and log.summary.status == "complete" \
        and len(log.samples) >= log.header.planned_samples
    totals = log.summary.totals if log.summary else None
    return entry.model_copy(update={
        "status": "complete" if done else "interrupted",
        "samples": len(log.samples), "planned": log.header.planned_samples,
        "fail": totals.fail if totals else sum(s.outcome == "fail" for s in log.samples),
        "unscored": totals.unscored if totals else sum(s.outcome == "unscored"
                                                       for s in log.samples),
    })


def build_manifest(root: Path, plan: CampaignPlan, shards: list[Shard],
                   executor: str) -> CampaignManifest:
    return CampaignManifest(name=plan.name, plan_digest=plan.digest(), plan=plan,
                            updated_at=datetime.now(UTC), executor=executor,
                            shards=[entry_from_log(root, s) for s in shards])


def apply_outcome(manifest: CampaignManifest, outcome: ShardOutcome) -> None:
    entry = manifest.entry(outcome.shard_id)
    entry.status = "complete" if outcome.status == "complete" \
        and outcome.samples >= outcome.planned else "failed" if outcome.error else "interrupted"
    entry.samples, entry.planned = outcome.samples, outcome.planned
    entry.fail, entry.unscored, entry.error = outcome.fail, outcome.unscored, outcome.error
    manifest.updated_at = datetime.now(UTC)


def write_manifest(root: Path, manifest: CampaignManifest) -> Path:
    path = root / MANIFEST_NAME
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(manifest.model_dump_json(by_alias=True, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_manifest(root: Path) -> CampaignManifest:
    """The manifest of a campaign folder (or the manifest file itself)."""
    path = root if root.is_file() else root / MANIFEST_NAME
    if not path.is_file():
        raise NotFoundError(f"no campaign manifest at {path}")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise InputError(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes", file=path)
    try:
        return CampaignManifest.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise InputError(f"invalid campaign manifest: {exc.errors()[0]['msg']}",
                         file=path) from None
