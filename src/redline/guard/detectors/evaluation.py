"""Detection and false-positive rates of the guard's detectors on labelled texts.

For a harmful label (a lexicon id) an example counts as detected when the detectors' score
for that category reaches the threshold; for ``benign`` it counts as a false positive when
any category's score does, since a guard running every tripwire would act on it. Rates come
with Wilson 95% intervals because validation sets are small.

Which detectors run: ``semantic`` scores every category of the data the model knows;
``rules`` runs the text tripwires (input/output, with patterns) of a policy; ``external``
asks the external classifier about every category of the data; ``rules+semantic`` (the
default) takes, per category, the higher of the two.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from redline.errors import InputError
from redline.guard.detectors.base import Detector, DetectorResources, Inspected, detectors
from redline.guard.semantic_model import BENIGN, Example
from redline.policy import Policy, Tripwire
from redline.scoring.refusal import Proportion

Choice = Literal["rules+semantic", "semantic", "rules", "external"]
CHOICES: tuple[Choice, ...] = ("rules+semantic", "semantic", "rules", "external")
DEFAULT_THRESHOLD = 0.5
BUILTIN_DETECTORS = ("rules", "semantic", "external")


class LabelResult(BaseModel):
    """One label's figures: detection rate (harmful) or false-positive rate (benign)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str
    n: int
    measure: Literal["detection_rate", "false_positive_rate"]
    rate: Proportion
    #: False when no chosen detector looks for this category (its rate is then 0 by design).
    covered: bool = True


class Evaluation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: Choice
    threshold: float
    results: list[LabelResult]


def _build(choice: Choice, categories: list[str], policy: Policy | None,
           resources: DetectorResources) -> list[Detector]:
    """Detectors for the chosen kind; a synthetic tripwire stands for model-based ones."""
    for kind in BUILTIN_DETECTORS:  # importing a detector's module registers it
        importlib.import_module(f"redline.guard.detectors.{kind}")
    built: list[Detector] = []
    if "rules" in choice and policy is not None:
        for _, tripwire in policy.tripwires():
            if (tripwire.detector == "rules" and tripwire.patterns
                    and {"input", "output"} & set(tripwire.applies_to)):
                built.append(detectors.get("rules")(tripwire, resources))
    for kind in ("semantic", "external"):
        if kind in choice.split("+") and categories:
            tripwire = Tripwire(
                id=f"evaluate-{kind}", applies_to=["input", "output"], detector=kind,
                action="flag", categories=categories,
            )
            built.append(detectors.get(kind)(tripwire, resources))
    return built


def _known_categories(choice: Choice, labels: list[str], resources: DetectorResources) -> list[str]:
    if "semantic" not in choice:
        return labels
    from redline.guard.detectors.semantic import SHARED_KEY, build_scorer

    scorer = resources.shared(SHARED_KEY, lambda: build_scorer(resources.options))
    return [c for c in labels if c in scorer.model.categories]


async def evaluate(
    examples: Sequence[Example],
    *,
    choice: Choice = "rules+semantic",
    threshold: float = DEFAULT_THRESHOLD,
    policy: Policy | None = None,
    resources: DetectorResources | None = None,
) -> Evaluation:
    """Run the chosen detectors over every example and count, per label, how many fire."""
    if not 0 < threshold <= 1:
        raise InputError(f"threshold must be in (0, 1], not {threshold}", field="threshold")
    if choice not in CHOICES:
        raise InputError(f"detector must be one of {', '.join(CHOICES)}", field="detector")
    resources = resources or DetectorResources()
    labels = sorted({e.label for e in examples} - {BENIGN})
    covered = _known_categories(choice, labels, resources)
    if "rules" in choice and policy is not None:
        covered = sorted(set(covered) | {
            c for _, t in policy.tripwires() if t.detector == "rules" and t.patterns
            for c in t.categories
        })
    built = _build(choice, _known_categories(choice, labels, resources), policy, resources)
    flagged: dict[str, int] = {}
    counts: dict[str, int] = {}
    for example in examples:
        scores: dict[str, float] = {}
        for detector in built:
            finding = await detector.detect(Inspected(surface="input", text=example.text))
            for category, score in finding.categories.items():
                scores[category] = max(scores.get(category, 0.0), score)
        if example.label == BENIGN:
            hit = any(s >= threshold for s in scores.values())
        else:
            hit = scores.get(example.label, 0.0) >= threshold
        counts[example.label] = counts.get(example.label, 0) + 1
        flagged[example.label] = flagged.get(example.label, 0) + int(hit)
    results = [
        LabelResult(
            label=label, n=counts[label],
            measure="false_positive_rate" if label == BENIGN else "detection_rate",
            rate=Proportion.of(flagged[label], counts[label]),
            covered=label == BENIGN or label in covered,
        )
        for label in sorted(counts, key=lambda name: (name == BENIGN, name))
    ]
    return Evaluation(detector=choice, threshold=threshold, results=results)
