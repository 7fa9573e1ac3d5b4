"""Expand a plan into shards: one target version × one suite × one seed, each its own run.

A shard is the unit of distribution and of resume. Its id is derived from what it runs, so
the same plan always yields the same shard folders and a re-run finds the work already done.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from redline.campaign.plan import CampaignPlan, CampaignTarget
from redline.errors import InputError, RedlineError
from redline.suites.load import load_suite

#: Characters allowed in a shard id (it names a folder).
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+@-]")


class Shard(BaseModel):
    """Everything one worker needs to run one shard; serialisable for Ray."""

    model_config = ConfigDict(extra="forbid")

    id: str
    campaign: str
    target: CampaignTarget
    suite: str
    suite_ref: str
    seed: int
    policy: str | None
    attacks: list[str]
    epochs: int
    limit: int | None
    max_tokens: int
    temperature: float
    concurrency: int
    sample_timeout_s: float
    cache: bool


def shard_id(target: CampaignTarget, suite: str, seed: int) -> str:
    return _UNSAFE.sub("_", f"{target.label}__{suite}__seed{seed}")


def expand_shards(plan: CampaignPlan) -> list[Shard]:
    """All shards of a plan in a fixed order (target, then suite, then seed). Loads every
    suite once, so a bad reference fails before any shard starts."""
    names: list[str] = []
    for i, ref in enumerate(plan.suites):
        try:
            names.append(load_suite(ref).name)
        except RedlineError as exc:
            raise InputError(f"suite {ref!r}: {exc}", field=f"suites.{i}") from None
    return [
        Shard(
            id=shard_id(target, name, seed), campaign=plan.name, target=target, suite=name,
            suite_ref=ref, seed=seed, policy=plan.policy, attacks=plan.attacks,
            epochs=plan.epochs, limit=plan.limit, max_tokens=plan.max_tokens,
            temperature=plan.temperature, concurrency=plan.concurrency,
            sample_timeout_s=plan.sample_timeout_s, cache=plan.cache,
        )
        for target in plan.targets
        for name, ref in zip(names, plan.suites, strict=True)
        for seed in plan.seeds
    ]
