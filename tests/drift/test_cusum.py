"""CUSUM over guard tripwire rates: alarms after a real shift, none on a stable series."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from redline.drift.cusum import detect_changes
from redline.errors import InputError
from redline.records.guard_events import GuardEventCount, GuardEventSummary, read_event_summaries

CHECKS = 500
START = datetime(2026, 11, 1, tzinfo=UTC)


def _window(i: int, blocked: int, red_line: str = "rl4-cyberattacks") -> GuardEventSummary:
    start = START + timedelta(hours=i)
    return GuardEventSummary(
        guard_id="g1", policy_id="idais", policy_digest="d" * 64, window_start=start,
        window_end=start + timedelta(hours=1), checks=CHECKS,
        counts=[GuardEventCount(red_line=red_line, category="CAT.CYBER", surface="input",
                                decision=decision, count=count)
                for decision, count in (("block", blocked), ("allow", CHECKS - blocked))
                if count],
    )


# Deterministic counts around 2% (10 of 500), then around 8% from window 12.
STABLE = [9, 11, 10, 12, 8, 10, 11, 9, 10, 12, 9, 10]
SHIFTED = [38, 41, 40, 44]


def test_alarm_after_shift_and_not_before() -> None:
    [series] = detect_changes([_window(i, b) for i, b in enumerate(STABLE + SHIFTED)])
    assert series.baseline_rate == pytest.approx(50.5 / 2501)
    ups = [a for a in series.alarms if a.direction == "up"]
    assert ups and ups[0].window == len(STABLE)  # the first shifted window
    assert all(a.window >= len(STABLE) for a in series.alarms)


def test_no_alarm_on_a_stable_series_and_a_drop_is_seen() -> None:
    [stable] = detect_changes([_window(i, b) for i, b in enumerate(STABLE * 2)])
    assert stable.alarms == []
    [dropped] = detect_changes([_window(i, b) for i, b in enumerate([*STABLE, 0, 0, 0])])
    assert {a.direction for a in dropped.alarms} == {"down"}
    assert dropped.alarms[0].window == len(STABLE)


def test_events_file_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(_window(i, b).model_dump_json(by_alias=True) + "\n"
                            for i, b in enumerate(STABLE + SHIFTED)))
    res = subprocess.run([sys.executable, "-m", "redline.cli", "drift", "--events", str(path),
                          "--json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    [series] = json.loads(res.stdout)["cusum"]
    assert series["alarms"][0]["direction"] == "up"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(path.read_text().splitlines()[0] + "\n{\"guard_id\": 3}\n")
    with pytest.raises(InputError) as err:
        read_event_summaries(bad)
    assert err.value.line == 2
