"""Campaign wall time on Ray with 1, 2 and 4 workers, against loopback servers that answer
after a fixed delay; prints each time and its speed-up over 1 worker (same run).

Each shard runs the engine with concurrency 1, so a shard is bound by the server delay and
shards are the unit of parallelism. A warm-up campaign starts Ray's worker processes first.

    python bench/campaign.py [--shards 8] [--cases 10] [--delay 0.1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import ray
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redline.campaign.plan import load_campaign
from redline.campaign.ray_executor import RayExecutor
from redline.campaign.runner import run_campaign
from tests.scripted_server import Script, ScriptedServer

WORKERS = (1, 2, 4)


def _plan(folder: Path, url: str, shards: int, cases: int) -> Path:
    suite = folder / "bench-suite.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "bench-suite",
        "scorers": [{"name": "pattern", "args": {"patterns": ["SURE"]}}],
        "cases": [{"id": f"c{i}", "category": "CAT.CYBER", "prompt": f"request {i}"}
                  for i in range(cases)],
    }))
    plan = folder / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "name": "bench", "targets": [{"name": f"t{i}", "version": "1", "uri": url}
                                     for i in range(shards)],
        "suites": [str(suite)], "concurrency": 1,
    }))
    return plan


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--cases", type=int, default=10)
    ap.add_argument("--delay", type=float, default=0.1)
    args = ap.parse_args()
    ray.init(num_cpus=max(WORKERS), include_dashboard=False, log_to_driver=False)
    with ScriptedServer(Script(delay=args.delay)) as server, \
            tempfile.TemporaryDirectory() as tmp:
        plan = load_campaign(_plan(Path(tmp), server.url, args.shards, args.cases))
        run_campaign(plan, Path(tmp) / "warmup", RayExecutor(workers=max(WORKERS)))
        times = {}
        for n in WORKERS:
            t0 = time.perf_counter()
            manifest = run_campaign(plan, Path(tmp) / f"w{n}", RayExecutor(workers=n))
            times[n] = time.perf_counter() - t0
            assert manifest.missing() == []
    ray.shutdown()
    print(f"{args.shards} shards × {args.cases} samples, server delay {args.delay:g} s, "
          "engine concurrency 1 per shard")
    for n in WORKERS:
        print(f"workers={n}: {times[n]:6.2f} s  speed-up ×{times[1] / times[n]:.2f}")


if __name__ == "__main__":
    main()
