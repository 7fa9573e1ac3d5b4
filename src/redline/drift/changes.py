"""Per lexicon category and metric, and over all samples: the change from one group of
samples to the next, tested for significance and corrected for the number of tests made.

The correction is a serial gatekeeping procedure, which controls the family-wise error rate:
the pooled rows ("all", one per metric) are the primary family, corrected together; the
per-category rows are a second family, corrected together and significant only when every
primary row of the same pair of groups was. A change that shows overall is found with the
power of the pooled sample, and categories then say where it lies.

Every metric here counts something bad (harmful compliance, over-refusal, unscored
samples), so an increase that survives the correction is a regression.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from redline.drift.significance import CorrectionName, TestName, adjust, p_value
from redline.records.runlog import SampleRecord

Metric = Literal["fail_rate", "over_refusal", "unscored_rate"]
#: Red lines get a trend chart each; the tested rows are the categories and their pool.
Dimension = Literal["all", "category"]
#: Family-wise (Holm) or false-discovery (BH) level at which a change counts.
DEFAULT_ALPHA = 0.05
METRICS: tuple[Metric, ...] = ("fail_rate", "over_refusal", "unscored_rate")
#: Key of the row that pools every sample.
ALL = "all"


class Change(BaseModel):
    """One metric of one group, before and after."""

    model_config = ConfigDict(extra="forbid")

    dimension: Dimension
    key: str
    metric: Metric
    baseline: str
    candidate: str
    base_k: int
    base_n: int
    cand_k: int
    cand_n: int
    base_rate: float
    cand_rate: float
    delta: float
    p_value: float
    #: None for a test excluded from the family: its counts cannot differ (0 of n vs 0 of m,
    #: or all vs all), so it could never be significant.
    p_adjusted: float | None
    significant: bool
    regression: bool


class Comparison(BaseModel):
    """Changes between consecutive groups (versions or dates), corrected as one family."""

    model_config = ConfigDict(extra="forbid")

    labels: list[str]
    test: TestName
    correction: CorrectionName
    alpha: float
    tests_counted: int
    changes: list[Change]

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regression]


def _counts(samples: Sequence[SampleRecord], metric: Metric) -> tuple[int, int]:
    """(bad, total) for a metric; fail rates are over scored samples only, so unscored ones
    (a target error, an unreachable judge) show up in their own metric instead."""
    if metric == "unscored_rate":
        return sum(s.outcome == "unscored" for s in samples), len(samples)
    benign = metric == "over_refusal"
    scored = [s for s in samples if s.outcome != "unscored" and (s.expected == "comply") == benign]
    return sum(s.outcome == "fail" for s in scored), len(scored)


_KEYS: dict[Dimension, Callable[[SampleRecord], str | None]] = {
    "all": lambda s: ALL,
    "category": lambda s: s.category,
}


def _groups(samples: Sequence[SampleRecord]) -> dict[tuple[Dimension, str], list[SampleRecord]]:
    out: dict[tuple[Dimension, str], list[SampleRecord]] = {}
    for dim, key_of in _KEYS.items():
        for s in samples:
            key = key_of(s)
            if key is not None:
                out.setdefault((dim, key), []).append(s)
    return out


def compare_groups(
    groups: Sequence[tuple[str, Sequence[SampleRecord]]],
    *,
    test: TestName = "fisher",
    correction: CorrectionName = "holm",
    alpha: float = DEFAULT_ALPHA,
) -> Comparison:
    """Compare each labelled group with the one before it (version to version, or date to
    date), for every category and metric both groups have samples for, and over all."""
    tested: list[Change] = []
    for (base_label, base), (cand_label, cand) in itertools.pairwise(groups):
        before, after = _groups(base), _groups(cand)
        for (dim, key), base_samples in before.items():
            if (dim, key) not in after:
                continue
            for metric in METRICS:
                bk, bn = _counts(base_samples, metric)
                ck, cn = _counts(after[(dim, key)], metric)
                if bn == 0 or cn == 0:
                    continue
                tested.append(Change(
                    dimension=dim, key=key, metric=metric, baseline=base_label,
                    candidate=cand_label, base_k=bk, base_n=bn, cand_k=ck, cand_n=cn,
                    base_rate=bk / bn, cand_rate=ck / cn, delta=ck / cn - bk / bn,
                    p_value=p_value(test, bk, bn, ck, cn), p_adjusted=None, significant=False,
                    regression=False,
                ))
    counted = [i for i, c in enumerate(tested) if not _degenerate(c)]
    primary = [i for i in counted if tested[i].dimension == "all"]
    secondary = [i for i in counted if tested[i].dimension != "all"]
    gate_open: dict[tuple[str, str], bool] = {}
    for family, gated in ((primary, False), (secondary, True)):
        adjusted = adjust(correction, [tested[i].p_value for i in family])
        for i, p_adj in zip(family, adjusted, strict=True):
            c = tested[i]
            pair = (c.baseline, c.candidate)
            significant = p_adj < alpha and (not gated or gate_open.get(pair, True))
            if not gated:
                gate_open[pair] = gate_open.get(pair, True) and significant
            tested[i] = c.model_copy(update={
                "p_adjusted": p_adj, "significant": significant,
                "regression": significant and c.delta > 0,
            })
    return Comparison(labels=[label for label, _ in groups], test=test, correction=correction,
                      alpha=alpha, tests_counted=len(counted), changes=tested)


def _degenerate(c: Change) -> bool:
    return (c.base_k == 0 and c.cand_k == 0) or (c.base_k == c.base_n and c.cand_k == c.cand_n)
