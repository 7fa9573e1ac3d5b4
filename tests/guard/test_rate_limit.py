"""The token-bucket rule behind per-principal rate limits."""

from __future__ import annotations

import pytest

from redline.guard.rate_limit import Bucket, capacity, take


def test_a_new_bucket_allows_a_burst_of_one_second_then_refills_at_the_rate() -> None:
    bucket, waits = None, []
    for _ in range(4):
        bucket, wait = take(bucket, 3.0, 50.0)
        waits.append(wait)
    assert waits[:3] == [None, None, None]
    assert waits[3] == pytest.approx(1 / 3)
    bucket, wait = take(bucket, 3.0, 50.0 + 1 / 3)
    assert wait is None and bucket.tokens == pytest.approx(0.0)


def test_a_refused_request_takes_nothing_and_a_slow_rate_still_allows_one() -> None:
    assert capacity(0.2) == 1.0
    bucket, wait = take(None, 0.2, 0.0)
    assert wait is None
    refused, wait = take(bucket, 0.2, 1.0)
    assert wait == pytest.approx(4.0) and refused.tokens == pytest.approx(0.2)
    _, wait = take(refused, 0.2, 5.0)
    assert wait is None


def test_the_bucket_never_overfills_nor_refills_when_the_clock_steps_back() -> None:
    _, wait = take(Bucket(tokens=0.5, at=100.0), 2.0, 1e9)
    assert wait is None
    full_after_idle, _ = take(Bucket(tokens=0.0, at=100.0), 2.0, 1e9)
    assert full_after_idle.tokens == pytest.approx(1.0)
    back, wait = take(Bucket(tokens=0.5, at=100.0), 2.0, 90.0)
    assert back.tokens == pytest.approx(0.5) and wait == pytest.approx(0.25)
    with pytest.raises(ValueError):
        take(None, 0.0, 1.0)
