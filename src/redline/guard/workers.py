"""``guard serve --workers N``: N proxy processes on one port, so a burst of requests is
checked on every core instead of queueing behind one event loop.

The supervisor (the command's own process) validates and warms once: policy, keys, the store
answering, every detector built, so the MiniLM table and semantic model are cached on disk
before the workers load them instead of building them N times at once. It then reserves
the port, starts the workers with the ``spawn`` method (never a fork of a process that may
hold model threads) and watches them:

- each worker listens on the same port with ``SO_REUSEPORT``; the kernel spreads
  connections over them;
- if a worker exits while the others serve, they are stopped and the command exits 6
  naming it, so a process manager restarts the whole guard instead of running it short;
- SIGTERM or SIGINT stops every worker (each finishes its open requests) and exits 0;
  SIGHUP makes every worker reload the key file.

Shared through the store, so ``memory:`` is refused: ledgers, reviews, agents and
revocations, rate-limit buckets. Per worker: the audit chain (``audit.wI.jsonl``, one
writer per file; verify them together), event summaries (guard id ``ID/wI``), and metrics,
which any worker's ``/metrics`` adds up from the snapshots all workers publish
(``serve.METRICS_PUBLISH_S``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from redline.errors import InputError, RedlineError
from redline.guard.engine import Guard
from redline.guard.serve import ServeSpec, for_worker, serve

#: More processes than this on one host is a configuration error, not a deployment.
MAX_WORKERS = 64
#: Seconds a worker may take to open the guard and listen (loading models on a busy host).
START_TIMEOUT_S = 300.0
#: Seconds a stopping worker gets to finish its open requests before it is killed.
STOP_GRACE_S = 20.0
#: How often a worker checks that its supervisor is still there.
ORPHAN_POLL_S = 1.0
#: Exit code of a guard whose worker died (documented with the others in ``redline.errors``).
WORKER_EXIT_CODE = 6


class WorkerExitedError(RedlineError):
    """A worker process failed to start or exited while serving; the rest were stopped."""

    exit_code = WORKER_EXIT_CODE


class WorkerStartError(RedlineError):
    """A worker refused its configuration; carries the worker's own exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def check_workers(spec: ServeSpec, workers: int) -> None:
    if not 1 <= workers <= MAX_WORKERS:
        raise InputError(f"--workers must be between 1 and {MAX_WORKERS}", field="--workers")
    if workers > 1 and spec.store_url.startswith("memory:"):
        raise InputError(
            "--workers above 1 needs a store the workers share (sqlite:PATH or redis://…); "
            "memory: would give each worker its own ledgers, reviews and revocations",
            field="--store",
        )


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind, without listening, with ``SO_REUSEPORT``: fails now if the port is taken, and
    turns port 0 into the one port every worker then binds."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


async def warm(spec: ServeSpec) -> Guard:
    """Open the guard once as the workers will (without an audit log), so that bad options
    fail before any worker starts and the detectors' caches are on disk; closed again."""
    from redline.guard.auth import KeyRing
    from redline.guard.proxy import create_guard_app
    from redline.policy.load import load_policy

    g = await Guard.open(load_policy(spec.policy_ref), spec.store_url, options=spec.options,
                         require_all=spec.require_all)
    try:
        create_guard_app(g, KeyRing.load(spec.keys_path), spec.config)
    finally:
        await g.aclose()
    return g


def _worker_main(spec: ServeSpec, conn: Connection, supervisor: int) -> None:
    """Body of a worker process: serve, telling the supervisor when listening or why not."""

    def watch_supervisor() -> None:
        while os.getppid() == supervisor:
            time.sleep(ORPHAN_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_supervisor, daemon=True).start()

    def ready(address: tuple[str, int], _guard: Guard) -> None:
        conn.send(("ready", address))

    try:
        asyncio.run(serve(spec, reuse_port=True, on_ready=ready))
    except RedlineError as exc:
        conn.send(("error", exc.exit_code, str(exc)))
        sys.exit(exc.exit_code)
    except OSError as exc:
        conn.send(("error", 2, f"cannot listen on {spec.host}:{spec.port}: "
                               f"{exc.strerror or exc}"))
        sys.exit(2)


