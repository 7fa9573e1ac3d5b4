"""Shared route helpers: the database, settings and hub of the running app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from redline.observatory.db import Database
from redline.observatory.hub import Hub
from redline.observatory.problems import not_found
from redline.observatory.schemas import SLUG_PATTERN
from redline.observatory.settings import Settings
from redline.observatory.tables import Org

#: Row ids fit a 32-bit integer column on every database.
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
Digest = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]
Slug = Annotated[str, Path(pattern=SLUG_PATTERN)]


def db(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


def hub(request: Request) -> Hub:
    value: Hub = request.app.state.hub
    return value


def org_by_slug(session: Session, slug: str) -> Org:
    org = session.scalar(select(Org).where(Org.slug == slug))
    if org is None:
        raise not_found(f"organisation {slug!r}")
    return org


def slugs(session: Session) -> dict[int, str]:
    return {o.id: o.slug for o in session.scalars(select(Org))}
