"""``redline compare`` (runs, one after another) and ``redline drift`` (a campaign's
versions, and guard tripwire rates over time)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

import click
from rich.console import Console
from rich.table import Table

from redline.drift.changes import DEFAULT_ALPHA, Comparison, compare_groups
from redline.drift.cusum import CusumSeries, detect_changes
from redline.drift.drift import drift_campaign, run_label
from redline.drift.significance import CorrectionName, TestName
from redline.engine.runlog import find_run, read_runlog
from redline.errors import InputError
from redline.records.guard_events import read_event_summaries

_test = click.option("--test", "test", type=click.Choice(get_args(TestName)),
                     default="fisher", show_default=True, help="Significance test.")
_correction = click.option("--correction", type=click.Choice(get_args(CorrectionName)),
                           default="holm", show_default=True,
                           help="Multiple-comparison correction (Holm: family-wise; "
                                "bh: false discovery rate).")
_alpha = click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                      default=DEFAULT_ALPHA, show_default=True)


@click.command("compare")
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Runs folder.")
@_test
@_correction
@_alpha
@click.option("--json", "as_json", is_flag=True)
def compare_command(runs: tuple[str, ...], out_dir: Path | None, test: TestName,
                    correction: CorrectionName, alpha: float, as_json: bool) -> None:
    """Compare RUNS in the order given, each with the one before, per category and metric;
    flags significant regressions."""
    if len(runs) < 2:
        raise InputError("give at least two runs to compare")
    logs = [read_runlog(find_run(r, out_dir)) for r in runs]
    labels = [run_label(log) for log in logs]
    if len(set(labels)) < len(labels):
        labels = [log.header.run_id for log in logs]
    comparison = compare_groups([(label, log.samples) for label, log in zip(labels, logs,
                                                                            strict=True)],
                                test=test, correction=correction, alpha=alpha)
    _emit([comparison], [], as_json)


@click.command("drift")
@click.argument("campaign_dir", required=False, type=click.Path(path_type=Path))
@click.option("--events", "events_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Guard event summaries (JSON Lines) for change detection over time.")
@click.option("--html", "html_out", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the drift report (risk map over versions, trends) as HTML.")
@click.option("--png-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Write the risk map and trend charts as PNG files here.")
@_test
@_correction
@_alpha
@click.option("--json", "as_json", is_flag=True)
def drift_command(campaign_dir: Path | None, events_file: Path | None, html_out: Path | None,
                  png_dir: Path | None, test: TestName, correction: CorrectionName,
                  alpha: float, as_json: bool) -> None:
    """Changes between each target's versions in CAMPAIGN_DIR, and CUSUM alarms on guard
    tripwire rates from --events."""
    if campaign_dir is None and events_file is None:
        raise InputError("give a campaign folder, --events, or both")
    comparisons = drift_campaign(campaign_dir, test=test, correction=correction,
                                 alpha=alpha) if campaign_dir else []
    cusum = detect_changes(read_event_summaries(events_file)) if events_file else []
    if campaign_dir is not None and (html_out or png_dir):
        _write_charts(campaign_dir, comparisons, cusum, html_out, png_dir)
    _emit(comparisons, cusum, as_json)


def _write_charts(campaign_dir: Path, comparisons: list[Comparison], cusum: list[CusumSeries],
                  html_out: Path | None, png_dir: Path | None) -> None:
    # Charts pull in matplotlib: only when asked for.
    from redline.drift.charts import risk_map_png, trend_png
    from redline.drift.drift_report import render_drift_html
    from redline.drift.risk import campaign_risk

    risk = campaign_risk(campaign_dir)
    if png_dir is not None:
        png_dir.mkdir(parents=True, exist_ok=True)
        (png_dir / "risk-map.png").write_bytes(risk_map_png(risk))
        for i, line in enumerate(sorted({t.red_line for t in risk.trends})):
            (png_dir / f"trend-{i}.png").write_bytes(trend_png(risk, line))
    if html_out is not None:
        html_out.write_text(render_drift_html(risk, comparisons, cusum), encoding="utf-8")


def _emit(comparisons: Sequence[Comparison], cusum: Sequence[CusumSeries],
          as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({
            "comparisons": [c.model_dump(mode="json") for c in comparisons],
            "regressions": sum(len(c.regressions) for c in comparisons),
            "cusum": [s.model_dump(mode="json") for s in cusum],
        }, indent=2))
        return
    console = Console()
    for comp in comparisons:
        table = Table(title=f"{' → '.join(comp.labels)} ({comp.test}, {comp.correction}, "
                            f"{comp.tests_counted} tests)")
        for col in ("by", "key", "metric", "counts", "change", "p", "p adj", ""):
            table.add_column(col)
        for c in comp.changes:
            table.add_row(c.dimension, c.key, c.metric,
                          f"{c.base_k}/{c.base_n} → {c.cand_k}/{c.cand_n}", f"{c.delta:+.1%}",
                          f"{c.p_value:.4f}",
                          "—" if c.p_adjusted is None else f"{c.p_adjusted:.4f}",
                          "REGRESSION" if c.regression else "significant" if c.significant
                          else "")
        console.print(table)
        console.print(f"{len(comp.regressions)} significant regression(s)")
    for s in cusum:
        alarms = ", ".join(f"{a.direction}@{a.window_start.isoformat()}" for a in s.alarms)
        console.print(f"{s.red_line}: baseline tripwire rate {s.baseline_rate:.2%}; "
                      f"alarms: {alarms or 'none'}")
