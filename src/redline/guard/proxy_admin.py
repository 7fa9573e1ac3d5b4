"""Review and agent routes of the guard proxy.

Reviews: reviewers list held items and approve or deny them; the client that sent an item
polls its status and fetches the result (the held completion once approved).
Agents: an agent registers each instance it starts under itself and gets a credential for
it; revoking an instance revokes its descendants, refuses their next call and ends their
open streams on this replica (other replicas stop them at their next stream window).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from redline.errors import NotFoundError, RedlineError
from redline.guard import wire
from redline.guard.decision import Decision, Trip
from redline.guard.engine import Scope
from redline.guard.proxy import (
    STATE,
    HttpError,
    ProxyState,
    UpstreamError,
    caller_of,
    error_response,
    forward_and_check,
    json_response,
    require,
    scope_for,
    stopped_response,
    user_turns,
)
from redline.guard.store.base import ReviewItem

#: Fields of a review its submitter may see (not the held content, not the reviewer's notes).
OWNER_FIELDS = {"id", "status", "created_at", "expires_at", "tripwires", "decided_at"}


class _Decide(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=2000)


class _Register(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parent: str | None = Field(default=None, max_length=200)


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    raw = await request.read()
    try:
        return model.model_validate(json.loads(raw) if raw.strip() else {})
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise wire.WireError(f"request body is not valid JSON: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "body"
        raise wire.WireError(f"{where}: {first['msg']}") from None


def _denied(state: ProxyState, item: ReviewItem) -> Decision:
    by_id = {tw.id: (rl, tw) for rl, tw in state.guard.policy.tripwires()}
    trips = tuple(
        Trip(
            red_line=by_id[t][0].id if t in by_id else t,
            tripwire=t,
            category=by_id[t][0].category if t in by_id else "",
            action="block",
            score=1.0,
            threshold=1.0,
        )
        for t in item.tripwires
    )
    return Decision(action="block", trips=trips, notes={"review": item.id, "status": item.status})


async def release(
    state: ProxyState, item: ReviewItem, scope: Scope, *, stream: bool
) -> web.StreamResponse:
    """What a decided review gives the client: the held content, or a blocked reply."""
    payload = item.payload
    held = payload.get("body")
    body: dict[str, Any] = held if isinstance(held, dict) else {}
    if item.status == "expired":
        return error_response(410, f"review {item.id} expired without a decision", "review_expired")
    if item.status != "approved":
        return stopped_response(_denied(state, item), body, stream=stream)
    if payload.get("kind") == "completion":
        return json_response(200, body, {"X-Redline-Decision": "approved"})
    request_body = {**body, "stream": False}
    users = user_turns(wire.request_messages(request_body))
    try:
        return await forward_and_check(
            state, request_body, scope, users, 0.0, waive=frozenset(item.tripwires)
        )
    except UpstreamError as exc:
        return error_response(exc.status, exc.message, exc.code, "upstream_error")


async def _item(request: web.Request) -> ReviewItem:
    state = request.app[STATE]
    try:
        return await state.guard.reviews.get(request.match_info["review_id"])
    except NotFoundError:
        raise HttpError(404, "no such review", "not_found") from None


def _owner_or_reviewer(request: web.Request, item: ReviewItem) -> bool:
    """True for reviewers (full view); False for the submitter; 404 for anyone else."""
    caller = caller_of(request)
    if caller.roles & {"reviewer", "admin"}:
        return True
    if caller.principal != item.principal:
        raise HttpError(404, "no such review", "not_found")
    return False


async def list_reviews(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    require(request, "reviewer", "admin")
    status = request.query.get("status")
    if status not in (None, "pending", "approved", "denied", "expired"):
        raise wire.WireError("status must be pending, approved, denied or expired")
    if status == "pending":
        items = await state.guard.reviews.pending()
    else:
        items = await state.guard.store.list_reviews(status)  # type: ignore[arg-type]
    return json_response(
        200, {"object": "list", "data": [i.model_dump(mode="json") for i in items]}
    )


async def get_review(request: web.Request) -> web.StreamResponse:
    item = await _item(request)
    full = _owner_or_reviewer(request, item)
    data = item.model_dump(mode="json")
    shown = data if full else {k: v for k, v in data.items() if k in OWNER_FIELDS}
    return json_response(200, shown)


async def decide_review(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    caller = require(request, "reviewer", "admin")
    body = await _body(request, _Decide)
    approve = request.match_info["verdict"] == "approve"
    item = await _item(request)
    try:
        decided = await state.guard.reviews.decide(
            item.id, approve, by=caller.principal, note=body.note
        )
    except RedlineError as exc:
        return error_response(409, str(exc), "review_not_pending")
    state.guard.audit_event(
        "review", {"review": decided.id, "status": decided.status, "by": caller.principal}
    )
    return json_response(200, decided.model_dump(mode="json"))


async def review_result(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    item = await _item(request)
    _owner_or_reviewer(request, item)
    if item.status == "pending":
        return json_response(202, {"object": "redline.review", "id": item.id, "status": "pending"})
    return await release(state, item, scope_for(request), stream=False)


async def register_agent(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    caller = require(request, "client")
    body = await _body(request, _Register)
    parent = caller.agent or body.parent
    if caller.agent is None and parent is not None:
        record = await state.guard.store.get_agent(parent)
        if record is None or record.principal != caller.principal:
            return error_response(404, f"no agent {parent!r} of yours", "not_found")
    try:
        record, credential = await state.guard.agents.register(caller.principal, parent)
    except RedlineError as exc:
        return error_response(409, str(exc), "parent_revoked")
    state.guard.audit_event(
        "agent", {"registered": record.id, "parent": parent, "principal": caller.principal}
    )
    return json_response(201, {"id": record.id, "parent": record.parent, "credential": credential})


async def revoke_agent(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    caller = caller_of(request)
    agent_id = request.match_info["agent_id"]
    record = await state.guard.store.get_agent(agent_id)
    admin = "admin" in caller.roles
    if record is None or not (
        admin or (caller.agent is None and record.principal == caller.principal)
    ):
        return error_response(404, f"no agent {agent_id!r} you may revoke", "not_found")
    body = await request.read()
    reason = ""
    if body.strip():
        try:
            reason = str(json.loads(body).get("reason", ""))[:500]
        except (json.JSONDecodeError, AttributeError):
            raise wire.WireError('body must be a JSON object like {"reason": "…"}') from None
    revoked = await state.guard.agents.revoke(agent_id, by=caller.principal, reason=reason)
    for rid in revoked:
        for event in state.streams.get(rid, set()):
            event.set()
    state.guard.audit_event(
        "revocation",
        {"agent": agent_id, "revoked": revoked, "by": caller.principal, "reason": reason},
    )
    return json_response(200, {"revoked": revoked})


async def get_agent(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    caller = caller_of(request)
    record = await state.guard.store.get_agent(request.match_info["agent_id"])
    if record is None or not ("admin" in caller.roles or record.principal == caller.principal):
        return error_response(404, "no such agent", "not_found")
    return json_response(200, record.model_dump(mode="json", exclude={"credential_sha256"}))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/reviews", list_reviews)
    app.router.add_get("/v1/reviews/{review_id}", get_review)
    app.router.add_post("/v1/reviews/{review_id}/{verdict:approve|deny}", decide_review)
    app.router.add_get("/v1/reviews/{review_id}/result", review_result)
    app.router.add_post("/v1/agents", register_agent)
    app.router.add_get("/v1/agents/{agent_id}", get_agent)
    app.router.add_post("/v1/agents/{agent_id}/revoke", revoke_agent)
