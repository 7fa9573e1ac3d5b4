"""Alert rules: red line crossed, spike against the guard's own baseline, and a category
rising across several organisations (shared, naming no one)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redline.observatory.alerts import Window, red_line_crossed, tripwire_spike
from redline.observatory.settings import AlertRules
from tests.observatory.conftest import Observatory
from tests.observatory.guardfeed import push, summaries_from_decisions

START = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
FLAG = ("rl-ara", "CAT.ARA", "agent", "flag")


def _w(minute: int, tripped: int, checks: int = 100, decision: str = "flag") -> Window:
    t = START + timedelta(minutes=minute)
    return Window(org_id=1, guard_id="g", window_start=t, window_end=t + timedelta(minutes=1),
                  checks=checks, counts=[("rl-ara", "CAT.ARA", decision, tripped)]
                  if tripped else [])


def test_spike_needs_history_events_and_the_factor() -> None:
    rules = AlertRules()
    history = [_w(m, 2) for m in (3, 2, 1)]
    assert tripwire_spike(_w(4, 6), history, rules) != []  # 6% vs 2%: 3x
    assert tripwire_spike(_w(4, 5), history, rules) == []  # 5% < 3 x 2%
    assert tripwire_spike(_w(4, 30), history[:2], rules) == []  # too little history
    assert tripwire_spike(_w(4, 4, checks=10), [_w(m, 0) for m in (3, 2, 1)], rules) == []
    spike = tripwire_spike(_w(4, 9), history, rules)[0]
    assert spike.rule == "tripwire_spike" and spike.details["baseline"] == 0.02


def test_crossing_decisions_only() -> None:
    rules = AlertRules()
    assert red_line_crossed(_w(0, 50, decision="flag"), rules) == []
    crossed = red_line_crossed(_w(0, 1, decision="revoke_agent"), rules)
    assert [(a.rule, a.red_line, a.details["decisions"]) for a in crossed] == [
        ("red_line_crossed", "rl-ara", {"revoke_agent": 1})]


def test_category_rising_across_three_organisations_alerts_every_member(
        obs: Observatory) -> None:
    quiet = [FLAG] * 1 + [None] * 99
    rising = [FLAG] * 8 + [None] * 92
    labs = [obs.member(f"lab-{i}") for i in range(3)]
    watcher = obs.member("watcher")
    raised = []
    for i, lab in enumerate(labs):
        # two quiet windows, then a rise; the shared alert needs the third lab's rise
        summaries = summaries_from_decisions(f"guard-{i}", START, timedelta(minutes=10),
                                             [quiet, quiet, rising])
        raised.append(push(obs.url, lab.token, summaries))
    shared = [a for a in obs.get("/api/alerts", watcher).json() if a["rule"] == "cross_org_rise"]
    assert len(shared) == 1
    assert shared[0]["org"] is None and shared[0]["category"] == "CAT.ARA"
    assert shared[0]["details"]["organisations"] == 3
    assert "lab-" not in shared[0]["message"]
    # each lab's own spike alert stays private to it
    assert all(a["org"] is None for a in obs.get("/api/alerts", watcher).json())
