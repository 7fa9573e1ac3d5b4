"""Probe scores and the figures reported on them: AUROC with its interval, thresholds."""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt

from redline.errors import InputError
from redline.probes.collect import Activations

F64 = npt.NDArray[np.float64]
#: Two-sided 95% normal quantile for the AUROC interval.
Z95 = 1.959963984540054


def sigmoid(z: F64) -> F64:
    result: F64 = 0.5 * (1.0 + np.tanh(0.5 * z))
    return result


def trip_scores(
    activations: Activations, layer: int, weights: npt.NDArray[np.float32], bias: float
) -> F64:
    """Per example, the highest probe probability over its span: what the tripwire would
    have seen at its worst moment while the reply was written."""
    span = activations.spans[activations.layer_index(layer)].astype(np.float64)
    per_token = sigmoid(span @ weights.astype(np.float64) + bias)
    offsets = activations.offsets
    return np.array([per_token[a:b].max() for a, b in itertools.pairwise(offsets)])


def auroc(scores: F64, labels: npt.NDArray[np.bool_]) -> float:
    """Probability that a positive outscores a negative (ties count half)."""
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        raise InputError("AUROC needs positive and negative examples")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def auroc_interval(auc: float, n_pos: int, n_neg: int) -> tuple[float, float]:
    """95% interval by Hanley & McNeil's (1982) standard error, clipped to [0, 1]."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)
    ) / (n_pos * n_neg)
    half = Z95 * math.sqrt(max(variance, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def threshold_at_fpr(control_scores: F64, target_fpr: float) -> float:
    """The lowest threshold at which at most ``target_fpr`` of the controls reach it."""
    if not len(control_scores):
        raise InputError("calibration needs control examples")
    ranked = np.sort(control_scores)[::-1]
    allowed = math.floor(target_fpr * len(ranked))
    if allowed >= len(ranked):
        return 0.0
    return float(min(1.0, np.nextafter(ranked[allowed], np.inf)))
