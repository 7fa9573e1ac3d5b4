"""The FastAPI application: routes, migrations on start, refusals as JSON with a reason."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from redline._version import __version__
from redline.observatory.api import admin, alerts, dashboard, ingest, reports
from redline.observatory.db import Database, migrate
from redline.observatory.hub import Hub
from redline.observatory.limits import BodyLimit
from redline.observatory.notify import record_outcome
from redline.observatory.problems import Rejected
from redline.observatory.settings import Settings
from redline.observatory.textguard import clean_text
from redline.webhooks import Delivery, Outcome, RetryPolicy

STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    """An app over ``settings.database_url``, migrated to the newest schema at start."""
    settings = settings or Settings()
    database = Database(settings.database_url)
    migrate(database.engine)

    def record(d: Delivery, outcome: Outcome) -> None:
        with database.session() as s:
            record_outcome(s, d, outcome)

    hub = Hub(RetryPolicy(attempts=settings.webhook_attempts,
                          backoff_s=settings.webhook_backoff_s,
                          timeout_s=settings.webhook_timeout_s), record)

    @asynccontextmanager
    async def lifespan(running: FastAPI) -> AsyncIterator[None]:
        running.state.loop = asyncio.get_running_loop()
        try:
            yield
        finally:
            await hub.close()
            database.engine.dispose()

    app = FastAPI(title="redline observatory", version=__version__, lifespan=lifespan,
                  dependencies=[Depends(clean_text)],
                  description="Shared attestations, runtime anomalies, incidents, alerts and "
                              "coordinated disclosure.")
    app.state.settings = settings
    app.state.db = database
    app.state.hub = hub
    for module in (admin, ingest, alerts, reports, dashboard):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(Rejected)
    async def rejected(_: Request, exc: Rejected) -> JSONResponse:
        return JSONResponse({"detail": {"reason": exc.reason, "message": exc.message}},
                            status_code=exc.status)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
