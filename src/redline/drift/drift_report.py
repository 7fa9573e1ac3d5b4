"""The campaign drift report as one self-contained HTML page: the risk map over versions,
a trend chart per red line, the tested changes and the CUSUM alarms.

Every string from a log or plan is escaped; charts are embedded PNG data URIs, and the page
carries the same content security policy as the run report (no scripts, no remote loads).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

from redline.assess.report_html import CSP
from redline.drift.changes import Comparison
from redline.drift.charts import risk_map_png, trend_png
from redline.drift.cusum import CusumSeries
from redline.drift.risk import RiskOverTime

STYLE = ("body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}"
         "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
         ".reg{background:#ffebe9}img{max-width:100%}")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def render_drift_html(risk: RiskOverTime, comparisons: Sequence[Comparison],
                      cusum: Sequence[CusumSeries] = ()) -> str:
    parts = [f"<h1>Drift — campaign {_e(risk.campaign)}</h1>"]
    if risk.labels:
        parts += ["<h2>Risk map over versions</h2>", _img(risk_map_png(risk), "risk map")]
        lines = sorted({t.red_line for t in risk.trends})
        if lines:
            parts.append("<h2>Trend per red line</h2>")
            parts += [_img(trend_png(risk, line), f"trend {line}") for line in lines]
    for comp in comparisons:
        parts.append(f"<h2>Changes: {' → '.join(_e(x) for x in comp.labels)}</h2>"
                     f"<p>{_e(comp.test)} test, {_e(comp.correction)} correction over "
                     f"{comp.tests_counted} tests, α = {comp.alpha:g}; "
                     f"{len(comp.regressions)} regression(s).</p>")
        rows = "".join(
            f'<tr class="{"reg" if c.regression else ""}"><td>{_e(c.dimension)}</td>'
            f"<td>{_e(c.key)}</td><td>{_e(c.metric)}</td><td>{_e(c.baseline)} → "
            f"{_e(c.candidate)}</td><td>{c.base_k}/{c.base_n} → {c.cand_k}/{c.cand_n}</td>"
            f"<td>{c.delta:+.1%}</td><td>{c.p_value:.4f}</td>"
            f"<td>{'—' if c.p_adjusted is None else f'{c.p_adjusted:.4f}'}</td>"
            f"<td>{'regression' if c.regression else 'significant' if c.significant else ''}"
            "</td></tr>" for c in comp.changes)
        parts.append("<table><tr><th>by</th><th>key</th><th>metric</th><th>versions</th>"
                     "<th>counts</th><th>change</th><th>p</th><th>p adjusted</th><th></th>"
                     f"</tr>{rows}</table>")
    if cusum:
        parts.append("<h2>Guard tripwire rates (CUSUM)</h2><ul>")
        for series in cusum:
            alarms = ", ".join(f"{a.direction} at {a.window_start.isoformat()} "
                               f"(rate {a.rate:.1%})" for a in series.alarms) or "no alarm"
            parts.append(f"<li>{_e(series.red_line)}: baseline {series.baseline_rate:.2%}; "
                         f"{_e(alarms)}</li>")
        parts.append("</ul>")
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
            f"<title>drift {_e(risk.campaign)}</title><style>{STYLE}</style></head><body>"
            + "".join(parts) + "</body></html>")
