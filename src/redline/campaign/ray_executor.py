"""Shards as Ray tasks. Each task is a streaming generator: it yields every sample as the
engine finishes it and then the shard's outcome, so the driver sees progress (and partial
results) while shards run, not only when they end.

Workers write the shard logs under the campaign folder, which must be on a filesystem the
workers share with the driver (true for a local instance; a cluster needs a shared mount).
Workers import ``redline``, so it must be installed on every node.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import ray
from ray import ObjectRefGenerator

from redline.campaign.executors import OnOutcome, OnSample, failed_outcome
from redline.campaign.shard_run import ShardOutcome, run_shard
from redline.campaign.shards import Shard
from redline.errors import RedlineError
from redline.records.runlog import SampleRecord

#: Message kinds a shard task yields.
SAMPLE, DONE = "sample", "done"


def stream_shard(shard_json: str, root: str) -> Iterator[tuple[str, str]]:
    """Body of the Ray task: run the shard in a thread, yield its samples as they finish."""
    shard = Shard.model_validate_json(shard_json)
    messages: queue.Queue[tuple[str, str]] = queue.Queue()

    def work() -> None:
        try:
            outcome = asyncio.run(run_shard(
                shard, Path(root), lambda rec: messages.put((SAMPLE, rec.model_dump_json()))))
        except RedlineError as exc:
            outcome = failed_outcome(shard, str(exc))
        except Exception as exc:  # reported as a failed shard, not a lost task
            outcome = failed_outcome(shard, f"{type(exc).__name__}: {exc}")
        messages.put((DONE, outcome.model_dump_json()))

    thread = threading.Thread(target=work, name=f"shard-{shard.id}", daemon=True)
    thread.start()
    while True:
        kind, payload = messages.get()
        yield kind, payload
        if kind == DONE:
            break
    thread.join()


class RayExecutor:
    """Runs shards on the Ray cluster ``ray.init`` connected to (the caller connects).

    ``workers`` bounds the shards in flight (None: as many as Ray schedules);
    ``cpus_per_shard`` is what each task asks of the scheduler.
    """

    name = "ray"

    def __init__(self, workers: int | None = None, cpus_per_shard: float = 1.0) -> None:
        if not ray.is_initialized():
            raise RedlineError("Ray is not initialised; connect with ray.init first")
        self.workers = workers
        self._task = ray.remote(num_returns="streaming")(stream_shard).options(
            num_cpus=cpus_per_shard)

    def execute(self, shards: list[Shard], root: Path, on_outcome: OnOutcome,
                on_sample: OnSample | None = None) -> None:
        waiting = list(reversed(shards))
        running: dict[Any, Shard] = {}
        limit = self.workers or len(shards)
        while waiting or running:
            while waiting and len(running) < limit:
                shard = waiting.pop()
                running[self._task.remote(shard.model_dump_json(), str(root))] = shard
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                gen = cast(ObjectRefGenerator, ref)
                shard = running[gen]
                try:
                    kind, payload = ray.get(next(gen))
                except StopIteration:
                    del running[gen]
                    on_outcome(failed_outcome(shard, "the shard task ended without an outcome"))
                    continue
                except ray.exceptions.RayError as exc:
                    del running[gen]
                    on_outcome(failed_outcome(shard, f"Ray task failed: {exc}"))
                    continue
                if kind == SAMPLE:
                    if on_sample is not None:
                        on_sample(shard.id, SampleRecord.model_validate_json(payload))
                else:
                    del running[gen]
                    on_outcome(ShardOutcome.model_validate_json(payload))
