"""Where shards run. Both executors call ``run_shard`` and report each finished sample and
each ended shard to the driver through the same callbacks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from redline.campaign.shard_run import ShardOutcome, run_shard
from redline.campaign.shards import Shard
from redline.errors import RedlineError
from redline.records.runlog import SampleRecord

OnSample = Callable[[str, SampleRecord], None]
OnOutcome = Callable[[ShardOutcome], None]


class ShardExecutor(Protocol):
    name: str

    def execute(self, shards: list[Shard], root: Path, on_outcome: OnOutcome,
                on_sample: OnSample | None = None) -> None:
        """Run every shard; call ``on_outcome`` once per shard, in completion order."""


def failed_outcome(shard: Shard, error: str) -> ShardOutcome:
    return ShardOutcome(shard_id=shard.id, status="failed", samples=0, planned=0, ran=0,
                        fail=0, unscored=0, error=error)


class LocalExecutor:
    """Shards in this process, ``parallel`` at a time, each with the engine's concurrency."""

    name = "local"

    def __init__(self, parallel: int = 1) -> None:
        self.parallel = max(1, parallel)

    def execute(self, shards: list[Shard], root: Path, on_outcome: OnOutcome,
                on_sample: OnSample | None = None) -> None:
        asyncio.run(self._execute(shards, root, on_outcome, on_sample))

    async def _execute(self, shards: list[Shard], root: Path, on_outcome: OnOutcome,
                       on_sample: OnSample | None) -> None:
        gate = asyncio.Semaphore(self.parallel)

        async def one(shard: Shard) -> None:
            async with gate:
                def sample(rec: SampleRecord) -> None:
                    if on_sample is not None:
                        on_sample(shard.id, rec)
                try:
                    outcome = await run_shard(shard, root, sample)
                except RedlineError as exc:
                    outcome = failed_outcome(shard, str(exc))
                on_outcome(outcome)

        await asyncio.gather(*(one(s) for s in shards))
