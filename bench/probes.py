"""Generation throughput of the local model with and without a probe tripwire.

Runs the same batch of benign prompts (greedy, so both runs decode the same tokens)
alternately without and with a ``TokenTripwire`` that never trips (threshold 1.0; with
``--probe`` a trained artefact's weights and layer, otherwise random weights at layer 15),
so that the probe is scored at every step of every row. Prints tokens/s of each and the
overhead ratio (seconds with the probe / seconds without; goal <= 1.05), from the median of
``--reps`` interleaved repetitions.

    python bench/probes.py [--batch 8] [--max-tokens 32] [--reps 5] [--probe PATH.json]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import torch

from redline.models.batching import TokenTripwire
from redline.models.local import LocalTarget
from redline.records.chat import ChatMessage, GenerateConfig

PROMPTS = (
    "What should I pack for a beach holiday?",
    "How do I change a flat bicycle tyre?",
    "Write a short poem about friendship.",
    "How do I start learning the guitar?",
    "Give me three ideas for a science fair project.",
    "How do bees make honey?",
    "What is a prime number?",
    "Recommend a board game for a family night.",
)
DEFAULT_LAYER = 15


def never_trips(probe: Path | None, hidden: int) -> TokenTripwire:
    if probe is None:
        weights = torch.randn(hidden, generator=torch.Generator().manual_seed(0)) * 1e-3
        return TokenTripwire("bench-random", DEFAULT_LAYER, weights, 0.0, 1.0)
    from redline.probes import artefact as store

    artefact, array = store.load(probe)
    return TokenTripwire(artefact.name, artefact.layer, torch.from_numpy(array.copy()),
                         artefact.bias, 1.0)


async def timed(target: LocalTarget, batch: int, config: GenerateConfig) -> tuple[float, int]:
    prompts = [[ChatMessage(role="user", content=PROMPTS[i % len(PROMPTS)])]
               for i in range(batch)]
    started = time.perf_counter()
    outputs = await asyncio.gather(*(target.generate(p, config) for p in prompts))
    elapsed = time.perf_counter() - started
    assert all(o.finish_reason != "content_filter" for o in outputs)
    return elapsed, sum(o.usage.output_tokens for o in outputs)


async def main(args: argparse.Namespace) -> None:
    plain = LocalTarget(max_batch=args.batch)
    await plain.load()
    probed = LocalTarget(tripwire=never_trips(args.probe, 576))
    config = GenerateConfig(max_tokens=args.max_tokens)
    await timed(plain, args.batch, config)  # warm-up
    runs: dict[str, list[float]] = {"plain": [], "probe": []}
    tokens: dict[str, int] = {}
    for _ in range(args.reps):
        for name, target in (("plain", plain), ("probe", probed)):
            seconds, count = await timed(target, args.batch, config)
            runs[name].append(seconds)
            tokens[name] = count
    assert tokens["plain"] == tokens["probe"], tokens
    medians = {name: statistics.median(values) for name, values in runs.items()}
    for name in ("plain", "probe"):
        print(f"{name:6s} median {medians[name]:.3f} s for {tokens[name]} tokens: "
              f"{tokens[name] / medians[name]:.1f} tokens/s "
              f"(runs: {', '.join(f'{v:.3f}' for v in runs[name])})")
    print(f"overhead ratio (probe / plain): {medians['probe'] / medians['plain']:.3f} "
          "(goal <= 1.05)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--probe", type=Path, default=None)
    asyncio.run(main(parser.parse_args()))
