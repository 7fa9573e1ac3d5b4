"""Fit one logistic-regression probe per layer, choose the layer, calibrate its threshold.

Per layer the pooled features are standardised (a few residual-stream dimensions are
hundreds of times larger than the rest) and fitted with the refusal classifier's Newton
solver; every fourth example of each class is held out for validation, and the layer with
the best validation AUROC wins. The chosen layer is refitted on the whole training set and
its standardisation folded into the weights, so the artefact is a plain ``h·w + b``. The
threshold is set on a separate benign control set at a stated false-positive rate, on the
score the tripwire sees (the highest over the reply's tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from redline.errors import InputError
from redline.probes.artefact import Calibration, LayerFigure, ProbeArtefact, ProbeModel
from redline.probes.collect import Activations
from redline.probes.metrics import F64, auroc, threshold_at_fpr, trip_scores
from redline.scoring.refusal import Proportion, fit_logistic, log_loss, predict_logistic

#: L2 strengths tried per layer (standardised features: hidden size ≫ examples).
PROBE_L2 = (1.0, 10.0, 100.0, 1000.0)
#: Every VAL_EVERY-th example of each class is validation.
VAL_EVERY = 4
DEFAULT_FPR = 0.05
MIN_PER_CLASS = 4
#: Floor on a feature's standard deviation (constant features).
MIN_SCALE = 1e-6


@dataclass(frozen=True)
class _Fit:
    weights: npt.NDArray[np.float32]
    bias: float


def validation_mask(labels: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Every ``VAL_EVERY``-th example of each class, counted in file order (pairs of a
    question stay on the same side, since a set lists them in the same order per class)."""
    mask = np.zeros(len(labels), dtype=bool)
    for cls in (True, False):
        where = np.flatnonzero(labels == cls)
        mask[where[VAL_EVERY - 1 :: VAL_EVERY]] = True
    return mask


def _fit(x: F64, y: F64, lam: float) -> _Fit:
    """Standardise, fit, and fold the standardisation into raw-space weights."""
    mean, scale = x.mean(axis=0), np.maximum(x.std(axis=0), MIN_SCALE)
    w = fit_logistic((x - mean) / scale, y, lam)
    raw = w[:-1] / scale
    return _Fit(raw.astype(np.float32), float(w[-1] - raw @ mean))


def _predict(fit: _Fit, x: F64) -> F64:
    return predict_logistic(np.append(fit.weights.astype(np.float64), fit.bias), x)


def rows(
    acts: Activations, layer: int, keep: npt.NDArray[np.bool_]
) -> tuple[F64, F64]:
    """Training rows and labels of the kept examples at ``layer``, as the pooling says."""
    i = acts.layer_index(layer)
    if acts.meta.pooling != "tokens":
        return acts.pooled[i][keep].astype(np.float64), acts.labels[keep].astype(np.float64)
    lengths = np.diff(acts.offsets)
    token_keep = np.repeat(keep, lengths)
    labels = np.repeat(acts.labels, lengths)
    return acts.spans[i][token_keep].astype(np.float64), labels[token_keep].astype(np.float64)


def _subset(acts: Activations, keep: npt.NDArray[np.bool_]) -> Activations:
    lengths = np.diff(acts.offsets)[keep]
    return Activations(
        meta=acts.meta, pooled=acts.pooled[:, keep],
        spans=acts.spans[:, np.repeat(keep, np.diff(acts.offsets))],
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        labels=acts.labels[keep],
    )


def sweep(train: Activations) -> list[LayerFigure]:
    """Per collected layer: the L2 with the lowest validation log loss, and the validation
    AUROC of the score the tripwire sees (highest over each example's span)."""
    val = validation_mask(train.labels)
    held = _subset(train, val)
    figures = []
    for layer in train.meta.layers:
        x, y = rows(train, layer, ~val)
        xv, yv = rows(train, layer, val)
        fits = {lam: _fit(x, y, lam) for lam in PROBE_L2}
        lam = min(PROBE_L2, key=lambda value: log_loss(_predict(fits[value], xv), yv))
        scores = trip_scores(held, layer, fits[lam].weights, fits[lam].bias)
        figures.append(LayerFigure(layer=layer, val_auroc=auroc(scores, held.labels), l2=lam))
    return figures


def train_probe(
    train: Activations, controls: Activations, name: str, target_fpr: float = DEFAULT_FPR
) -> tuple[ProbeArtefact, npt.NDArray[np.float32]]:
    """A calibrated probe from training and control activations of the same model."""
    positives = int(train.labels.sum())
    if min(positives, len(train.labels) - positives) < MIN_PER_CLASS:
        raise InputError(f"training needs at least {MIN_PER_CLASS} examples of each class")
    if controls.labels.any():
        raise InputError("the control set must hold negatives only")
    if controls.meta.model_digest != train.meta.model_digest:
        raise InputError("controls and training activations come from different models")
    if not 0 < target_fpr < 1:
        raise InputError(f"the target false-positive rate must be in (0, 1), got {target_fpr}")
    figures = sweep(train)
    best = max(figures, key=lambda f: (f.val_auroc, -f.layer))
    x, y = rows(train, best.layer, np.ones(len(train.labels), dtype=bool))
    fit = _fit(x, y, best.l2)
    control = trip_scores(controls, best.layer, fit.weights, fit.bias)
    threshold = threshold_at_fpr(control, target_fpr)
    meta = train.meta
    artefact = ProbeArtefact(
        name=name, concept=meta.concept,
        model=ProbeModel(target=meta.target, model=meta.model, digest=meta.model_digest),
        layer=best.layer, pooling=meta.pooling, hidden_size=int(x.shape[1]), bias=fit.bias,
        threshold=threshold, l2=best.l2, train_set=meta.set_name, n_train=len(train.labels),
        layers=figures,
        calibration=Calibration(
            set_name=controls.meta.set_name, target_fpr=target_fpr,
            fpr=Proportion.of(int((control >= threshold).sum()), len(control)),
        ),
        weights_file="", weights_sha256="",
    )
    return artefact, fit.weights
