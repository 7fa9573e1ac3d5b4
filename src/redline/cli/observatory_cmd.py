"""``redline observatory``: run the service, set it up, and push evidence and guard events.

Exit codes: 0 done, 2 bad input, 3 the observatory refused or stayed unreachable, 4 not found.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from redline.errors import InputError

if TYPE_CHECKING:
    from redline.observatory.db import Database

DEFAULT_DB = "sqlite:///observatory.db"
TOKEN_ENV = "REDLINE_OBSERVATORY_KEY"
DB_ENV = "REDLINE_OBSERVATORY_DB"
db_option = click.option("--db", "database_url", envvar=DB_ENV, default=DEFAULT_DB,
                         show_default=True, help=f"database URL (or ${DB_ENV})")


@click.group()
def observatory() -> None:
    """The multi-organisation observatory service and its push client."""


@observatory.command("serve")
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True, type=int)
@click.option("--embargo-days", default=90, show_default=True, type=int,
              help="default coordinated-disclosure embargo")
@click.option("--secure-cookies", is_flag=True, help="mark the dashboard cookie Secure (TLS)")
def serve(database_url: str, host: str, port: int, embargo_days: int,
          secure_cookies: bool) -> None:
    """Run the API and dashboard (migrates the database first)."""
    import uvicorn

    from redline.observatory import Settings, create_app

    app = create_app(Settings(database_url=database_url, embargo_days=embargo_days,
                              secure_cookies=secure_cookies))
    uvicorn.run(app, host=host, port=port, log_level="info")


def _database(url: str) -> Database:
    from redline.observatory.db import Database, migrate

    database = Database(url)
    migrate(database.engine)
    return database


@observatory.command("create-org")
@db_option
@click.argument("slug")
@click.argument("name")
@click.option("--share-excerpts", is_flag=True, help="keep content excerpts guards attach")
def create_org(database_url: str, slug: str, name: str, share_excerpts: bool) -> None:
    """Create an organisation."""
    from pydantic import ValidationError

    from redline.observatory.bootstrap import create_org as create

    with _database(database_url).session() as s:
        try:
            org = create(s, slug, name, share_excerpts=share_excerpts)
        except ValidationError as exc:
            raise InputError(f"invalid organisation: {exc.errors()[0]['msg']}") from None
        click.echo(f"organisation {org.slug} (id {org.id})")


@observatory.command("add-member")
@db_option
@click.argument("org")
@click.argument("name")
@click.option("--role", default="member", show_default=True,
              type=click.Choice(["member", "reviewer", "coordinator", "admin"]))
def add_member(database_url: str, org: str, name: str, role: str) -> None:
    """Add a member with a new API key; the key is printed once."""
    from redline.observatory.bootstrap import add_member as add

    with _database(database_url).session() as s:
        member, token = add(s, org, name, role)
        click.echo(json.dumps({"member": member.id, "org": org, "role": role, "key": token}))


@observatory.command("revoke-key")
@db_option
@click.argument("prefix")
def revoke_key(database_url: str, prefix: str) -> None:
    """Revoke API keys by their listed prefix."""
    from redline.observatory.bootstrap import revoke_key as revoke

    with _database(database_url).session() as s:
        click.echo(f"revoked {revoke(s, prefix)} key(s)")


@observatory.command("push")
@click.option("--url", required=True, help="observatory base URL")
@click.option("--key", "token", envvar=TOKEN_ENV, required=True,
              help=f"API key (or ${TOKEN_ENV})")
@click.option("--attestation", "attestations", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--visibility", default="members", show_default=True,
              type=click.Choice(["org", "members", "public"]))
@click.option("--events", "events_file", type=click.Path(exists=True, dir_okay=False,
                                                         path_type=Path),
              help="JSON Lines of guard event summaries")
@click.option("--attempts", default=5, show_default=True, type=click.IntRange(1, 20))
def push(url: str, token: str, attestations: tuple[Path, ...], visibility: str,
         events_file: Path | None, attempts: int) -> None:
    """Send attestations and guard event summaries; safe to re-run (no duplicates)."""
    if not attestations and events_file is None:
        raise InputError("nothing to push: give --attestation and/or --events")
    from redline.observatory.client import ObservatoryClient
    from redline.observatory.pushfiles import read_envelope
    from redline.records.guard_events import read_event_summaries

    envelopes = [(p, read_envelope(p)) for p in attestations]
    summaries = read_event_summaries(events_file) if events_file else []

    async def run() -> None:
        async with ObservatoryClient(url, token, attempts=attempts) as client:
            for path, envelope in envelopes:
                new = await client.push_attestation(envelope, visibility=visibility)
                click.echo(f"{path}: {'stored' if new else 'already there'}")
            if summaries:
                result = await client.push_summaries(summaries)
                click.echo(f"summaries: {result.sent} stored, {result.already_there} already "
                           f"there, {result.alerts} alert(s) raised")

    asyncio.run(run())


