"""Agent registry: credentials, subtree revocation, refusal of revoked credentials."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from redline.errors import InputError, NotFoundError, RedlineError
from redline.guard import revocation
from redline.guard.revocation import AgentRegistry, RevokedError, UnknownCredentialError
from tests.guard.conftest import StoreFactory


async def test_credentials_authenticate_and_only_their_digest_is_stored(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    registry = AgentRegistry(store)
    record, credential = await registry.register("ops", parent=None)
    assert credential.startswith("rla_") and len(credential) > 40
    assert record.credential_sha256 == hashlib.sha256(credential.encode()).hexdigest()
    stored = await store.get_agent(record.id)
    assert stored is not None and credential not in stored.model_dump_json()
    assert (await registry.authenticate(credential)).id == record.id
    with pytest.raises(UnknownCredentialError, match="unknown"):
        await registry.authenticate("rla_" + "x" * 43)
    with pytest.raises(UnknownCredentialError, match="not an agent credential"):
        await registry.authenticate("Bearer something")
    assert issubclass(UnknownCredentialError, RedlineError)
    await store.close()


async def test_revoking_a_parent_revokes_its_replica_and_the_replicas_children(
    make_store: StoreFactory,
) -> None:
    store, other = make_store(), make_store()
    registry = AgentRegistry(store)
    root, root_cred = await registry.register("ops", None)
    replica, replica_cred = await registry.register("ops", root.id)
    grandchild, grandchild_cred = await registry.register("ops", replica.id)
    bystander, bystander_cred = await registry.register("ops", None)
    assert [d.id for d in await registry.descendants(root.id)] == [replica.id, grandchild.id]

    # Revoked through another connection (another proxy replica or the CLI).
    revoked = await AgentRegistry(other).revoke(root.id, by="alice", reason="exfiltration")
    assert revoked == [root.id, replica.id, grandchild.id]
    for credential in (root_cred, replica_cred, grandchild_cred):
        with pytest.raises(RevokedError, match="alice: exfiltration"):
            await registry.authenticate(credential)
    assert (await registry.authenticate(bystander_cred)).id == bystander.id
    assert await registry.is_revoked(grandchild.id)
    assert not await registry.is_revoked(bystander.id)

    # Idempotent: a second revocation keeps the first one's author and reason.
    again = await registry.revoke(replica.id, by="bob", reason="later")
    assert again == [replica.id, grandchild.id]
    record = await store.get_agent(replica.id)
    assert record is not None and (record.revoked_by, record.reason) == ("alice",
                                                                         "exfiltration")
    with pytest.raises(RevokedError):
        await registry.register("ops", replica.id)
    with pytest.raises(NotFoundError):
        await registry.register("ops", "agt_unknown")
    with pytest.raises(NotFoundError):
        await registry.revoke("agt_unknown", by="alice", reason="x")
    await store.close()
    await other.close()


async def test_children_registered_while_the_parent_is_revoked_end_up_revoked(
    make_store: StoreFactory,
) -> None:
    store, other = make_store(), make_store()
    registry, revoker = AgentRegistry(store), AgentRegistry(other)
    parent, _ = await registry.register("ops", None)

    async def spawn() -> str | None:
        try:
            child, _ = await registry.register("ops", parent.id)
        except RevokedError:
            return None
        return child.id

    results = await asyncio.gather(*(spawn() for _ in range(15)),
                                   revoker.revoke(parent.id, "alice", "kill switch"),
                                   *(spawn() for _ in range(15)))
    children = await store.children(parent.id)
    # Whichever registrations won the race, every child that exists is revoked.
    assert all(c.revoked_at is not None for c in children)
    assert {r for r in results if isinstance(r, str)} <= {c.id for c in children}
    await store.close()
    await other.close()


async def test_is_revoked_sees_another_registrys_revocation_after_the_cache_bound(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(revocation, "REVOCATION_CACHE_TTL_S", 0.05)
    store, other = make_store(), make_store()
    proxy = AgentRegistry(store)
    agent, _ = await proxy.register("ops", None)
    assert not await proxy.is_revoked(agent.id)
    await AgentRegistry(other).revoke(agent.id, "alice", "tripwire")
    await asyncio.sleep(0.1)
    assert await proxy.is_revoked(agent.id)
    with pytest.raises(NotFoundError):
        await proxy.is_revoked("agt_nobody")
    await store.close()
    await other.close()


async def test_bad_input_is_refused(make_store: StoreFactory) -> None:
    registry = AgentRegistry(make_store())
    with pytest.raises(InputError, match="principal"):
        await registry.register("", None)
    agent, _ = await registry.register("ops", None)
    with pytest.raises(InputError, match="reason"):
        await registry.revoke(agent.id, "alice", "x" * 5000)
    with pytest.raises(UnknownCredentialError):
        await registry.authenticate("rla_" + "x" * 500)
