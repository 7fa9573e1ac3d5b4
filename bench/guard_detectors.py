"""CPU cost and accuracy of the guard's detectors, static MiniLM against contextual MiniLM.

Prints, from one run on this machine:
- the static table's build time (as recorded when it was built, or rebuilt with --rebuild);
- CPU per check (process time, p50/p99) for the rules detector, the semantic detector
  (static, one item per call), the static classifier batched 32 texts per call, and the
  contextual MiniLM classifier on one text per call; and the static/contextual ratio;
- validation figures per category for static and contextual heads at 0.5 and at the
  built-in tripwires' thresholds (0.7, 0.8), with Wilson 95% intervals.

    python bench/guard_detectors.py [--checks 400] [--rebuild]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from redline.guard.detectors.base import Detector, DetectorResources, Inspected, detectors
from redline.guard.detectors.semantic import (
    CASCADE_BAND,
    build_scorer,
    builtin_contextual_model,
    contextual_features,
)
from redline.guard.semantic_model import VALIDATION_PATH, SemanticModel, load_examples
from redline.guard.static_embeddings import build_table, static_embedder
from redline.policy import Tripwire, load_policy
from redline.scoring.embeddings import Embedder
from redline.stats import wilson_interval

THRESHOLDS = (0.5, 0.7, 0.8)
BATCH = 32


def _percentiles(samples_ns: Sequence[int]) -> str:
    us = np.asarray(samples_ns) / 1000
    return f"p50 {np.percentile(us, 50):8.1f} us   p99 {np.percentile(us, 99):8.1f} us"


def _cpu_each(fn: Callable[[int], object], n: int) -> list[int]:
    out = []
    for i in range(n):
        start = time.process_time_ns()
        fn(i)
        out.append(time.process_time_ns() - start)
    return out


async def _cpu_each_async(detector: Detector, texts: list[str]) -> list[int]:
    out = []
    for text in texts:
        item = Inspected(surface="input", text=text)
        start = time.process_time_ns()
        await detector.detect(item)
        out.append(time.process_time_ns() - start)
    return out


def _report(name: str, model: SemanticModel, probs: np.ndarray, labels: list[str]) -> None:
    print(f"\n{name}: per-category detection and benign false-positive rate")
    benign = np.array([label == "benign" for label in labels])
    for threshold in THRESHOLDS:
        cells = []
        for j, category in enumerate(model.categories):
            rows = np.array([label == category for label in labels])
            k, n = int((probs[rows, j] >= threshold).sum()), int(rows.sum())
            low, high = wilson_interval(k, n)
            cells.append(f"{category} {k}/{n}={k / n:.2f} [{low:.2f},{high:.2f}]")
        k = int((probs[benign].max(axis=1) >= threshold).sum())
        n = int(benign.sum())
        low, high = wilson_interval(k, n)
        cells.append(f"benign FP {k}/{n}={k / n:.2f} [{low:.2f},{high:.2f}]")
        print(f"  t={threshold}: " + "; ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=400)
    parser.add_argument("--rebuild", action="store_true",
                        help="Rebuild the static table in memory and time it.")
    args = parser.parse_args()

    embedder = Embedder()
    if args.rebuild:
        table = build_table(embedder)
        print(f"static table build: {table.build_seconds:.1f} s (rebuilt now)")
    static = static_embedder(embedder)
    print(f"static table build: {static.build_seconds:.1f} s (recorded when cached)")

    validation = load_examples(VALIDATION_PATH)
    texts = [e.text for e in validation]
    labels = [e.label for e in validation]
    # Distinct texts, so the normalisation cache does not flatter repeated checks.
    checks = [f"{texts[i % len(texts)]} ({i})" for i in range(args.checks)]

    policy = load_policy("idais")
    cbrn = next(tw for _, tw in policy.tripwires() if tw.id == "rl3-cbrn-content")
    tooling = next(tw for _, tw in policy.tripwires() if tw.id == "rl4-offensive-tooling")
    text_rules = Tripwire(id="rules-text", applies_to=["input"], detector="rules",
                          patterns=tooling.patterns, action="block")
    import redline.guard.detectors.rules  # noqa: F401  (registers "rules")

    resources = DetectorResources()
    semantic = detectors.get("semantic")(cbrn, resources)
    rules = detectors.get("rules")(text_rules, resources)
    scorer = build_scorer({})

    async def timed() -> tuple[list[int], list[int]]:
        await semantic.detect(Inspected(surface="input", text="warm up"))
        rules_ns = await _cpu_each_async(rules, [c + " r" for c in checks])
        semantic_ns = await _cpu_each_async(semantic, [c + " s" for c in checks])
        return rules_ns, semantic_ns

    rules_ns, semantic_ns = asyncio.run(timed())
    batches = [checks[i : i + BATCH] for i in range(0, len(checks) - BATCH + 1, BATCH)]
    batched_ns = [ns // BATCH for ns in _cpu_each(lambda i: scorer.predict(batches[i]),
                                                  len(batches))]
    contextual = builtin_contextual_model(embedder)
    contextual.predict(contextual_features(embedder, ["warm up"]))
    n_ctx = min(args.checks, 100)
    contextual_ns = _cpu_each(
        lambda i: contextual.predict(contextual_features(embedder, [checks[i]])), n_ctx
    )
    print("\nCPU per check (process time, both cores counted):")
    print(f"  rules detector (normalise + regex)       {_percentiles(rules_ns)}")
    print(f"  semantic detector, static, one per call   {_percentiles(semantic_ns)}")
    print(f"  static classifier, batched {BATCH} per call  {_percentiles(batched_ns)}")
    print(f"  contextual MiniLM classifier, one per call {_percentiles(contextual_ns)}")
    ratio = np.median(semantic_ns) / np.median(contextual_ns)
    print(f"  ratio static/contextual (p50): {ratio:.4f} (contextual is {1 / ratio:.0f}x dearer)")

    static_probs = scorer.predict(texts)
    contextual_probs = contextual.predict(contextual_features(embedder, texts))
    _report("static MiniLM (guard default)", scorer.model, static_probs, labels)
    _report("contextual MiniLM", contextual, contextual_probs, labels)
    low, high = CASCADE_BAND
    uncertain = (static_probs >= low) & (static_probs < high)
    _report(f"cascade (static, contextual where static is in [{low}, {high}))", scorer.model,
            np.where(uncertain, contextual_probs, static_probs), labels)
    print(f"  share of (text, category) scores re-scored by the cascade: {uncertain.mean():.2f}")
    print(f"\nvalidation file: {Path(VALIDATION_PATH).name}, {len(texts)} examples")


if __name__ == "__main__":
    main()
