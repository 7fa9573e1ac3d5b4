"""The tests and corrections against published values."""

from __future__ import annotations

import pytest

from redline.drift.changes import compare_groups
from redline.drift.significance import (
    benjamini_hochberg,
    fisher_exact,
    holm,
    two_proportion_z,
)
from redline.records.runlog import SampleRecord


def test_fisher_matches_published_values() -> None:
    # Fisher's tea-tasting table [[3, 1], [1, 3]]: two-sided p = 0.4857.
    assert fisher_exact(3, 4, 1, 4) == pytest.approx(0.485714, abs=1e-6)
    # [[1, 9], [11, 3]] (R's fisher.test documentation example): p = 0.002759.
    assert fisher_exact(1, 10, 11, 14) == pytest.approx(0.002759, abs=1e-6)
    assert fisher_exact(0, 20, 0, 20) == 1.0
    with pytest.raises(ValueError):
        fisher_exact(5, 4, 1, 4)


def test_two_proportion_z() -> None:
    # 30/100 vs 45/100: z = 2.191, two-sided p = 0.02846.
    assert two_proportion_z(30, 100, 45, 100) == pytest.approx(0.02846, abs=1e-4)
    assert two_proportion_z(0, 10, 0, 10) == 1.0


def test_holm_and_bh() -> None:
    ps = [0.01, 0.04, 0.03, 0.005]
    assert holm(ps) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert benjamini_hochberg(ps) == pytest.approx([0.02, 0.04, 0.04, 0.02])


def _samples(category: str, fails: int, n: int) -> list[SampleRecord]:
    return [SampleRecord.model_validate({
        "id": f"{category}/{i}", "suite": "s", "case_id": str(i), "category": category,
        "outcome": "fail" if i < fails else "pass", "started_at": "2026-01-01T00:00:00Z",
    }) for i in range(n)]


def test_compare_flags_only_corrected_increases() -> None:
    before = _samples("CAT.CYBER", 2, 40) + _samples("CAT.CBRN", 5, 40)
    worse = _samples("CAT.CYBER", 25, 40) + _samples("CAT.CBRN", 1, 40)
    comp = compare_groups([("v1", before), ("v2", worse)])
    by = {(c.key, c.metric): c for c in comp.changes}
    assert by[("CAT.CYBER", "fail_rate")].regression
    cbrn = by[("CAT.CBRN", "fail_rate")]
    assert cbrn.delta < 0 and not cbrn.regression
    # The unscored rows are 0 vs 0: reported, never counted in the family.
    assert by[("all", "unscored_rate")].p_adjusted is None
    assert comp.tests_counted == 3
    assert comp.regressions == [c for c in comp.changes if c.key in ("all", "CAT.CYBER")
                                and c.metric == "fail_rate"]
