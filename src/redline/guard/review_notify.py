"""Tell reviewers when the guard holds something: one signed webhook call per held item.

Without it a reviewer has to poll ``redline guard review list`` while a client waits. The
call carries what the review list shows (id, principal, session, surface, tripwires, the
summary and the deadline), never the held payload itself, and is signed like the
observatory's alerts (``redline.webhooks``): a receiver checks ``X-Redline-Signature``.
"""

from __future__ import annotations

from redline.guard.store.base import ReviewItem
from redline.webhooks import Delivery, Dispatcher, RetryPolicy

REVIEW_HELD_EVENT = "review.held"
#: Retries for a reviewer's endpoint: about 15 s of backoff in all, well inside a review's TTL.
RETRY = RetryPolicy(attempts=5, backoff_s=1.0, timeout_s=10.0)
#: Shortest secret accepted: the signature is only as strong as it.
MIN_SECRET_CHARS = 16


class ReviewNotifier:
    def __init__(self, url: str, secret: str, policy: RetryPolicy = RETRY) -> None:
        self.url, self.secret = url, secret
        self.calls = Dispatcher(policy)

    def held(self, item: ReviewItem) -> None:
        """Start the call for a newly held item (the check that held it does not wait)."""
        payload = {
            "event": REVIEW_HELD_EVENT,
            "review": item.model_dump(mode="json", exclude={"payload"}),
            "result_url": f"/v1/reviews/{item.id}/result",
        }
        self.calls.send(Delivery(url=self.url, secret=self.secret, event=REVIEW_HELD_EVENT,
                                 delivery_id=f"review-{item.id}", payload=payload))

    async def aclose(self) -> None:
        """Give calls in flight one attempt's timeout to finish, then stop."""
        await self.calls.close(grace_s=self.calls.policy.timeout_s)
