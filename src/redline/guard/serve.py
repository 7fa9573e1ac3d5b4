"""One guard proxy process: open the guard, listen, serve until SIGTERM or SIGINT, reload
the key file on SIGHUP.

``redline guard serve`` runs it in its own process, or in each of ``--workers N`` processes
(``guard.workers``). Everything a process needs is in a picklable ``ServeSpec``, so a
worker started by the ``spawn`` method rebuilds the same guard from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from redline.errors import InputError
from redline.guard.engine import Guard
from redline.guard.proxy import ProxyConfig

logger = logging.getLogger(__name__)

#: How often a worker publishes its metrics for the others' /metrics.
METRICS_PUBLISH_S = 1.0


@dataclass(frozen=True)
class ServeSpec:
    """What ``guard serve`` was asked for, already validated by the command."""

    policy_ref: str
    keys_path: str
    store_url: str
    audit_path: str
    config: ProxyConfig
    host: str = "127.0.0.1"
    port: int = 8080
    options: dict[str, Any] = field(default_factory=dict)
    require_all: bool = False
    events_path: str | None = None
    events_window: float = 60.0
    #: Deployment id in event summaries (see ``guard_id``).
    guard_id: str | None = None
    #: Where to tell reviewers about each held item (``review_notify``), and its secret.
    review_webhook: str | None = None
    review_webhook_secret: str | None = None
    #: PEM certificate chain and private key: serve HTTPS (clients send their keys over it).
    tls_cert: str | None = None
    tls_key: str | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"


def tls_context(spec: ServeSpec) -> ssl.SSLContext | None:
    """The server's TLS context (TLS 1.2 or newer), or None for plain HTTP; a certificate
    or key that cannot be loaded is an ``InputError`` naming it."""
    if spec.tls_cert is None and spec.tls_key is None:
        return None
    if spec.tls_cert is None or spec.tls_key is None:
        raise InputError("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(spec.tls_cert, spec.tls_key)
    except FileNotFoundError as exc:
        raise InputError("no such file", file=exc.filename or spec.tls_cert) from None
    except (ssl.SSLError, OSError) as exc:
        raise InputError(f"cannot load the TLS certificate and key ({exc})",
                         file=spec.tls_cert) from None
    return context


def worker_audit_path(audit_path: str, worker: int) -> str:
    """Worker ``i`` keeps its own hash chain (one writer per file): ``audit.w{i}.jsonl``."""
    p = Path(audit_path)
    return str(p.with_name(f"{p.stem}.w{worker}{p.suffix or '.jsonl'}"))


def for_worker(spec: ServeSpec, worker: int, port: int, metrics_dir: Path) -> ServeSpec:
    """The spec worker ``worker`` serves: its own audit chain, the port the supervisor
    resolved, and the folder where workers share metrics."""
    return replace(
        spec,
        port=port,
        audit_path=worker_audit_path(spec.audit_path, worker),
        config=replace(spec.config, worker=worker, metrics_dir=metrics_dir),
    )


def guard_id(spec: ServeSpec, policy_id: str, port: int) -> str:
    """The deployment id in event summaries: ``--guard-id`` or ``POLICY@HOST:PORT`` (the
    bound port), and ``/wN`` for worker N, whose summaries are counted separately."""
    base = spec.guard_id or f"{policy_id}@{spec.host}:{port}"
    return base if spec.config.worker is None else f"{base}/w{spec.config.worker}"


async def serve(
    spec: ServeSpec,
    *,
    reuse_port: bool = False,
    on_ready: Callable[[tuple[str, int], Guard], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; SIGHUP reloads the key file. ``on_ready`` gets the
    bound address once listening."""
    from aiohttp import web

    from redline.guard.auth import KeyRing
    from redline.guard.events import EventAggregator, write_periodically
    from redline.guard.proxy import STATE, check_keys, create_guard_app, open_streams
    from redline.guard.review_notify import ReviewNotifier
    from redline.policy.load import load_policy

    policy = load_policy(spec.policy_ref)
    keys = KeyRing.load(spec.keys_path)
    g = await Guard.open(policy, spec.store_url, audit_path=spec.audit_path,
                         options=spec.options, require_all=spec.require_all)
    tasks: list[asyncio.Task[None]] = []
    if spec.events_path:
        g.events = EventAggregator(guard_id(spec, policy.id, spec.port), policy.id,
                                   policy.digest(), window_s=spec.events_window)
        tasks.append(asyncio.create_task(write_periodically(g.events, Path(spec.events_path))))
    notifier = None
    if spec.review_webhook and spec.review_webhook_secret:
        notifier = ReviewNotifier(spec.review_webhook, spec.review_webhook_secret)
        g.reviews.on_submit = notifier.held
    app = create_guard_app(g, keys, spec.config)
    state = app[STATE]
    own_metrics = spec.config.metrics_file()
    if own_metrics is not None:

        async def publish() -> None:
            try:
                while True:
                    state.metrics.set("redline_guard_open_streams", open_streams(state))
                    state.metrics.publish(own_metrics)
                    await asyncio.sleep(METRICS_PUBLISH_S)
            finally:
                state.metrics.publish(own_metrics)

        tasks.append(asyncio.create_task(publish()))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def reload_keys() -> None:
        """Keys added or removed take effect without a restart; a broken file is refused
        and the keys in use stay."""
        try:
            fresh = KeyRing.load(spec.keys_path)
            check_keys(g, fresh)
        except InputError as exc:
            logger.error("key file not reloaded, keeping %d keys: %s", len(state.keys), exc)
            return
        state.keys = fresh
        logger.warning("key file reloaded: %d keys", len(fresh))

    loop.add_signal_handler(signal.SIGHUP, reload_keys)
    try:
        site = web.TCPSite(runner, spec.host, spec.port, reuse_port=reuse_port or None,
                           ssl_context=tls_context(spec))
        await site.start()
        bound = runner.addresses[0] if runner.addresses else (spec.host, spec.port)
        if g.events is not None:
            # Port 0 is known only now; no window has closed yet, so no summary has the old id.
            g.events.guard_id = guard_id(spec, policy.id, int(bound[1]))
        if on_ready is not None:
            on_ready((str(bound[0]), int(bound[1])), g)
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if notifier is not None:
            await notifier.aclose()
        await runner.cleanup()