class _Signals:
    """The supervisor's signals: SIGTERM/SIGINT stop the workers instead of killing the
    supervisor mid-way; SIGHUP is passed on (each worker reloads the key file) once they
    all listen, since before that a worker has no handler and SIGHUP would end it."""

    def __init__(self, procs: list[BaseProcess]) -> None:
        self.procs = procs
        self.stop_requested = False
        self.forward_hup = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._stop)
        self._previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._hup)
        return self

    def _stop(self, _sig: int, _frame: FrameType | None) -> None:
        self.stop_requested = True

    def _hup(self, _sig: int, _frame: FrameType | None) -> None:
        if not self.forward_hup:
            return
        for p in self.procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGHUP)

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def _stop_all(procs: list[BaseProcess]) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


def run_workers(spec: ServeSpec, workers: int,
                on_ready: Callable[[tuple[str, int], Guard], None]) -> None:
    """Serve ``spec`` from ``workers`` processes until SIGTERM/SIGINT (returns) or until a
    worker exits (``WorkerExitedError``). ``on_ready`` runs once all of them listen."""
    check_workers(spec, workers)
    warmed = asyncio.run(warm(spec))
    placeholder = reserve_port(spec.host, spec.port)
    port = int(placeholder.getsockname()[1])
    metrics_dir = Path(tempfile.mkdtemp(prefix="redline-guard-metrics-"))
    ctx = multiprocessing.get_context("spawn")
    procs: list[BaseProcess] = []
    with _Signals(procs) as signals:
        try:
            conns: dict[Connection, int] = {}
            for i in range(workers):
                receive, send = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_worker_main, name=f"redline-guard-w{i}",
                                args=(for_worker(spec, i, port, metrics_dir), send,
                                      os.getpid()))
                p.start()
                send.close()
                procs.append(p)
                conns[receive] = i
            address = _await_ready(procs, conns, signals)
            if address is None:
                return
            placeholder.close()
            signals.forward_hup = True
            on_ready(address, warmed)
            _supervise(procs, signals)
        finally:
            placeholder.close()
            _stop_all(procs)
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _await_ready(procs: list[BaseProcess], conns: dict[Connection, int],
                 signals: _Signals) -> tuple[str, int] | None:
    """The address once every worker listens; None if a stop was requested meanwhile."""
    waiting = dict(conns)
    address: tuple[str, int] | None = None
    deadline = time.monotonic() + START_TIMEOUT_S
    while waiting:
        if signals.stop_requested:
            return None
        if time.monotonic() > deadline:
            raise WorkerExitedError(
                f"guard worker(s) {sorted(waiting.values())} did not start within "
                f"{START_TIMEOUT_S:.0f} s")
        for conn in wait(list(waiting), timeout=0.2):
            assert isinstance(conn, Connection)
            i = waiting.pop(conn)
            try:
                message = conn.recv()
            except EOFError:
                procs[i].join(1.0)
                raise WorkerExitedError(
                    f"guard worker {i} exited while starting (exit code {procs[i].exitcode})"
                ) from None
            if message[0] == "error":
                raise WorkerStartError(f"guard worker {i}: {message[2]}", int(message[1]))
            host, port = message[1]
            address = (str(host), int(port))
    return address


def _supervise(procs: list[BaseProcess], signals: _Signals) -> None:
    sentinels = {p.sentinel: i for i, p in enumerate(procs)}
    while not signals.stop_requested:
        for sentinel in wait(list(sentinels), timeout=0.5):
            if signals.stop_requested:
                return
            assert isinstance(sentinel, int)
            i = sentinels[sentinel]
            procs[i].join()
            raise WorkerExitedError(
                f"guard worker {i} (pid {procs[i].pid}) exited with code {procs[i].exitcode}; "
                "stopped the other workers")
