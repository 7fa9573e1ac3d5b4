"""The risk ledger: how evidence from earlier turns moves later decisions.

Pure functions over :class:`LedgerEntry`; the store keeps entries, the guard calls these.
One entry exists per session and one per principal (across its sessions).

Formula (``t`` = the tripwire's *base* threshold, ``s`` = the score):

* **Decay.** ``risk`` and ``near_misses`` halve every ``half_life_s``:
  ``x(now) = x * 0.5 ** ((now - updated_at) / half_life_s)``; values below
  ``NEGLIGIBLE`` snap to 0, so an idle ledger returns exactly to rest.
* **Observe** (decay first, then add):

  - ``s < NOISE_FRACTION * t`` (the noise floor ``f``): nothing is added, so a long benign
    conversation never accumulates;
  - tripped: ``risk += TRIP_RISK`` and ``trips += 1``;
  - otherwise ``risk += min(1, (s - f) / (t - f))`` (0 at the floor, 1 at the threshold),
    and if ``s >= NEAR_MISS_FRACTION * t`` also ``near_misses += 1``.

* **Combined risk** ``R = session.risk + principal_weight * principal.risk`` and likewise
  ``N`` for near misses (all decayed to ``now``).
* **Effective threshold**
  ``pressure = R + NEAR_MISS_WEIGHT * N``,
  ``tighten = max_tighten * (1 - exp(-pressure / PRESSURE_SCALE))``,
  ``threshold = clamp(t * (1 - tighten) - context.threshold_shift, MIN_THRESHOLD, 1)``.
  Tightening saturates at ``max_tighten`` and vanishes as risk decays; a positive context
  shift makes every threshold stricter.
* **Ledger trip** when ``R >= trip_risk``, whatever the latest item scored.

Example (defaults, ``t = 0.7``): messages scoring 0.45, 0.5, 0.55 each pass a fresh
threshold, but after the first two the threshold is about 0.52 and the third is caught.
"""

from __future__ import annotations

import math

from redline.errors import InputError
from redline.guard.store.base import LedgerEntry
from redline.policy.model import ContextProfile, LedgerSettings

#: Scores below this fraction of the threshold are noise and add no risk.
NOISE_FRACTION = 0.5
#: A score at or above this fraction of the threshold (without tripping) is a near miss.
NEAR_MISS_FRACTION = 0.85
#: Risk added when a tripwire fires.
TRIP_RISK = 1.0
#: How much one (decayed) near miss adds to the tightening pressure, on top of its risk.
NEAR_MISS_WEIGHT = 0.5
#: Pressure at which tightening reaches ~63% of ``max_tighten``.
PRESSURE_SCALE = 1.0
#: No threshold goes below this, whatever the risk and context.
MIN_THRESHOLD = 0.05
#: Decayed values below this are treated as zero.
NEGLIGIBLE = 1e-3


def _unit(name: str, value: float, *, open_low: bool = False) -> None:
    low_ok = value > 0 if open_low else value >= 0
    if not (low_ok and value <= 1.0):
        bound = "(0, 1]" if open_low else "[0, 1]"
        raise InputError(f"{name} must be in {bound}, got {value!r}", field=name)


def _halve(value: float, elapsed: float, half_life_s: float) -> float:
    out = value * 0.5 ** (elapsed / half_life_s)
    return 0.0 if out < NEGLIGIBLE else out


def decay(entry: LedgerEntry, now: float, half_life_s: float) -> LedgerEntry:
    """``entry`` as of ``now``. A clock behind ``updated_at`` (another replica's skew)
    decays nothing rather than growing risk."""
    if half_life_s <= 0:
        raise InputError(f"half_life_s must be positive, got {half_life_s!r}",
                         field="half_life_s")
    elapsed = max(0.0, now - entry.updated_at)
    return LedgerEntry(
        risk=_halve(entry.risk, elapsed, half_life_s),
        near_misses=_halve(entry.near_misses, elapsed, half_life_s),
        trips=entry.trips,
        updated_at=max(now, entry.updated_at),
    )


def _decayed(entry: LedgerEntry | None, now: float, settings: LedgerSettings) -> LedgerEntry:
    if entry is None:
        return LedgerEntry(updated_at=now)
    return decay(entry, now, settings.half_life_s)


def observe(
    entry: LedgerEntry | None,
    score: float,
    threshold: float,
    tripped: bool,
    now: float,
    settings: LedgerSettings,
) -> LedgerEntry:
    """Add one scored item to a ledger. ``threshold`` is the tripwire's base threshold, so
    the noise floor does not sink as the ledger tightens."""
    _unit("score", score)
    _unit("threshold", threshold, open_low=True)
    current = _decayed(entry, now, settings)
    risk, near, trips = current.risk, current.near_misses, current.trips
    floor = NOISE_FRACTION * threshold
    if tripped:
        risk += TRIP_RISK
        trips += 1
    elif score >= floor:
        risk += min(1.0, (score - floor) / (threshold - floor))
        if score >= NEAR_MISS_FRACTION * threshold:
            near += 1.0
    return LedgerEntry(risk=risk, near_misses=near, trips=trips,
                       updated_at=current.updated_at)


def combined_risk(
    session: LedgerEntry | None,
    principal: LedgerEntry | None,
    now: float,
    settings: LedgerSettings,
) -> float:
    """Session risk plus ``principal_weight`` times the principal's, both decayed."""
    risk, _ = _combined(session, principal, now, settings)
    return risk


def _combined(
    session: LedgerEntry | None,
    principal: LedgerEntry | None,
    now: float,
    settings: LedgerSettings,
) -> tuple[float, float]:
    """(risk, near misses), each the session's plus ``principal_weight`` times the
    principal's, decayed to ``now``."""
    s = _decayed(session, now, settings)
    p = _decayed(principal, now, settings)
    w = settings.principal_weight
    return s.risk + w * p.risk, s.near_misses + w * p.near_misses


def tightening(
    session: LedgerEntry | None,
    principal: LedgerEntry | None,
    now: float,
    settings: LedgerSettings,
) -> float:
    """Fraction in ``[0, max_tighten)`` by which the ledger lowers base thresholds."""
    risk, near_misses = _combined(session, principal, now, settings)
    pressure = risk + NEAR_MISS_WEIGHT * near_misses
    return settings.max_tighten * (1.0 - math.exp(-pressure / PRESSURE_SCALE))


def effective_threshold(
    base: float,
    session: LedgerEntry | None,
    principal: LedgerEntry | None,
    now: float,
    settings: LedgerSettings,
    context: ContextProfile,
) -> float:
    """The threshold to compare a score with now, in ``[MIN_THRESHOLD, 1]``."""
    _unit("threshold", base, open_low=True)
    tighten = tightening(session, principal, now, settings)
    value = base * (1.0 - tighten) - context.threshold_shift
    return min(1.0, max(MIN_THRESHOLD, value))


def ledger_trips(
    session: LedgerEntry | None,
    principal: LedgerEntry | None,
    now: float,
    settings: LedgerSettings,
) -> bool:
    """Whether accumulated risk alone warrants ``settings.action``."""
    return combined_risk(session, principal, now, settings) >= settings.trip_risk
