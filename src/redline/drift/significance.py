"""Two-sample tests on proportions and corrections for testing many at once.

Pure functions over counts, so they are easy to check against published tables. Fisher's
exact test is the default because red-line rates sit near 0 with small samples, where the
normal approximation behind the two-proportion z-test is poor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

TestName = Literal["fisher", "two-proportion"]
CorrectionName = Literal["holm", "bh"]
#: Relative tolerance when comparing table probabilities in Fisher's test (as R does).
FISHER_REL_TOL = 1e-7


def _check(k: int, n: int) -> None:
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"k={k} must be between 0 and n={n}")


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p of Fisher's exact test on k1/n1 vs k2/n2: the probability, given the
    margins, of a table no more likely than the one observed."""
    _check(k1, n1)
    _check(k2, n2)
    total_k, total_n = k1 + k2, n1 + n2
    lo, hi = max(0, total_k - n2), min(total_k, n1)
    denom = _log_comb(total_n, total_k)

    def prob(x: int) -> float:
        return math.exp(_log_comb(n1, x) + _log_comb(n2, total_k - x) - denom)

    observed = prob(k1)
    p = sum(q for x in range(lo, hi + 1) if (q := prob(x)) <= observed * (1 + FISHER_REL_TOL))
    return min(1.0, p)


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p of the pooled two-proportion z-test; 1.0 when nothing varies."""
    _check(k1, n1)
    _check(k2, n2)
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (k2 / n2 - k1 / n1) / se
    return math.erfc(abs(z) / math.sqrt(2))


def p_value(test: TestName, k1: int, n1: int, k2: int, n2: int) -> float:
    return fisher_exact(k1, n1, k2, n2) if test == "fisher" else two_proportion_z(k1, n1, k2, n2)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values: controls the family-wise error rate."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values: controls the false discovery rate."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [0.0] * m
    running = 1.0
    for rank, i in enumerate(order):
        running = min(running, m * p_values[i] / (m - rank))
        adjusted[i] = running
    return adjusted


def adjust(correction: CorrectionName, p_values: Sequence[float]) -> list[float]:
    return holm(p_values) if correction == "holm" else benjamini_hochberg(p_values)
