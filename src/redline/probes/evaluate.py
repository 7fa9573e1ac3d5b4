"""Held-out figures for a probe, and for text classifiers on the same prompts.

For the probe and each classifier: AUROC with its 95% interval, and the detection rate and
false-positive rate at a threshold calibrated on the benign controls at the probe's stated
false-positive rate (Wilson intervals). The text classifiers read what a text guard would
see of the same conversations (system, prompt and reply):

- ``semantic``: the guard's semantic detector as shipped (static MiniLM, one head per lexicon
  category; the score is its highest category), zero-shot on these prompts;
- ``semantic-retrained``: the same recipe trained on the probe's own training labels;
- ``minilm-lr``: the refusal classifier's recipe (contextual MiniLM sentence means + L2
  logistic regression) trained on the probe's training labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from redline.errors import InputError
from redline.probes.artefact import ProbeArtefact
from redline.probes.collect import Activations
from redline.probes.metrics import F64, auroc, auroc_interval, threshold_at_fpr, trip_scores
from redline.scoring.refusal import (
    LAMBDAS,
    Proportion,
    fit_logistic,
    log_loss,
    out_of_fold,
    predict_logistic,
)

Comparison = Literal["semantic", "semantic-retrained", "minilm-lr"]
COMPARISONS: tuple[Comparison, ...] = ("semantic", "semantic-retrained", "minilm-lr")


class Figures(BaseModel):
    """One scorer's held-out figures."""

    model_config = ConfigDict(extra="forbid")

    scorer: str
    auroc: float
    auroc_low: float
    auroc_high: float
    threshold: float
    #: Held-out positives at or above the threshold.
    detection: Proportion
    #: Held-out negatives at or above the threshold.
    fpr: Proportion
    #: Controls at or above the threshold (the calibration set itself).
    control_fpr: Proportion


class Evaluation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    probe: str
    concept: str
    layer: int
    heldout_set: str
    target_fpr: float
    n_positive: int
    n_negative: int
    results: list[Figures]


def figures(
    scorer: str, scores: F64, labels: npt.NDArray[np.bool_], control: F64, threshold: float
) -> Figures:
    auc = auroc(scores, labels)
    low, high = auroc_interval(auc, int(labels.sum()), int((~labels).sum()))
    hit = scores >= threshold
    return Figures(
        scorer=scorer, auroc=auc, auroc_low=low, auroc_high=high, threshold=threshold,
        detection=Proportion.of(int(hit[labels].sum()), int(labels.sum())),
        fpr=Proportion.of(int(hit[~labels].sum()), int((~labels).sum())),
        control_fpr=Proportion.of(int((control >= threshold).sum()), len(control)),
    )


TextScorer = Callable[[Sequence[str]], F64]


def _semantic_builtin(train: Sequence[str], labels: npt.NDArray[np.bool_]) -> TextScorer:
    from redline.guard.detectors.semantic import build_scorer

    scorer = build_scorer({})
    return lambda texts: scorer.predict(list(texts)).max(axis=1)


def _semantic_retrained(train: Sequence[str], labels: npt.NDArray[np.bool_]) -> TextScorer:
    from redline.guard.detectors.semantic import static_features
    from redline.guard.semantic_model import BENIGN, Example
    from redline.guard.semantic_model import train as train_semantic
    from redline.guard.static_embeddings import static_embedder

    static = static_embedder()
    model = train_semantic(
        [Example(t, "positive" if y else BENIGN) for t, y in zip(train, labels, strict=True)],
        lambda texts: static_features(static, texts), static.id,
    )
    return lambda texts: model.predict(static_features(static, texts))[:, 0]


def _minilm_lr(train: Sequence[str], labels: npt.NDArray[np.bool_]) -> TextScorer:
    from redline.scoring.embeddings import Embedder
    from redline.scoring.refusal import features

    embedder = Embedder()
    x, y = features(embedder, train), labels.astype(np.float64)
    lam = min(LAMBDAS, key=lambda value: log_loss(out_of_fold(x, y, value), y))
    w = fit_logistic(x, y, lam)
    return lambda texts: predict_logistic(w, features(embedder, texts))


_BUILDERS: dict[Comparison, Callable[[Sequence[str], npt.NDArray[np.bool_]], TextScorer]] = {
    "semantic": _semantic_builtin,
    "semantic-retrained": _semantic_retrained,
    "minilm-lr": _minilm_lr,
}


def evaluate(
    artefact: ProbeArtefact,
    weights: npt.NDArray[np.float32],
    heldout: Activations,
    controls: Activations,
    compare: Sequence[Comparison] = (),
    train: Activations | None = None,
) -> Evaluation:
    """The probe's held-out figures, then each requested text classifier's."""
    if heldout.meta.split != "heldout":
        raise InputError(f"{heldout.meta.set_name!r} is a {heldout.meta.split} set, not heldout")
    for acts in (heldout, controls):
        artefact.check_model(acts.meta.model_digest)
    labels = heldout.labels
    scores = trip_scores(heldout, artefact.layer, weights, artefact.bias)
    control = trip_scores(controls, artefact.layer, weights, artefact.bias)
    results = [figures(f"probe:{artefact.name}", scores, labels, control, artefact.threshold)]
    if compare:
        if train is None:
            raise InputError("comparing with text classifiers needs the training activations")
        train_texts, heldout_texts = train.meta.texts, heldout.meta.texts
        control_texts = controls.meta.texts
        for name in compare:
            predict = _BUILDERS[name](train_texts, train.labels)
            text_control = predict(control_texts)
            threshold = threshold_at_fpr(text_control, artefact.calibration.target_fpr)
            results.append(
                figures(name, predict(heldout_texts), labels, text_control, threshold)
            )
    return Evaluation(
        probe=artefact.name, concept=artefact.concept, layer=artefact.layer,
        heldout_set=heldout.meta.set_name, target_fpr=artefact.calibration.target_fpr,
        n_positive=int(labels.sum()), n_negative=int((~labels).sum()), results=results,
    )
