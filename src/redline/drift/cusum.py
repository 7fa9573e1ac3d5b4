"""Change detection on guard tripwire rates over time: a two-sided Bernoulli CUSUM.

A tripwire rate is the share of checks in a window whose decision was not ``allow``. The
baseline rate comes from the first windows; the CUSUM accumulates the log-likelihood ratio
of a rate ``ratio`` times higher (or lower) against the baseline and raises an alarm when it
passes ``threshold``, then restarts. A rise can mean an attack campaign; a fall, a detector
that stopped working.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from redline.records.guard_events import GuardEventSummary

#: Windows used to estimate the baseline rate.
BASELINE_WINDOWS = 5
#: Shift to detect: the rate multiplied (or divided) by this.
SHIFT_RATIO = 2.0
#: Alarm level of the cumulative log-likelihood ratio (nats).
THRESHOLD = 5.0
#: Decision that is not a trip.
ALLOW = "allow"
#: Keeps rates away from 0 and 1, where the log-likelihood ratio is undefined.
_RATE_FLOOR = 1e-6

Direction = Literal["up", "down"]


class CusumAlarm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    red_line: str
    window: int
    window_start: datetime
    direction: Direction
    rate: float
    statistic: float


class CusumSeries(BaseModel):
    """One red line's tripwire rate per window, its CUSUM paths and alarms."""

    model_config = ConfigDict(extra="forbid")

    red_line: str
    baseline_rate: float
    window_starts: list[datetime]
    trips: list[int]
    checks: list[int]
    upper: list[float]
    lower: list[float]
    alarms: list[CusumAlarm]


def _llr(trips: int, checks: int, p0: float, p1: float) -> float:
    return trips * math.log(p1 / p0) + (checks - trips) * math.log((1 - p1) / (1 - p0))


def _clip(p: float) -> float:
    return min(1 - _RATE_FLOOR, max(_RATE_FLOOR, p))


def cusum(
    counts: Sequence[tuple[int, int]], p0: float, *, ratio: float = SHIFT_RATIO,
    threshold: float = THRESHOLD,
) -> tuple[list[float], list[float], list[tuple[int, Direction, float]]]:
    """CUSUM paths (up, down) over (trips, checks) windows and the alarms (window index,
    direction, statistic); each side restarts from 0 after its alarm."""
    p0 = _clip(p0)
    p_up, p_down = _clip(p0 * ratio), _clip(p0 / ratio)
    s_up = s_down = 0.0
    upper: list[float] = []
    lower: list[float] = []
    alarms: list[tuple[int, Direction, float]] = []
    for i, (trips, checks) in enumerate(counts):
        s_up = max(0.0, s_up + _llr(trips, checks, p0, p_up))
        s_down = max(0.0, s_down + _llr(trips, checks, p0, p_down))
        upper.append(s_up)
        lower.append(s_down)
        if s_up > threshold:
            alarms.append((i, "up", s_up))
            s_up = 0.0
        if s_down > threshold:
            alarms.append((i, "down", s_down))
            s_down = 0.0
    return upper, lower, alarms


def detect_changes(
    summaries: Sequence[GuardEventSummary], *, baseline_windows: int = BASELINE_WINDOWS,
    ratio: float = SHIFT_RATIO, threshold: float = THRESHOLD,
) -> list[CusumSeries]:
    """Per red line, windows in time order (summaries of the same window from several
    replicas are added up); the baseline is the pooled rate of the first windows."""
    windows = sorted({s.window_start for s in summaries})
    checks = dict.fromkeys(windows, 0)
    trips: dict[str, dict[datetime, int]] = {}
    for s in summaries:
        checks[s.window_start] += s.checks
        for c in s.counts:
            per = trips.setdefault(c.red_line, {})
            if c.decision != ALLOW:
                per[s.window_start] = per.get(s.window_start, 0) + c.count
    out = []
    for red_line in sorted(trips):
        series = [(min(trips[red_line].get(w, 0), checks[w]), checks[w]) for w in windows]
        head = series[:baseline_windows]
        p0 = (sum(t for t, _ in head) + 0.5) / (sum(n for _, n in head) + 1)
        upper, lower, alarms = cusum(series, p0, ratio=ratio, threshold=threshold)
        out.append(CusumSeries(
            red_line=red_line, baseline_rate=p0, window_starts=windows,
            trips=[t for t, _ in series], checks=[n for _, n in series],
            upper=upper, lower=lower,
            alarms=[CusumAlarm(red_line=red_line, window=i, window_start=windows[i],
                               direction=d, rate=series[i][0] / max(1, series[i][1]),
                               statistic=stat) for i, d, stat in alarms],
        ))
    return out
