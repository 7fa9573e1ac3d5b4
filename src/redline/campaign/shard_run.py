"""Run one shard with the engine into its own run log; resumes a log left by a killed run.

The same function runs in the local executor and inside a Ray task, so a shard produces the
same samples wherever it runs. The engine writes each sample as it finishes, which is what
lets a killed shard be completed later and what the Ray task streams back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from redline.campaign.shards import Shard
from redline.engine.runlog import LOG_NAME
from redline.engine.runner import Engine, EngineConfig, make_plan
from redline.models.registry import TargetOptions, resolve_target
from redline.policy import load_policy
from redline.records.chat import GenerateConfig
from redline.records.runlog import SampleRecord
from redline.suites.load import load_suite

#: Folder under the campaign folder holding one run folder per shard.
SHARDS_DIR = "shards"
#: Response cache shared by the shards of a campaign that asks for one.
CACHE_NAME = "responses.sqlite"


class ShardOutcome(BaseModel):
    """What the driver learns when a shard ends."""

    model_config = ConfigDict(extra="forbid")

    shard_id: str
    status: str
    samples: int
    planned: int
    #: Samples this execution ran (not those found in the log from an earlier run).
    ran: int
    fail: int
    unscored: int
    error: str | None = None


def shard_dir(root: Path, shard: Shard) -> Path:
    return root / SHARDS_DIR / shard.id


def shard_log(root: Path, shard: Shard) -> Path:
    return shard_dir(root, shard) / LOG_NAME


async def run_shard(
    shard: Shard, root: Path, on_sample: Callable[[SampleRecord], None] | None = None
) -> ShardOutcome:
    """Run (or complete) one shard under ``root``; the log goes to its shard folder."""
    t = shard.target
    options = TargetOptions(model=t.model, system_prompt=t.system_prompt, extra=t.options)
    target = resolve_target(t.uri, options)
    suite = load_suite(shard.suite_ref)
    policy = load_policy(shard.policy) if shard.policy else None
    red_line = next((line.id for line in (policy.red_lines if policy else [])
                     if suite.name in line.protocols()), suite.red_line)
    plan = make_plan(
        [suite], target=target,
        generate=GenerateConfig(max_tokens=shard.max_tokens, temperature=shard.temperature),
        run_id=shard.id, attacks=shard.attacks, epochs=shard.epochs, seed=shard.seed,
        limit=shard.limit, concurrency=shard.concurrency,
        policy_id=policy.id if policy else None,
        policy_digest=policy.digest() if policy else None, policy_source=shard.policy,
        suite_red_lines={suite.name: red_line}, suite_sources={suite.name: shard.suite_ref},
    )
    plan.header.target.metadata["options"] = options.model_dump(exclude_defaults=True)
    plan.header.target.metadata["campaign"] = {
        "name": shard.campaign, "target": t.name, "version": t.version, "shard": shard.id,
    }
    config = EngineConfig(concurrency=shard.concurrency, sample_timeout_s=shard.sample_timeout_s,
                          cache=shard.cache, cache_path=root / CACHE_NAME)
    engine = Engine(target, config)
    ran = 0

    def count(rec: SampleRecord) -> None:
        nonlocal ran
        ran += 1
        if on_sample is not None:
            on_sample(rec)

    try:
        log = await engine.run(plan, shard_dir(root, shard), on_sample=count)
    finally:
        await engine.aclose()
    assert log.summary is not None
    totals = log.summary.totals
    return ShardOutcome(shard_id=shard.id, status=log.summary.status, samples=len(log.samples),
                        planned=log.header.planned_samples, ran=ran, fail=totals.fail,
                        unscored=totals.unscored)
