"""The campaign plan file: what to run (targets with versions, suites, seeds), not how.

A plan is YAML validated into ``CampaignPlan``; errors name the file, line and field. Suite
and policy paths are resolved against the plan file's folder, so a plan runs from anywhere.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from redline.yamlload import load_model

#: Names that become parts of folder names: no separators, no dots at the start.
SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$"
#: Upper bound on shards, so a typo in a seed list cannot plan a million runs.
MAX_SHARDS = 10_000


class CampaignTarget(BaseModel):
    """One system under test at one version."""

    model_config = ConfigDict(extra="forbid")

    #: Stable name across versions (what drift compares over), e.g. ``acme-chat``.
    name: str = Field(pattern=SAFE_NAME)
    version: str = Field(pattern=SAFE_NAME)
    uri: str = Field(min_length=1)
    #: Model name to request from an HTTP endpoint.
    model: str | None = None
    system_prompt: str | None = None
    #: Adapter options beyond these (see ``TargetOptions.extra``).
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


class CampaignPlan(BaseModel):
    """Targets × suites × seeds; every other setting is shared by all shards."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=SAFE_NAME)
    description: str = ""
    #: Built-in policy name or policy file; maps suites to red lines and tiers.
    policy: str | None = None
    targets: list[CampaignTarget] = Field(min_length=1)
    #: Suite names, suite files or ``FORMAT:PATH`` dataset references.
    suites: list[str] = Field(min_length=1)
    attacks: list[str] = Field(default_factory=lambda: ["direct"], min_length=1)
    epochs: int = Field(default=1, ge=1, le=1000)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    limit: int | None = Field(default=None, ge=1)
    max_tokens: int = Field(default=128, ge=1, le=32_768)
    temperature: float = Field(default=0.0, ge=0, le=2)
    #: Samples in flight within one shard.
    concurrency: int = Field(default=16, ge=1, le=10_000)
    sample_timeout_s: float = Field(default=600.0, gt=0)
    #: Off by default: a campaign repeated over time measures the model, not the cache.
    cache: bool = False

    @model_validator(mode="after")
    def _unique(self) -> CampaignPlan:
        labels = [t.label for t in self.targets]
        dup = next((x for x in labels if labels.count(x) > 1), None)
        if dup is not None:
            raise ValueError(f"target {dup!r} is listed twice")
        for what, values in (("suite", list(map(str, self.suites))),
                             ("seed", list(map(str, self.seeds)))):
            twice = next((v for v in values if values.count(v) > 1), None)
            if twice is not None:
                raise ValueError(f"{what} {twice} is listed twice")
        n = len(self.targets) * len(self.suites) * len(self.seeds)
        if n > MAX_SHARDS:
            raise ValueError(f"the plan expands to {n} shards; the limit is {MAX_SHARDS}")
        return self

    def digest(self) -> str:
        """sha256 of the plan's JSON: a campaign folder belongs to exactly one plan."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


def load_campaign(path: Path) -> CampaignPlan:
    """Read and validate a plan; relative suite and policy files become absolute."""
    plan = load_model(CampaignPlan, path)
    base = path.resolve().parent
    suites = [_resolve_ref(ref, base) for ref in plan.suites]
    policy = _resolve_ref(plan.policy, base) if plan.policy else None
    return plan.model_copy(update={"suites": suites, "policy": policy})


def _resolve_ref(ref: str, base: Path) -> str:
    """A relative file (or ``FORMAT:FILE``) that exists next to the plan, made absolute;
    registered names are left as they are."""
    fmt = re.match(r"^([a-z]+):(.+)$", ref)
    prefix, rest = (fmt.group(1) + ":", fmt.group(2)) if fmt else ("", ref)
    candidate = base / rest
    if not Path(rest).is_absolute() and candidate.exists():
        return prefix + str(candidate)
    return ref
