"""Agent registry and kill switch: credentials per agent instance, revocation of a subtree.

An agent registers its copies (replicas, sub-agents) under itself; revoking an agent
revokes every descendant, so a kill switch also stops the copies the agent made. Each
instance gets a bearer credential, returned once; only its sha256 is stored.

Race between ``register`` and ``revoke`` (possibly in two processes): ``register`` re-reads
the parent after storing the child and revokes the child if the parent was revoked
meanwhile; ``revoke`` re-walks the subtree after marking it until it finds nothing new.
Either the child's re-check sees the parent's mark, or the revoker's re-walk sees the child.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

from redline.errors import InputError, NotFoundError, RedlineError
from redline.guard.store.base import AgentRecord, GuardStore

CREDENTIAL_PREFIX = "rla_"
AGENT_ID_PREFIX = "agt_"
#: Random bytes in a credential and in an agent id (``secrets.token_urlsafe``).
CREDENTIAL_BYTES = 32
AGENT_ID_BYTES = 12
MAX_CREDENTIAL_CHARS = 128
MAX_NAME_CHARS = 256
MAX_REASON_CHARS = 2000
#: ``is_revoked`` may answer "not revoked" from a cache this old: a revocation made through
#: another process is seen within this bound (one made through this registry at once).
REVOCATION_CACHE_TTL_S = 1.0
#: Cached answers kept before the cache is emptied (it refills from the store).
MAX_CACHED_AGENTS = 100_000


class CredentialError(RedlineError):
    """A presented agent credential is refused (exit code 2: the caller's input)."""

    exit_code = 2


class UnknownCredentialError(CredentialError):
    """No agent holds this credential (or it is malformed)."""


class RevokedError(CredentialError):
    """The agent, or an ancestor it was registered under, has been revoked."""

    def __init__(self, record: AgentRecord) -> None:
        self.record = record
        super().__init__(
            f"agent {record.id} was revoked at {record.revoked_at or 0:.0f} by "
            f"{record.revoked_by}: {record.reason or 'no reason given'}"
        )


def credential_digest(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


def _bounded(name: str, value: str, limit: int) -> None:
    if not value.strip():
        raise InputError(f"{name} must not be empty", field=name)
    if len(value) > limit:
        raise InputError(f"{name} is longer than {limit} characters", field=name)


class AgentRegistry:
    """Register agents and their copies, authenticate them, revoke subtrees."""

    def __init__(self, store: GuardStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        #: agent id → monotonic time it was last seen not revoked.
        self._live_until: dict[str, float] = {}
        self._revoked: set[str] = set()

    async def _agent(self, agent_id: str) -> AgentRecord:
        record = await self.store.get_agent(agent_id)
        if record is None:
            raise NotFoundError(f"no agent {agent_id!r}")
        return record

    async def register(self, principal: str, parent: str | None) -> tuple[AgentRecord, str]:
        """A new agent (under ``parent`` if given) and its credential, returned only here."""
        _bounded("principal", principal, MAX_NAME_CHARS)
        if parent is not None:
            parent_record = await self._agent(parent)
            if parent_record.revoked_at is not None:
                raise RevokedError(parent_record)
        credential = CREDENTIAL_PREFIX + secrets.token_urlsafe(CREDENTIAL_BYTES)
        record = AgentRecord(
            id=AGENT_ID_PREFIX + secrets.token_urlsafe(AGENT_ID_BYTES),
            parent=parent,
            principal=principal,
            credential_sha256=credential_digest(credential),
            created_at=self.clock(),
        )
        await self.store.add_agent(record)
        if parent is not None:
            parent_record = await self._agent(parent)
            if parent_record.revoked_at is not None:
                await self.store.mark_revoked(
                    [record.id], self.clock(), parent_record.revoked_by or "",
                    f"parent {parent} revoked: {parent_record.reason}",
                )
                raise RevokedError(parent_record)
        return record, credential

    async def authenticate(self, credential: str) -> AgentRecord:
        """The agent holding ``credential``; ``UnknownCredentialError`` or ``RevokedError``."""
        if not credential.startswith(CREDENTIAL_PREFIX) or len(credential) > MAX_CREDENTIAL_CHARS:
            raise UnknownCredentialError(
                f"not an agent credential (expected {CREDENTIAL_PREFIX}…)"
            )
        record = await self.store.agent_by_credential(credential_digest(credential))
        if record is None:
            raise UnknownCredentialError("unknown agent credential")
        if record.revoked_at is not None:
            raise RevokedError(record)
        return record

    async def descendants(self, agent_id: str) -> list[AgentRecord]:
        """Children, their children and so on (breadth first, without ``agent_id``)."""
        await self._agent(agent_id)
        seen, out, frontier = {agent_id}, [], [agent_id]
        while frontier:
            next_frontier = []
            for current in frontier:
                for child in await self.store.children(current):
                    if child.id not in seen:
                        seen.add(child.id)
                        out.append(child)
                        next_frontier.append(child.id)
            frontier = next_frontier
        return out

    async def revoke(self, agent_id: str, by: str, reason: str) -> list[str]:
        """Revoke an agent and all its descendants; the ids of the whole (now revoked)
        subtree, ``agent_id`` first. Idempotent: earlier revocations keep their time,
        author and reason."""
        _bounded("by", by, MAX_NAME_CHARS)
        if len(reason) > MAX_REASON_CHARS:
            raise InputError(f"reason is longer than {MAX_REASON_CHARS} characters",
                             field="reason")
        subtree: list[str] = []
        while True:
            found = [agent_id] + [d.id for d in await self.descendants(agent_id)]
            new = [a for a in found if a not in subtree]
            if not new:
                break
            await self.store.mark_revoked(new, self.clock(), by, reason)
            subtree.extend(new)
        self._revoked.update(subtree)
        for revoked in subtree:
            self._live_until.pop(revoked, None)
        return subtree

    async def is_revoked(self, agent_id: str) -> bool:
        """Whether the agent is revoked; a "no" may be up to ``REVOCATION_CACHE_TTL_S`` old."""
        if agent_id in self._revoked:
            return True
        now = time.monotonic()
        if self._live_until.get(agent_id, 0.0) > now:
            return False
        record = await self._agent(agent_id)
        if record.revoked_at is not None:
            if len(self._revoked) >= MAX_CACHED_AGENTS:
                self._revoked.clear()
            self._revoked.add(agent_id)
            self._live_until.pop(agent_id, None)
            return True
        if len(self._live_until) >= MAX_CACHED_AGENTS:
            self._live_until.clear()
        self._live_until[agent_id] = now + REVOCATION_CACHE_TTL_S
        return False
