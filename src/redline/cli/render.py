"""Output shared by CLI commands: rich tables of run results, and field listings."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from redline.assess.breakdown import breakdown, fmt_rate
from redline.assess.model import ProtocolFigures
from redline.assess.report_md import (
    ACCURACY_LABEL,
    BACKDOOR_HEADINGS,
    DIFFERENCE_LABEL,
    SHIFT_LABEL,
    TACTIC_RATE_LABEL,
    awareness_rows,
    backdoor_rows,
    fmt_k_of_n,
    fmt_mean,
    fmt_points,
    fmt_share,
    fmt_sources,
    honesty_rows,
)
from redline.engine.runlog import RunLog

_GROUP_TITLES = {
    "red_line": "red line",
    "suite": "protocol",
    "category": "category",
    "attack": "attack",
}


def print_summary(console: Console, log: RunLog, groups: tuple[str, ...] = ("red_line", "suite")
                  ) -> None:
    summary = log.summary
    if summary is None:
        console.print(f"[yellow]run {log.header.run_id} has no summary (still running or "
                      f"killed); {len(log.samples)} samples so far[/]")
        return
    rows = breakdown(summary)
    for group in groups:
        table = Table(title=f"{log.header.run_id}: by {_GROUP_TITLES[group]}")
        table.add_column(_GROUP_TITLES[group])
        for col in ("n", "fail", "pass", "unscored"):
            table.add_column(col, justify="right")
        table.add_column("fail rate [95% CI]")
        for r in rows:
            if r.group == group:
                table.add_row(escape(r.key), str(r.n), str(r.fail), str(r.passed), str(r.unscored),
                              fmt_rate(r))
        if table.row_count:
            console.print(table)
    console.print(
        f"status [bold]{summary.status}[/]: {summary.samples}/{log.header.planned_samples} "
        f"samples, {summary.errors} errors, {summary.totals.unscored} unscored, "
        f"{summary.cached} from cache, {summary.duration_s:.1f} s"
    )


def print_protocol_figures(console: Console, run_id: str, f: ProtocolFigures) -> None:
    """Honesty, evaluation-awareness, persuasion and backdoor-sweep figures, each only when
    the run has it."""
    if f.honesty is not None:
        h = f.honesty
        table = _figure_table(f"{run_id}: honesty under pressure ({fmt_sources(f, 'honesty')})",
                              "share [95% CI]", "samples")
        for label, share, _ in honesty_rows(h):
            table.add_row(label, fmt_share(share), fmt_k_of_n(share))
        table.add_section()
        table.add_row(f"{ACCURACY_LABEL}, apart", fmt_share(h.accuracy), fmt_k_of_n(h.accuracy))
        console.print(table)
    if f.awareness is not None:
        aw = f.awareness
        table = _figure_table(f"{run_id}: evaluation awareness ({fmt_sources(f, 'awareness')})",
                              "value [95% CI]", "correct")
        for label, share in awareness_rows(aw):
            table.add_row(label, fmt_share(share), fmt_k_of_n(share))
        table.add_row(DIFFERENCE_LABEL, fmt_points(aw.difference), f"{aw.n_pairs} pairs")
        console.print(table)
        console.print(f"reading: {escape(f.awareness_reading or '')}")
    if f.persuasion is not None:
        p = f.persuasion
        table = _figure_table(f"{run_id}: persuasion ({fmt_sources(f, 'persuasion')})",
                              "value [95% CI]", "samples")
        table.add_row(f"{SHIFT_LABEL}, 1–7 scale", fmt_mean(p.shift), str(p.shift.n))
        table.add_row(TACTIC_RATE_LABEL, fmt_share(p.tactic_rate), fmt_k_of_n(p.tactic_rate))
        table.add_section()
        for tactic, k in p.tactics.items():
            table.add_row(f"tactic {escape(tactic)}", "", str(k))
        console.print(table)
    if f.backdoor is not None:
        b = f.backdoor
        table = Table(title=escape(f"{run_id}: backdoor sweep ({fmt_sources(f, 'backdoor')}), "
                                   f"{len(b.flagged)} of {len(b.shifts)} shifts flagged"))
        for heading in BACKDOOR_HEADINGS:
            table.add_column(heading)
        for row in backdoor_rows(b):
            table.add_row(*map(escape, row), style="bold red" if row[-1] != "no" else None)
        console.print(table)


def _figure_table(title: str, value: str, count: str) -> Table:
    table = Table(title=escape(title))
    table.add_column("figure")
    table.add_column(value, justify="right")
    table.add_column(count, justify="right")
    return table


def echo_fields(fields: dict[str, Any], as_json: bool) -> None:
    """Print fields as JSON, or as aligned ``name  value`` lines (lists comma-joined)."""
    if as_json:
        click.echo(json.dumps(fields, indent=2))
        return
    width = max(map(len, fields))
    for key, value in fields.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        click.echo(f"{key.replace('_', ' '):<{width}}  {shown}")
