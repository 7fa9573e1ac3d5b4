"""Roles, ranked: each role may do what the roles below it may.

- ``member``: push attestations, guard summaries, incidents and reports for its organisation,
  and read its organisation's private data;
- ``reviewer``: also manage its organisation's signing keys and webhooks, and mark a report
  fixed for a vendor it belongs to;
- ``coordinator``: also read every report under embargo and run the disclosure workflow;
- ``admin``: also create organisations, members and API keys.
"""

from __future__ import annotations

from typing import Literal, get_args

Role = Literal["member", "reviewer", "coordinator", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
ROLE_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}


def at_least(role: str, needed: Role) -> bool:
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[needed]
