"""``redline runs``: list run logs and show one broken down by protocol, category, attack."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from redline.assess.breakdown import breakdown
from redline.assess.tiers import protocol_figures
from redline.cli.render import print_protocol_figures, print_summary
from redline.cli.runs_query_cmd import query_command
from redline.engine.runlog import find_run, list_runs, read_runlog


@click.group()
def runs() -> None:
    """Run logs on disk."""


@runs.command("list")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Runs folder.")
@click.option("--json", "as_json", is_flag=True)
def list_command(out_dir: Path | None, as_json: bool) -> None:
    """List runs, newest first."""
    entries = []
    for path in list_runs(out_dir):
        log = read_runlog(path)
        s = log.summary
        entries.append({
            "run_id": log.header.run_id,
            "created_at": log.header.created_at.isoformat(),
            "target": log.header.target.uri,
            "policy": log.header.policy_id,
            "status": s.status if s else "incomplete",
            "samples": len(log.samples),
            "planned": log.header.planned_samples,
            "fail": s.totals.fail if s else None,
            "unscored": s.totals.unscored if s else None,
            "log": str(path),
        })
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    table = Table(title="runs")
    for col in ("run", "created", "target", "policy", "status", "samples", "fail", "unscored"):
        table.add_column(col)
    for e in entries:
        table.add_row(str(e["run_id"]), str(e["created_at"])[:19], str(e["target"]),
                      str(e["policy"] or "—"), str(e["status"]),
                      f"{e['samples']}/{e['planned']}", str(e["fail"]), str(e["unscored"]))
    Console().print(table)


@runs.command("show")
@click.argument("run")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Runs folder.")
@click.option("--json", "as_json", is_flag=True)
def show_command(run: str, out_dir: Path | None, as_json: bool) -> None:
    """Show one run broken down by red line, protocol, category and attack, with the
    honesty, evaluation-awareness, persuasion and backdoor-sweep figures of the protocols it
    ran."""
    log = read_runlog(find_run(run, out_dir))
    figures = protocol_figures(log.samples)
    if as_json:
        click.echo(json.dumps({
            "header": log.header.model_dump(mode="json"),
            "summary": log.summary.model_dump(mode="json", by_alias=True) if log.summary
            else None,
            "breakdown": [r.model_dump() for r in breakdown(log.summary)] if log.summary
            else [],
            "protocol_figures": figures.model_dump(mode="json"),
            "dropped_lines": log.dropped_lines,
        }, indent=2))
        return
    console = Console()
    print_summary(console, log, groups=("red_line", "suite", "category", "attack"))
    print_protocol_figures(console, log.header.run_id, figures)


runs.add_command(query_command)
