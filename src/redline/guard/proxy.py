"""The guard as an OpenAI-compatible proxy (aiohttp).

    redline guard serve --policy idais --upstream http://127.0.0.1:8000/v1 --keys keys.yaml

Clients talk to it exactly as to the upstream (``/v1/chat/completions``, streaming and not,
tools; ``/v1/models``) with a guard API key instead of the upstream's. Allowed upstream
bytes are forwarded untouched; stopped content is replaced by a well-formed completion (or
a final stream chunk) that says which red line stopped it. Review and agent routes live in
``proxy_admin``.

HTTP statuses: 400 unreadable request, 401 missing/wrong/revoked key, 403 role missing,
413 body over the limit, 429 rate limit (with Retry-After), 502/504 upstream failure,
503 state store unavailable (nothing forwarded), 202 held for review (with the review's id
and where to fetch the result).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from redline.errors import InputError, NotFoundError
from redline.guard import wire
from redline.guard.auth import ClientKey, KeyRing, Role
from redline.guard.decision import Decision, most_severe, redact
from redline.guard.engine import Guard, Scope
from redline.guard.metrics import Metrics
from redline.guard.revocation import RevokedError, UnknownCredentialError
from redline.guard.store.base import StoreUnavailableError
from redline.guard.streaming import DONE, HoldBack, LineSplitter, Reply, parse_event
from redline.policy.model import Action
from redline.records.chat import ChatMessage

logger = logging.getLogger(__name__)

#: Largest request body accepted (bytes); larger gets 413.
MAX_BODY_BYTES = 1 << 20
#: Longest a client may ask to wait for a review decision.
MAX_REVIEW_WAIT_S = 300.0
#: Header a client sets to wait (seconds) for a review decision before getting 202.
REVIEW_WAIT_HEADER = "X-Redline-Review-Wait"
#: Header naming the conversation (risk ledger key); defaults to one per principal.
SESSION_HEADER = "X-Redline-Session"
DECISION_HEADER = "X-Redline-Decision"
AGENT_CREDENTIAL_PREFIX = "rla_"
#: How often an idle stream wakes to notice that its agent was revoked.
IDLE_POLL_S = 0.25
#: Retry-After (seconds) on 503 while the state store is unavailable.
STORE_RETRY_AFTER_S = 1
STORE_UNAVAILABLE = "the guard's state store is unavailable"
_SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ProxyConfig:
    upstream: str
    upstream_api_key: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    upstream_connect_timeout_s: float = 10.0
    upstream_read_timeout_s: float = 300.0
    #: Serve /metrics without a key (for a scraper on a private network).
    public_metrics: bool = False
    #: This process's index among ``guard serve --workers N`` (None: the only process).
    worker: int | None = None
    #: Folder where the workers publish their metrics (``w0.json``, …) for /metrics to add up.
    metrics_dir: Path | None = None

    def metrics_file(self) -> Path | None:
        if self.metrics_dir is None or self.worker is None:
            return None
        return self.metrics_dir / f"w{self.worker}.json"


@dataclass(frozen=True)
class Caller:
    principal: str
    roles: frozenset[Role]
    context: str | None = None
    agent: str | None = None
    rate_per_s: float | None = None


@dataclass
class ProxyState:
    guard: Guard
    keys: KeyRing
    config: ProxyConfig
    metrics: Metrics = field(default_factory=Metrics)
    session: aiohttp.ClientSession | None = None
    #: Cancellation events of open streams, per agent id, so a revocation ends them now.
    streams: dict[str, set[asyncio.Event]] = field(default_factory=lambda: defaultdict(set))


STATE = web.AppKey("redline_guard_state", ProxyState)
CALLER = web.RequestKey("redline_caller", object)


class HttpError(Exception):
    """Ends a request with an OpenAI-style error response (caught by the middleware)."""

    def __init__(
        self, status: int, message: str, code: str, type_: str = "invalid_request_error"
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.type_ = status, message, code, type_


def json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(body), content_type="application/json", headers=headers
    )


def error_response(
    status: int,
    message: str,
    code: str,
    type_: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> web.Response:
    return json_response(status, wire.error_body(message, type_, code), headers)


def caller_of(request: web.Request) -> Caller:
    caller = request.get(CALLER)
    assert isinstance(caller, Caller)
    return caller


def require(request: web.Request, *roles: Role) -> Caller:
    caller = caller_of(request)
    if not caller.roles & set(roles):
        raise HttpError(
            403,
            f"this key lacks the role for this route (needs one of: {', '.join(roles)})",
            "forbidden",
            "permission_error",
        )
    return caller


async def _authenticate(state: ProxyState, request: web.Request) -> Caller | web.Response:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        return error_response(
            401,
            "missing API key: send Authorization: Bearer KEY",
            "missing_api_key",
            "authentication_error",
        )
    token = header[7:].strip()
    if token.startswith(AGENT_CREDENTIAL_PREFIX):
        try:
            record = await state.guard.agents.authenticate(token)
        except RevokedError:
            return error_response(
                401,
                "this agent credential has been revoked",
                "revoked_credential",
                "authentication_error",
            )
        except UnknownCredentialError:
            return error_response(
                401, "unknown agent credential", "invalid_api_key", "authentication_error"
            )
        owner = state.keys.for_principal(record.principal)
        return Caller(
            principal=record.principal,
            roles=frozenset({"client"}),
            context=owner.context if owner else None,
            agent=record.id,
            rate_per_s=owner.rate_per_s if owner else None,
        )
    key: ClientKey | None = state.keys.lookup(token)
    if key is None:
        return error_response(401, "invalid API key", "invalid_api_key", "authentication_error")
    return Caller(
        principal=key.principal,
        roles=frozenset(key.roles),
        context=key.context,
        rate_per_s=key.rate_per_s,
    )


async def _rate_limited(state: ProxyState, caller: Caller) -> float | None:
    """Seconds to wait if the caller is over its rate, else None. The bucket is in the
    store, so workers and replicas sharing it enforce one rate per principal."""
    if caller.rate_per_s is None:
        return None
    return await state.guard.store.take_token(
        f"principal:{caller.principal}", caller.rate_per_s, time.time()
    )


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    if request.path == "/healthz" or (request.path == "/metrics" and state.config.public_metrics):
        return await handler(request)
    result = await _authenticate(state, request)
    if isinstance(result, web.Response):
        state.metrics.inc("redline_guard_requests_total", route=request.path, status="401")
        return result
    wait = await _rate_limited(state, result)
    if wait is not None:
        state.metrics.inc("redline_guard_requests_total", route=request.path, status="429")
        return error_response(
            429,
            f"rate limit exceeded for {result.principal}",
            "rate_limit_exceeded",
            "rate_limit_error",
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    request[CALLER] = result
    return await handler(request)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[STATE].config.max_body_bytes
        return error_response(
            413, f"request body over the limit of {limit} bytes", "request_too_large"
        )
    except wire.WireError as exc:
        return error_response(400, str(exc), "invalid_request")
    except HttpError as exc:
        return error_response(exc.status, exc.message, exc.code, exc.type_)
    except StoreUnavailableError as exc:
        # Fail closed: without its ledgers and reviews the guard cannot check, so nothing is
        # forwarded. The store's address stays in the log, not in the client's answer.
        logger.error("guard store unavailable: %s", exc)
        request.app[STATE].metrics.inc("redline_guard_store_errors_total")
        return error_response(
            503,
            STORE_UNAVAILABLE + "; the request was not forwarded",
            "store_unavailable",
            "service_unavailable",
            headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
        )


def scope_for(request: web.Request) -> Scope:
    caller = caller_of(request)
    session = request.headers.get(SESSION_HEADER)
    if session is not None and not _SESSION_ID.match(session):
        raise wire.WireError(f"{SESSION_HEADER} must match {_SESSION_ID.pattern}")
    return Scope(
        principal=caller.principal, session=session, agent=caller.agent, context=caller.context
    )


async def _read_json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise wire.WireError(f"request body is not valid JSON: {exc}") from None


def _upstream_headers(state: ProxyState) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if state.config.upstream_api_key:
        headers["Authorization"] = f"Bearer {state.config.upstream_api_key}"
    return headers


class UpstreamError(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


async def _post_upstream(state: ProxyState, body: dict[str, Any]) -> aiohttp.ClientResponse:
    assert state.session is not None
    url = state.config.upstream.rstrip("/") + "/chat/completions"
    try:
        return await state.session.post(
            url, data=json.dumps(body).encode(), headers=_upstream_headers(state)
        )
    except aiohttp.ClientConnectionError as exc:
        state.metrics.inc("redline_guard_upstream_errors_total", kind="connect")
        raise UpstreamError(
            502, f"upstream {state.config.upstream} unreachable: {exc}", "upstream_unreachable"
        ) from None
    except TimeoutError:
        state.metrics.inc("redline_guard_upstream_errors_total", kind="timeout")
        raise UpstreamError(
            504, f"upstream {state.config.upstream} timed out", "upstream_timeout"
        ) from None


def user_turns(messages: list[ChatMessage]) -> list[str]:
    """The user turns of a conversation: the context detectors read."""
    return [m.content for m in messages if m.role == "user"]


def _redact_input(body: dict[str, Any], decision: Decision) -> dict[str, Any]:
    spans = decision.spans()
    for m in reversed(body["messages"]):
        if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
            m["content"] = redact(m["content"], spans)
            break
    return body


def stopped_response(decision: Decision, body: dict[str, Any], stream: bool) -> web.Response:
    model = str(body.get("model", ""))
    headers: dict[str, str] = {DECISION_HEADER: decision.action}
    if stream:
        chunk = wire.stop_chunk(decision, model, "chatcmpl-guard")
        return web.Response(
            body=wire.sse(chunk) + wire.sse(DONE), headers=headers, content_type="text/event-stream"
        )
    return json_response(200, wire.stopped_completion(decision, model), headers)


def _pending(decision: Decision) -> web.Response:
    return json_response(
        202,
        {
            "object": "redline.review",
            "id": decision.review_id,
            "status": "pending",
            "result_url": f"/v1/reviews/{decision.review_id}/result",
            "redline": wire.redline_field(decision),
        },
        {DECISION_HEADER: "review"},
    )


def _review_wait(request: web.Request, state: ProxyState) -> float:
    raw = request.headers.get(REVIEW_WAIT_HEADER)
    if raw is None:
        return state.guard.settings.review.wait_s
    try:
        wait = float(raw)
    except ValueError:
        raise wire.WireError(f"{REVIEW_WAIT_HEADER} must be a number of seconds") from None
    return max(0.0, min(wait, MAX_REVIEW_WAIT_S))


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    require(request, "client")
    t0 = time.perf_counter()
    body = await _read_json(request)
    messages = wire.request_messages(body)
    scope = scope_for(request)
    stream = bool(body.get("stream"))
    decision = await state.guard.check_input(
        messages, scope, held={"kind": "request", "body": body}
    )
    _count(state, "input", decision)
    if decision.action == "review":
        return await _await_review(state, decision, scope, _review_wait(request, state), stream)
    if decision.stops:
        state.metrics.observe_latency(time.perf_counter() - t0)
        return stopped_response(decision, body, stream)
    if decision.action == "redact":
        body = _redact_input(body, decision)
    checks_s = time.perf_counter() - t0
    try:
        if stream:
            return await _stream(request, state, body, scope, messages, checks_s)
        return await forward_and_check(
            state,
            body,
            scope,
            user_turns(messages),
            checks_s,
            wait_s=_review_wait(request, state),
            prior=decision.action,
        )
    except UpstreamError as exc:
        return error_response(exc.status, exc.message, exc.code, "upstream_error")


async def forward_and_check(
    state: ProxyState,
    body: dict[str, Any],
    scope: Scope,
    users: list[str],
    checks_s: float,
    *,
    wait_s: float = 0.0,
    waive: frozenset[str] = frozenset(),
    prior: Action = "allow",
) -> web.StreamResponse:
    """Forward a request, check the reply, and answer with it (or what replaces it).
    ``prior`` is the input's (passing) decision, reported with the output's."""
    resp = await _post_upstream(state, body)
    async with resp:
        raw = await resp.read()
        if resp.status != 200:
            state.metrics.inc("redline_guard_upstream_errors_total", kind=str(resp.status))
            return web.Response(
                status=resp.status, body=raw, content_type=resp.content_type or "application/json"
            )
    t1 = time.perf_counter()
    try:
        reply = json.loads(raw)
        message = wire.completion_message(reply)
        text = message.get("content") if isinstance(message.get("content"), str) else ""
        calls = wire.completion_tool_calls(message)
    except (json.JSONDecodeError, wire.WireError) as exc:
        state.metrics.inc("redline_guard_upstream_errors_total", kind="malformed")
        return error_response(
            502, f"upstream reply unreadable: {exc}", "upstream_malformed", "upstream_error"
        )
    decision = await state.guard.check_output(
        text or "",
        scope,
        tool_calls=calls,
        context=users,
        held={"kind": "completion", "body": reply},
        waive=waive,
    )
    _count(state, "output", decision)
    state.metrics.observe_latency(checks_s + time.perf_counter() - t1)
    if decision.action == "review":
        return await _await_review(state, decision, scope, wait_s, stream=False)
    if decision.stops:
        return stopped_response(decision, body, stream=False)
    shown = most_severe([prior, decision.action])
    if decision.action == "redact":
        message["content"] = redact(text or "", decision.spans())
        return json_response(200, reply, {DECISION_HEADER: shown})
    return web.Response(body=raw, content_type="application/json", headers={DECISION_HEADER: shown})


async def _await_review(
    state: ProxyState, decision: Decision, scope: Scope, wait_s: float, stream: bool
) -> web.StreamResponse:
    """Something held for review: wait for the decision as long as the client asked, then
    release it (or the blocked reply); still pending at the deadline → 202."""
    assert decision.review_id is not None
    if wait_s <= 0:
        return _pending(decision)
    item = await state.guard.reviews.wait(decision.review_id, wait_s)
    if item.status == "pending":
        return _pending(decision)
    from redline.guard.proxy_admin import release

    return await release(state, item, scope, stream=stream)


async def _stream(
    request: web.Request,
    state: ProxyState,
    body: dict[str, Any],
    scope: Scope,
    messages: list[Any],
    checks_s: float,
) -> web.StreamResponse:
    settings = state.guard.settings.streaming
    users = user_turns(messages)
    resp = await _post_upstream(state, body)
    if resp.status != 200:
        async with resp:
            raw = await resp.read()
        state.metrics.inc("redline_guard_upstream_errors_total", kind=str(resp.status))
        return web.Response(
            status=resp.status, body=raw, content_type=resp.content_type or "application/json"
        )
    model = str(body.get("model", ""))
    cancelled = asyncio.Event()
    if scope.agent is not None:
        state.streams[scope.agent].add(cancelled)
    added = checks_s

    async def check(reply: Reply, final: bool) -> Decision:
        nonlocal added
        t = time.perf_counter()
        held = (
            {"kind": "completion", "body": reply.completion()}
            if final
            else {"kind": "request", "body": {**body, "stream": False}}
        )
        decision = await state.guard.check_output(
            reply.text,
            scope,
            tool_calls=reply.calls() if final else (),
            context=users,
            held=held,
            final=final,
        )
        added += time.perf_counter() - t
        return decision

    def rewrite(text: str) -> bytes:
        return wire.sse(wire.text_chunk(text, model, hold.reply.chunk_id))

    def stop(decision: Decision) -> bytes:
        _count(state, "output", decision)
        return wire.sse(wire.stop_chunk(decision, model, hold.reply.chunk_id)) + wire.sse(DONE)

    hold = HoldBack(settings, check, rewrite, stop)
    out = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await out.prepare(request)
    try:
        if await _relay(hold, resp.content, out, cancelled, stop) is None:
            _count(state, "output", Decision(action="allow"))
    except StoreUnavailableError as exc:
        # Headers are sent: end the stream with an error event (what OpenAI clients raise
        # on); the held window never reaches the client.
        logger.error("guard store unavailable mid-stream: %s", exc)
        state.metrics.inc("redline_guard_store_errors_total")
        await out.write(wire.sse(wire.error_body(STORE_UNAVAILABLE, "service_unavailable",
                                                 "store_unavailable")))
    finally:
        resp.release()
        if scope.agent is not None:
            state.streams[scope.agent].discard(cancelled)
        state.metrics.observe_latency(added)
    await out.write_eof()
    return out


async def _relay(
    hold: HoldBack,
    upstream: aiohttp.StreamReader,
    out: web.StreamResponse,
    cancelled: asyncio.Event,
    stop: Callable[[Decision], bytes],
) -> Decision | None:
    """Read upstream chunks, hold them back, and write what each checked window releases.

    One read per chunk (not per line) and a timeout only as long as the pending window may
    wait, so the hold-back adds little CPU per token; an idle wait still wakes every
    ``IDLE_POLL_S`` to notice a revocation. Returns the decision that stopped the stream,
    if one did.
    """
    loop = asyncio.get_running_loop()
    lines = LineSplitter()
    while True:
        if cancelled.is_set():
            revoked = Decision(action="revoke_agent", notes={"reason": "agent revoked"})
            await out.write(stop(revoked))
            return revoked
        deadline = hold.deadline()
        wait = (deadline - time.monotonic()) if deadline is not None else IDLE_POLL_S
        chunk: bytes | None = None
        if wait > 0:
            try:
                async with asyncio.timeout_at(loop.time() + wait):
                    chunk = await upstream.readany()
            except TimeoutError:
                chunk = None
        if chunk is None:
            if deadline is None or time.monotonic() < deadline:
                continue
            outcome = await hold.flush(final=False)
        else:
            ended = not chunk
            full = False
            for line in lines.tail() if ended else lines.feed(chunk):
                event = parse_event(line, hold.reply)
                if event is not None:
                    full = hold.add(event) or full
                    # After [DONE] only the final check is left: skip the window's.
                    ended = ended or event.done
            if not ended and not full:
                continue
            outcome = await hold.flush(final=ended)
            if ended:
                await out.write(outcome.data)
                return outcome.stopped
        await out.write(outcome.data)
        if outcome.stopped is not None:
            return outcome.stopped


def _count(state: ProxyState, surface: str, decision: Decision) -> None:
    state.metrics.inc("redline_guard_checks_total", surface=surface)
    if decision.action != "allow":
        state.metrics.inc("redline_guard_decisions_total", action=decision.action)


async def models(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    require(request, "client")
    assert state.session is not None
    try:
        async with state.session.get(
            state.config.upstream.rstrip("/") + "/models", headers=_upstream_headers(state)
        ) as resp:
            raw = await resp.read()
            return web.Response(
                status=resp.status, body=raw, content_type=resp.content_type or "application/json"
            )
    except aiohttp.ClientConnectionError as exc:
        return error_response(
            502, f"upstream unreachable: {exc}", "upstream_unreachable", "upstream_error"
        )


async def healthz(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    guard = state.guard
    body: dict[str, Any] = {
        "status": "ok",
        "policy": guard.policy.id,
        "policy_digest": guard.policy.digest(),
        "armed": guard.status.armed,
        "inactive": guard.status.inactive,
    }
    if state.config.worker is not None:
        body["worker"] = state.config.worker
    return json_response(200, body)


def open_streams(state: ProxyState) -> int:
    return sum(len(s) for s in state.streams.values())


async def metrics(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if not state.config.public_metrics:
        require(request, "admin", "reviewer")
    try:
        pending: int | None = len(await state.guard.reviews.pending())
    except StoreUnavailableError as exc:
        logger.error("guard store unavailable: %s", exc)
        pending = None
    state.metrics.set("redline_guard_open_streams", open_streams(state))
    shown = state.metrics
    own, folder = state.config.metrics_file(), state.config.metrics_dir
    if own is not None and folder is not None:
        shown = state.metrics.merged(sorted(p for p in folder.glob("w*.json") if p != own))
    # The queue is in the shared store: the same number in every worker, set once.
    if pending is not None:
        shown.set("redline_guard_reviews_pending", pending)
    return web.Response(text=shown.render(), content_type="text/plain")


def check_keys(guard: Guard, keys: KeyRing) -> None:
    """Every key's context exists in the guard's policy (else ``InputError`` naming it)."""
    for key in keys.entries():
        if key.context is not None:
            try:
                guard.settings.context(key.context)
            except NotFoundError as exc:
                raise InputError(f"key of {key.principal!r}: {exc}") from None


def create_guard_app(guard: Guard, keys: KeyRing, config: ProxyConfig) -> web.Application:
    from redline.guard import proxy_admin

    check_keys(guard, keys)
    app = web.Application(
        client_max_size=config.max_body_bytes, middlewares=[error_middleware, auth_middleware]
    )
    state = ProxyState(guard=guard, keys=keys, config=config)
    app[STATE] = state

    async def on_startup(_app: web.Application) -> None:
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=config.upstream_connect_timeout_s,
            sock_read=config.upstream_read_timeout_s,
        )
        state.session = aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        )

    async def on_cleanup(_app: web.Application) -> None:
        if state.session is not None:
            await state.session.close()
        await guard.aclose()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    proxy_admin.add_routes(app)
    return app
