"""Service settings: one validated object, so a misconfigured deployment fails at start."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: Default coordinated-disclosure embargo (Project Zero and most AI security vendors: 90 days).
DEFAULT_EMBARGO_DAYS = 90
#: Largest request body accepted (a batch of guard summaries or an attestation).
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024


class AlertRules(BaseModel):
    """Thresholds of the alert rules; named so an alert can say which rule fired and why."""

    model_config = ConfigDict(extra="forbid")

    #: Guard decisions that mean a red line was crossed (content stopped or an agent halted).
    crossing_decisions: list[str] = Field(
        default_factory=lambda: ["block", "end_session", "revoke_agent"])
    #: A tripwire spikes when its rate in a window is this many times its own baseline…
    spike_factor: float = Field(default=3.0, gt=1.0)
    #: …over at least this many earlier windows of the same guard…
    spike_min_history: int = Field(default=3, ge=1)
    #: …(the baseline is the mean over at most this many earlier windows)…
    baseline_windows: int = Field(default=12, ge=1)
    #: …and with at least this many tripped items in the window (no alert on 1 of 2).
    spike_min_events: int = Field(default=5, ge=1)
    #: A category "rises across organisations" when this many organisations…
    cross_org_min_orgs: int = Field(default=3, ge=2)
    #: …each see it rise by this factor over their baseline…
    cross_org_rise_factor: float = Field(default=2.0, gt=1.0)
    #: …within this window (seconds).
    cross_org_window_s: int = Field(default=3600, ge=60)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    database_url: str = "sqlite:///observatory.db"
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    embargo_days: int = Field(default=DEFAULT_EMBARGO_DAYS, ge=1, le=365)
    #: Set on a deployment behind TLS so the dashboard's session cookie is Secure.
    secure_cookies: bool = False
    alerts: AlertRules = Field(default_factory=AlertRules)
    webhook_attempts: int = Field(default=5, ge=1, le=20)
    #: First retry delay in seconds; doubles on each further attempt.
    webhook_backoff_s: float = Field(default=1.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
