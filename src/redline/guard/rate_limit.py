"""The per-principal request rate as a token bucket: a pure rule the stores apply atomically.

The bucket lives in the state store, not in the proxy process, so every worker of one
``guard serve --workers N`` and every replica on a shared Redis draws from the same bucket:
a principal limited to R requests/s gets R in all, not R per process.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Seconds of the principal's rate that may be spent at once (the bucket's size); a rate
#: below one request per second still allows one request.
BURST_S = 1.0


@dataclass(frozen=True)
class Bucket:
    tokens: float
    #: Unix time of the last take: processes on one host or a shared Redis compare it.
    at: float


def capacity(rate_per_s: float) -> float:
    return max(1.0, rate_per_s * BURST_S)


def take(bucket: Bucket | None, rate_per_s: float, now: float) -> tuple[Bucket, float | None]:
    """The bucket after one request at ``now``, and the seconds to wait before the next
    token if this request is refused (``None``: allowed). A refused request takes nothing."""
    if rate_per_s <= 0:
        raise ValueError("rate_per_s must be positive")
    full = capacity(rate_per_s)
    if bucket is None:
        tokens = full
    else:
        # A clock that stepped back (another host, NTP) refills nothing rather than draining.
        tokens = min(full, bucket.tokens + max(0.0, now - bucket.at) * rate_per_s)
    if tokens >= 1:
        return Bucket(tokens - 1, now), None
    return Bucket(tokens, now), (1 - tokens) / rate_per_s
