"""PNG charts of risk over time: a risk map (versions × categories, coloured by tier) and a
trend chart per red line (fail rate with Wilson 95% intervals per version).

Drawn on matplotlib's Agg canvas directly (no pyplot, no global backend): no display
needed, and nothing leaks between charts or threads.
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from redline.assess.report_html import NOT_ASSESSED_COLOUR, TIER_COLOURS
from redline.drift.risk import RiskOverTime
from redline.stats import wilson_interval

#: Resolution of the PNGs.
DPI = 110
#: Index in the colour map of a cell with no tier; tiers 0–4 take indexes 0–4.
NOT_ASSESSED = 5
#: Index of an empty cell (the version has no sample in the category).
EMPTY = 6
EMPTY_COLOUR = "#ffffff"


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def risk_map_png(risk: RiskOverTime) -> bytes:
    """Rows: versions in order; columns: categories; colour: tier; text: tier and rate."""
    colours = [TIER_COLOURS[t] for t in range(5)] + [NOT_ASSESSED_COLOUR, EMPTY_COLOUR]
    cells = {(c.label, c.category): c for c in risk.cells}
    grid = [[EMPTY] * len(risk.categories) for _ in risk.labels]
    fig = Figure(figsize=(1.6 + 1.5 * len(risk.categories), 0.8 + 0.55 * len(risk.labels)),
                 dpi=DPI, layout="tight")
    ax = fig.subplots()
    for i, label in enumerate(risk.labels):
        for j, cat in enumerate(risk.categories):
            cell = cells.get((label, cat))
            if cell is None:
                continue
            grid[i][j] = NOT_ASSESSED if cell.tier is None else cell.tier
            tier = "n/a" if cell.tier is None else f"CRT-{cell.tier}"
            rate = "—" if cell.rate is None else f"{cell.rate:.0%}"
            ax.text(j, i, f"{tier}\n{rate} (n={cell.n})", ha="center", va="center",
                    fontsize=7, color="white" if grid[i][j] != EMPTY else "black")
    ax.imshow(grid, cmap=ListedColormap(colours), vmin=0, vmax=len(colours) - 1,
              aspect="auto")
    ax.set_xticks(range(len(risk.categories)), risk.categories, rotation=30, ha="right",
                  fontsize=8)
    ax.set_yticks(range(len(risk.labels)), risk.labels, fontsize=8)
    ax.set_title(f"risk map over versions — {risk.campaign}", fontsize=9)
    return _png(fig)


def trend_png(risk: RiskOverTime, red_line: str) -> bytes:
    """Fail rate of one red line per version, with Wilson 95% intervals."""
    points = [p for p in risk.trends if p.red_line == red_line]
    xs = list(range(len(points)))
    rates = [p.fail / p.scored for p in points]
    bounds = [wilson_interval(p.fail, p.scored) for p in points]
    fig = Figure(figsize=(1.5 + 1.1 * len(points), 2.6), dpi=DPI, layout="tight")
    ax = fig.subplots()
    ax.errorbar(xs, rates, yerr=[[r - lo for r, (lo, _) in zip(rates, bounds, strict=True)],
                                 [hi - r for r, (_, hi) in zip(rates, bounds, strict=True)]],
                fmt="o-", capsize=4, color=TIER_COLOURS[3])
    ax.set_xticks(xs, [p.label for p in points], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("fail rate", fontsize=8)
    ax.set_title(f"{red_line}: fail rate per version (95% Wilson)", fontsize=9)
    return _png(fig)
