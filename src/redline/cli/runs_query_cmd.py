"""``redline runs query SQL``: SQL over run logs (tables ``runs``, ``samples``,
``summaries``) with DuckDB."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from redline.paths import runs_dir
from redline.query.runlogs import MAX_ROWS, find_logs, query_logs


@click.command("query")
@click.argument("sql")
@click.option("--out", "roots", type=click.Path(path_type=Path), multiple=True,
              help="Runs or campaign folder, or a log file; repeatable "
                   "[default: the runs folder].")
@click.option("--max-rows", type=click.IntRange(1, MAX_ROWS), default=1000,
              show_default=True)
@click.option("--json", "as_json", is_flag=True)
def query_command(sql: str, roots: tuple[Path, ...], max_rows: int, as_json: bool) -> None:
    """Run SQL over every run log (campaign shards included). Tables: runs(log, run_id,
    created_at, policy_id, target, model, campaign, target_name, version, planned_samples),
    samples(run_id, target, target_name, version, sample_id, suite, case_id, category,
    red_line, attack, epoch, seed, expected, outcome, error, duration_s, cached, reply,
    scores), summaries(run_id, status, samples, errors, duration_s, fail, unscored)."""
    columns, rows = query_logs(sql, find_logs(list(roots) or [runs_dir()]), max_rows)
    if as_json:
        click.echo(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], indent=2,
                              default=str))
        return
    table = Table()
    for col in columns:
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(v) for v in r))
    Console().print(table)
