"""Where the guard keeps state: risk ledgers, the review queue and the agent registry."""

from redline.guard.store.base import (
    AgentRecord,
    GuardStore,
    LedgerEntry,
    ReviewItem,
    ReviewStatus,
)

__all__ = ["AgentRecord", "GuardStore", "LedgerEntry", "ReviewItem", "ReviewStatus"]
