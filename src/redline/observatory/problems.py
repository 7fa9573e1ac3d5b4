"""Refusals with a reason: raised by the service logic, turned into HTTP answers by the app."""

from __future__ import annotations


class Rejected(Exception):
    """A request the service refuses; ``reason`` is a short stable code clients can test."""

    def __init__(self, reason: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


def not_found(what: str) -> Rejected:
    """Also what a caller gets for something it may not see, so existence does not leak."""
    return Rejected("not_found", f"no {what} here", status=404)
