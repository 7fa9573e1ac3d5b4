"""The risk ledger: benign traffic stays at base, escalation is caught, risk decays."""

from __future__ import annotations

import pytest

from redline.errors import InputError
from redline.guard import ledger
from redline.guard.ledger import (
    MIN_THRESHOLD,
    combined_risk,
    decay,
    effective_threshold,
    ledger_trips,
    observe,
)
from redline.guard.store.base import LedgerEntry
from redline.policy.model import ContextProfile, LedgerSettings

BASE = 0.7
SETTINGS = LedgerSettings()
DEFAULT = ContextProfile(id="default")
#: Turns of a crescendo: each alone under the 0.7 threshold, rising.
ESCALATION = [0.45, 0.5, 0.52, 0.55, 0.58, 0.6]


def _threshold(session: LedgerEntry | None, now: float,
               principal: LedgerEntry | None = None,
               context: ContextProfile = DEFAULT,
               settings: LedgerSettings = SETTINGS) -> float:
    return effective_threshold(BASE, session, principal, now, settings, context)


def test_long_benign_conversation_never_accumulates() -> None:
    entry = None
    for turn in range(500):
        score = (turn % 7) / 20  # 0 .. 0.3, all under the noise floor
        entry = observe(entry, score, BASE, False, float(turn), SETTINGS)
    assert entry is not None and entry.risk == 0.0 and entry.near_misses == 0.0
    assert _threshold(entry, 500.0) == BASE
    assert not ledger_trips(entry, None, 500.0, SETTINGS)


def test_each_escalation_message_passes_alone_but_the_sequence_is_caught() -> None:
    for score in ESCALATION:
        assert score < _threshold(None, 0.0)
    entry: LedgerEntry | None = None
    caught_at = None
    for turn, score in enumerate(ESCALATION):
        now = 10.0 * turn
        over = score >= _threshold(entry, now)
        entry = observe(entry, score, BASE, over, now, SETTINGS)
        if over or ledger_trips(entry, None, now, SETTINGS):
            caught_at = turn
            break
    assert caught_at is not None and caught_at <= 3


def test_medium_scores_lower_the_threshold_and_near_misses_lower_it_further() -> None:
    medium = observe(None, 0.5, BASE, False, 0.0, SETTINGS)
    near = observe(None, 0.65, BASE, False, 0.0, SETTINGS)  # within 15% of 0.7
    assert medium.near_misses == 0 and near.near_misses == 1
    assert _threshold(near, 0.0) < _threshold(medium, 0.0) < BASE
    # The near-miss bonus is on top of the risk the score itself adds.
    same_risk = LedgerEntry(risk=near.risk, updated_at=0.0)
    assert _threshold(near, 0.0) < _threshold(same_risk, 0.0)


def test_a_trip_adds_fixed_risk_and_counts() -> None:
    entry = observe(None, 0.95, BASE, True, 0.0, SETTINGS)
    assert entry.trips == 1 and entry.risk == ledger.TRIP_RISK
    entry = observe(entry, 0.95, BASE, True, 0.0, SETTINGS)
    assert entry.trips == 2 and ledger_trips(entry, None, 0.0, SETTINGS)


def test_risk_halves_every_half_life_and_thresholds_relax_to_base() -> None:
    hl = SETTINGS.half_life_s
    entry = LedgerEntry(risk=1.6, near_misses=2.0, trips=3, updated_at=0.0)
    half = decay(entry, hl, hl)
    assert half.risk == pytest.approx(0.8) and half.near_misses == pytest.approx(1.0)
    assert half.trips == 3 and half.updated_at == hl
    assert _threshold(entry, 0.0) < _threshold(entry, hl) < _threshold(entry, 4 * hl) < BASE
    assert _threshold(entry, 20 * hl) == BASE
    assert decay(entry, 20 * hl, hl).risk == 0.0
    # A clock behind the entry (another replica's skew) never increases risk.
    assert decay(entry, -100.0, hl).risk == entry.risk


def test_observe_decays_before_adding() -> None:
    hl = SETTINGS.half_life_s
    first = observe(None, 0.7 * 0.5 + 0.35 / 2, BASE, False, 0.0, SETTINGS)
    assert first.risk == pytest.approx(0.5)
    later = observe(first, 0.0, BASE, False, hl, SETTINGS)
    assert later.risk == pytest.approx(0.25) and later.updated_at == hl


def test_principal_risk_carries_across_sessions_at_its_weight() -> None:
    principal = LedgerEntry(risk=1.0, updated_at=0.0)
    session = LedgerEntry(risk=0.4, updated_at=0.0)
    settings = LedgerSettings(principal_weight=0.5)
    assert combined_risk(session, principal, 0.0, settings) == pytest.approx(0.9)
    # A new session of a principal with a history starts stricter than a clean one.
    assert _threshold(None, 0.0, principal=principal) < _threshold(None, 0.0)
    ignored = LedgerSettings(principal_weight=0.0)
    assert _threshold(None, 0.0, principal=principal, settings=ignored) == BASE
    assert ledger_trips(LedgerEntry(risk=1.5), LedgerEntry(risk=1.0), 0.0, settings)
    assert not ledger_trips(LedgerEntry(risk=1.5), None, 0.0, settings)


def test_context_shift_and_clamping() -> None:
    strict = ContextProfile(id="minors", threshold_shift=0.2)
    lenient = ContextProfile(id="research", threshold_shift=-0.5)
    assert _threshold(None, 0.0, context=strict) == pytest.approx(BASE - 0.2)
    assert _threshold(None, 0.0, context=lenient) == 1.0
    low = effective_threshold(0.1, LedgerEntry(risk=50.0), None, 0.0, SETTINGS,
                              ContextProfile(id="x", threshold_shift=0.5))
    assert low == MIN_THRESHOLD


@pytest.mark.parametrize("max_tighten", [0.0, 0.2, 0.5])
def test_tightening_never_exceeds_max_tighten(max_tighten: float) -> None:
    settings = LedgerSettings(max_tighten=max_tighten)
    huge = LedgerEntry(risk=1e6, near_misses=1e6)
    value = effective_threshold(BASE, huge, huge, 0.0, settings, DEFAULT)
    assert value >= BASE * (1 - max_tighten) - 1e-12
    if max_tighten:
        assert value < BASE


def test_bad_scores_are_refused() -> None:
    with pytest.raises(InputError, match="score"):
        observe(None, 1.5, BASE, False, 0.0, SETTINGS)
    with pytest.raises(InputError, match="threshold"):
        observe(None, 0.5, 0.0, False, 0.0, SETTINGS)
