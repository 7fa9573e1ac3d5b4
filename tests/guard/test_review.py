"""The review queue: submit, decide once, expire, and wait across store connections."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from redline.errors import InputError, NotFoundError
from redline.guard.review import ReviewClosedError, ReviewQueue
from redline.guard.store.open import open_store
from redline.policy.model import ReviewSettings
from tests.guard.conftest import StoreFactory

TTL = 60.0


class Clock:
    """Settable wall clock, so expiry is tested without waiting an hour."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _submit(queue: ReviewQueue, summary: str = "tool call: delete_backups") -> str:
    item = await queue.submit("alice", "s1", "tool_call", ["self.exfiltration"], summary,
                              {"tool": "delete_backups", "arguments": {"all": True}})
    return item.id


async def test_submit_pending_and_decide_once(make_store: StoreFactory) -> None:
    clock = Clock()
    store = make_store()
    queue = ReviewQueue(store, ReviewSettings(ttl_s=TTL), clock=clock)
    first = await _submit(queue)
    clock.now += 1
    second = await _submit(queue, "reply mentions synthesis route")
    assert first != second and len(first) >= 20
    item = await queue.get(first)
    assert item.status == "pending" and item.expires_at == 1000.0 + TTL
    assert item.payload["arguments"] == {"all": True}
    assert [i.id for i in await queue.pending()] == [first, second]

    decided = await queue.decide(first, approve=True, by="bob", note="known job")
    assert (decided.status, decided.decided_by, decided.note) == ("approved", "bob",
                                                                   "known job")
    with pytest.raises(ReviewClosedError, match="already approved by bob"):
        await queue.decide(first, approve=False, by="carol")
    denied = await queue.decide(second, approve=False, by="carol")
    assert denied.status == "denied" and await queue.pending() == []
    with pytest.raises(NotFoundError, match="no review"):
        await queue.get("not-a-review")
    with pytest.raises(NotFoundError):
        await queue.decide("not-a-review", approve=True, by="bob")
    await store.close()


async def test_items_expire_and_stay_blocked(make_store: StoreFactory) -> None:
    clock = Clock()
    store = make_store()
    queue = ReviewQueue(store, ReviewSettings(ttl_s=TTL), clock=clock)
    review_id = await _submit(queue)
    clock.now += TTL + 1
    assert await queue.pending() == []
    item = await queue.get(review_id)
    assert item.status == "expired" and item.decided_at == clock.now
    with pytest.raises(ReviewClosedError, match="expired"):
        await queue.decide(review_id, approve=True, by="bob")
    assert (await queue.get(review_id)).status == "expired"
    await store.close()


async def test_wait_returns_when_another_connection_decides(make_store: StoreFactory) -> None:
    waiter_store, decider_store = make_store(), make_store()
    waiter = ReviewQueue(waiter_store, ReviewSettings())
    decider = ReviewQueue(decider_store, ReviewSettings())
    review_id = await _submit(waiter)

    async def decide_soon() -> None:
        await asyncio.sleep(0.2)
        await decider.decide(review_id, approve=False, by="bob", note="no")

    task = asyncio.create_task(decide_soon())
    item = await waiter.wait(review_id, timeout_s=60)
    await task
    assert item.status == "denied" and item.note == "no"
    await waiter_store.close()
    await decider_store.close()


async def test_wait_times_out_with_the_item_still_pending(make_store: StoreFactory) -> None:
    store = make_store()
    queue = ReviewQueue(store, ReviewSettings())
    review_id = await _submit(queue)
    assert (await queue.wait(review_id, timeout_s=0.1)).status == "pending"
    assert (await queue.wait(review_id, timeout_s=0)).status == "pending"
    await store.close()


_DECIDE = """
import asyncio, sys
from redline.guard.review import ReviewQueue
from redline.guard.store.open import open_store
from redline.policy.model import ReviewSettings

async def main():
    store = open_store(sys.argv[1])
    await ReviewQueue(store, ReviewSettings()).decide(sys.argv[2], True, "cli-user")
    await store.close()

asyncio.run(main())
"""


async def test_wait_sees_a_decision_made_by_another_process(tmp_path: Path) -> None:
    url = f"sqlite:{tmp_path / 'guard.db'}"
    store = open_store(url)
    queue = ReviewQueue(store, ReviewSettings())
    review_id = await _submit(queue)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _DECIDE, url, review_id,
                                                stderr=subprocess.PIPE)
    item = await queue.wait(review_id, timeout_s=120)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert item.status == "approved" and item.decided_by == "cli-user"
    await store.close()


async def test_bad_input_is_refused() -> None:
    queue = ReviewQueue(open_store("memory:"), ReviewSettings())
    with pytest.raises(InputError, match="principal"):
        await queue.submit("", None, "output", [], "x", {})
    with pytest.raises(InputError, match="summary"):
        await queue.submit("a", None, "output", [], "x" * 5000, {})
    with pytest.raises(InputError, match="payload"):
        await queue.submit("a", None, "output", [], "x", {"big": "x" * (1 << 21)})
    with pytest.raises(InputError, match="payload"):
        await queue.submit("a", None, "output", [], "x", {"bad": float("nan")})
    review_id = await _submit(queue)
    with pytest.raises(InputError, match="by"):
        await queue.decide(review_id, approve=True, by=" ")
