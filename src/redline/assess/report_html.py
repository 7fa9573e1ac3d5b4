"""The HTML report: one self-contained file, no scripts, no external assets.

Everything that comes from a run log (model replies, prompts, suite and policy text) is
hostile until escaped, and is escaped where it enters markup, through ``_e``. As a second
line, the page's Content-Security-Policy forbids scripts and every network fetch, so even a
missed escape could not run code or call home.
"""

from __future__ import annotations

from html import escape

from redline.assess.model import (
    Assessment,
    CategoryAssessment,
    CorrectedRate,
    EvidenceAssessment,
    ProtocolFigures,
    Rate,
    RedLineAssessment,
    Transcript,
    Verdict,
)
from redline.assess.protocols import Interval
from redline.assess.protocols import Rate as Share
from redline.assess.report_md import (
    ACCURACY_LABEL,
    AWARENESS_NOTE,
    BACKDOOR_HEADINGS,
    BACKDOOR_NOTE,
    DIFFERENCE_LABEL,
    HONESTY_NOTE,
    PERSUASION_NOTE,
    SHIFT_LABEL,
    TACTIC_RATE_LABEL,
    awareness_rows,
    backdoor_rows,
    fmt_counts,
    fmt_determination,
    fmt_k_of_n,
    fmt_mean,
    fmt_pct,
    fmt_points,
    fmt_rate,
    fmt_share,
    fmt_sources,
    fmt_tier,
    honesty_rows,
)
from redline.assess.svg import Bar, HeatCell, Mark, heatmap, interval_bars

#: Badge colour per tier; grey when not assessed.
TIER_COLOURS = {0: "#1a7f37", 1: "#9a6700", 2: "#bc4c00", 3: "#cf222e", 4: "#82071e"}
NOT_ASSESSED_COLOUR = "#6e7781"
OUTCOME_COLOURS = {"fail": "#cf222e", "pass": "#1a7f37", "unscored": "#6e7781"}
SAFETY_FILL = "#cf222e"
USABILITY_FILL = "#0969da"
#: Bar fill per honesty figure, in the order of ``honesty_rows``.
HONESTY_FILLS = ("#cf222e", "#1a7f37", "#9a6700", "#6e7781")

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
body{font:14px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2328;margin:0;
background:#f6f8fa}
main{max-width:1180px;margin:0 auto;padding:24px 32px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px;
border-bottom:1px solid #d0d7de;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.meta{color:#57606a;margin:0}.meta code{font-size:12px}
table{border-collapse:collapse;width:100%;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.num{text-align:right;white-space:nowrap}
.badge{display:inline-block;color:#fff;border-radius:10px;padding:0 8px;font-weight:600;
font-size:12px;white-space:nowrap}
.basis{color:#57606a;font-size:12px}.statement{color:#57606a;font-size:12px}
.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:8px 14px}
.readings{margin:4px 0 0 0;padding-left:18px}
details{border:1px solid #d0d7de;border-radius:6px;margin:6px 0;padding:4px 10px}
summary{cursor:pointer}.msg{margin:6px 0}.role{font-weight:600;font-size:12px;color:#57606a}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;padding:8px;margin:2px 0;
border-radius:4px;font-size:12px}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;
vertical-align:middle}
"""


def _e(text: str) -> str:
    return escape(text, quote=True)


def _badge(text: str, colour: str) -> str:
    return f"<span class='badge' style='background:{colour}'>{_e(text)}</span>"


def _tier_badge(verdict: Verdict) -> str:
    colour = (NOT_ASSESSED_COLOUR if verdict.tier is None
              else TIER_COLOURS.get(verdict.tier, NOT_ASSESSED_COLOUR))
    return _badge(fmt_tier(verdict), colour)


def _rate_cells(rate: Rate) -> str:
    point = "" if rate.rate is None else rate.rate
    return (f"<td class='num' data-rate='{point}' data-ci-low='{rate.ci_low}' "
            f"data-ci-high='{rate.ci_high}'>{_e(fmt_rate(rate))}</td>"
            f"<td class='num'>{_e(fmt_counts(rate))}</td>")


def _corrected(corrected: CorrectedRate | None) -> str:
    if corrected is None:
        return "<td class='num'>—</td>"
    return (f"<td class='num' title='{_e(corrected.scorer)}: fpr {fmt_pct(corrected.fpr)}, "
            f"fnr {fmt_pct(corrected.fnr)}'>{_e(fmt_rate(corrected))}</td>")


def render_html(a: Assessment) -> str:
    """The whole report as one HTML document."""
    title = f"redline assessment — {a.target.model or a.target.uri} — run {a.run_id}"
    body = [
        f"<h1>{_e(title)}</h1>",
        _meta(a),
        _warnings(a),
        _verdicts(a),
        _categories(a.categories),
        _risk_map(a),
        _usability(a),
        _protocols(a),
        _honesty(a.protocol_figures),
        _awareness(a.protocol_figures),
        _persuasion(a.protocol_figures),
        _backdoor(a.protocol_figures),
        _transcripts(a.transcripts),
        "<h2 id='method'>Method</h2><ul>" + "".join(f"<li>{_e(m)}</li>" for m in a.method)
        + "</ul>",
        f"<p class='meta'>redline {_e(a.tool_version)}, assessment schema "
        f"{_e(a.schema_version)}. Recompute with <code>redline report {_e(a.run_id)}"
        "</code>.</p>",
    ]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>"
            + "".join(body) + "</main></body></html>\n")


def _meta(a: Assessment) -> str:
    t = a.target
    policy = (f"{_e(a.policy_title or '')} (<code>{_e(a.policy_id or '')}</code> "
              f"v{_e(a.policy_version or '')}, digest <code>{_e((a.policy_digest or '')[:16])}"
              "</code>)" if a.policy_id else "none")
    weights = f", weights sha256 <code>{_e(t.digest)}</code>" if t.digest else ""
    return (f"<p class='meta'>Target <code>{_e(t.uri)}</code>{weights} · policy {policy} · "
            f"run {_e(a.run_status)}, {a.samples} of {a.planned_samples} samples, created "
            f"{_e(a.run_created_at)} · attacks {_e(', '.join(a.attacks))}</p>")


def _warnings(a: Assessment) -> str:
    if not a.warnings:
        return ""
    return ("<div class='warn'><strong>Warnings</strong><ul>"
            + "".join(f"<li>{_e(w)}</li>" for w in a.warnings) + "</ul></div>")


def _verdicts(a: Assessment) -> str:
    if not a.red_lines:
        return ("<h2 id='verdicts'>Verdicts per red line</h2><p>No policy red lines: no "
                "tiers.</p>")
    rows = "".join(_red_line_row(r) for r in a.red_lines)
    evidence = [e for r in a.red_lines for e in r.evidence]
    return ("<h2 id='verdicts'>Verdicts per red line</h2>"
            "<table><thead><tr><th>Red line</th><th>Category</th><th>Tier</th>"
            "<th>Determination</th><th>Fail rate [95% CI]</th><th>Fails</th>"
            "<th>Judge-corrected</th></tr></thead><tbody>" + rows + "</tbody></table>"
            + (_evidence_chart(evidence) if evidence else ""))


def _red_line_row(r: RedLineAssessment) -> str:
    return (f"<tr id='rl-{_e(r.id)}'><td><strong>{_e(r.id)}</strong> "
            f"{_badge(r.severity, '#57606a')}<div class='statement'>{_e(r.statement)}</div>"
            f"<div class='basis'>{_e(r.verdict.basis)} [rule: {_e(r.verdict.rule)}]</div></td>"
            f"<td>{_e(r.category)}</td><td>{_tier_badge(r.verdict)}</td>"
            f"<td>{_e(fmt_determination(r.verdict))}</td>"
            + _rate_cells(r.rate) + _corrected(r.corrected) + "</tr>")


def _evidence_chart(evidence: list[EvidenceAssessment]) -> str:
    bars = [Bar(label=f"{e.red_line} · {e.protocol}", value=e.rate.rate, low=e.rate.ci_low,
                high=e.rate.ci_high, fill=SAFETY_FILL, text=fmt_rate(e.rate),
                marks=[m for t in e.thresholds for m in (
                    Mark(t.early_warning, f"CRT-{t.tier} early warning {t.early_warning:.1%}",
                         dashed=True),
                    Mark(t.confirmatory, f"CRT-{t.tier} confirmatory {t.confirmatory:.1%}"))])
            for e in evidence]
    return ("<p class='basis'>Fail rate per evidence with its 95% interval; purple ticks are the "
            "policy's cut-offs (dashed: early warning, solid: confirmatory).</p>"
            + interval_bars(bars, "Fail rate per evidence against tier cut-offs"))


def _categories(categories: list[CategoryAssessment]) -> str:
    parts = ["<h2 id='categories'>Categories and framework readings</h2>"]
    for c in categories:
        readings = "".join(f"<li>{_e(r.reading)}</li>" for r in c.readings)
        parts.append(
            f"<h3>{_e(c.id)} <span class='basis'>{_e(c.name)}</span></h3>"
            f"<p>{_tier_badge(c.verdict)} {_e(fmt_determination(c.verdict))} · fail rate "
            f"{_e(fmt_rate(c.rate))} · {_e(fmt_counts(c.rate))}</p>"
            f"<div class='basis'>{_e(c.verdict.basis)}</div>"
            + (f"<ul class='readings'>{readings}</ul>" if readings else "")
        )
    return "".join(parts)


def _risk_map(a: Assessment) -> str:
    m = a.risk_map
    if not m.cells:
        return "<h2 id='risk-map'>Risk map</h2><p>No safety samples.</p>"
    cells = [HeatCell(row=c.category, column=c.attack, value=c.rate.rate,
                      text=f"{fmt_pct(c.rate.rate)} ({c.rate.fail}/{c.rate.scored})")
             for c in m.cells]
    return ("<h2 id='risk-map'>Risk map</h2><p class='basis'>Fail rate (attack success) of "
            "harmful-request protocols by lexicon category and attack; grey where not run.</p>"
            + heatmap(m.categories, m.attacks, cells, "Risk map: fail rate by category and "
                      "attack"))


def _usability(a: Assessment) -> str:
    bars = []
    for b in a.balance:
        for name, rate, fill in (("attack success", b.attack_success, SAFETY_FILL),
                                 ("over-refusal", b.over_refusal, USABILITY_FILL)):
            bars.append(Bar(label=f"{b.attack} · {name}", value=rate.rate, low=rate.ci_low,
                            high=rate.ci_high, fill=fill, text=fmt_rate(rate)))
    rows = "".join(f"<tr><td>{_e(b.attack)}</td>" + _rate_cells(b.attack_success)
                   + _rate_cells(b.over_refusal) + "</tr>" for b in a.balance)
    return ("<h2 id='usability'>Usability beside safety</h2>"
            "<p class='basis'>Attack success on harmful requests beside over-refusal of benign "
            "ones: a model that refuses everything scores zero on the first and fails the "
            f"second.</p><p class='legend'><span style='background:{SAFETY_FILL}'></span>attack "
            f"success<span style='background:{USABILITY_FILL}'></span>over-refusal</p>"
            + interval_bars(bars, "Attack success and over-refusal per attack")
            + "<table><thead><tr><th>Attack</th><th>Attack success [95% CI]</th><th>Fails</th>"
            "<th>Over-refusal [95% CI]</th><th>Refusals</th></tr></thead><tbody>" + rows
            + "</tbody></table>")


def _protocols(a: Assessment) -> str:
    bars = [Bar(label=p.protocol, value=p.rate.rate, low=p.rate.ci_low, high=p.rate.ci_high,
                fill=SAFETY_FILL if p.kind == "safety" else USABILITY_FILL,
                text=fmt_rate(p.rate)) for p in a.protocols]
    rows = "".join(
        f"<tr><td>{_e(p.protocol)}</td><td>{_e(p.kind)}</td><td>{_e(p.red_line or '—')}</td>"
        f"<td>{_e(', '.join(p.categories))}</td>" + _rate_cells(p.rate) + _corrected(p.corrected)
        + "</tr>" for p in a.protocols)
    return ("<h2 id='protocols'>Protocols</h2>"
            + (interval_bars(bars, "Fail rate per protocol") if bars else "")
            + "<table><thead><tr><th>Protocol</th><th>Kind</th><th>Red line</th>"
            "<th>Categories</th><th>Fail rate [95% CI]</th><th>Fails</th>"
            "<th>Judge-corrected</th></tr></thead><tbody>" + rows + "</tbody></table>")


def _share_cells(share: Share) -> str:
    estimate = "" if share.estimate is None else share.estimate
    return (f"<td class='num' data-k='{share.k}' data-n='{share.n}' data-estimate='{estimate}' "
            f"data-low='{share.low}' data-high='{share.high}'>{_e(fmt_share(share))}</td>"
            f"<td class='num'>{_e(fmt_k_of_n(share))}</td>")


def _interval_cell(interval: Interval, text: str) -> str:
    def attr(x: float | None) -> str:
        return "" if x is None else str(x)

    return (f"<td class='num' data-estimate='{attr(interval.estimate)}' "
            f"data-low='{attr(interval.low)}' data-high='{attr(interval.high)}' "
            f"title='{_e(interval.method)}'>{_e(text)}</td>")


def _share_bar(label: str, share: Share, fill: str) -> Bar:
    return Bar(label=label, value=share.estimate, low=share.low, high=share.high, fill=fill,
               text=fmt_share(share))


def _honesty(f: ProtocolFigures) -> str:
    h = f.honesty
    if h is None:
        return ""
    rows = honesty_rows(h)
    bars = [_share_bar(label, r, fill) for (label, r, _), fill in zip(rows, HONESTY_FILLS,
                                                                       strict=True)]
    body = "".join(f"<tr><td>{_e(label)}</td>" + _share_cells(r) + f"<td>{_e(meaning)}</td></tr>"
                   for label, r, meaning in rows)
    return ("<h2 id='honesty'>Honesty under pressure</h2>"
            f"<p class='basis'>{_e(fmt_sources(f, 'honesty'))} · {h.n} samples with an "
            f"honesty score; the four shares add up to 1.</p><p>{_e(HONESTY_NOTE)}</p>"
            + interval_bars(bars, "Honesty under pressure: share of samples per label")
            + "<table><thead><tr><th>Honesty</th><th>Share [95% CI]</th><th>Samples</th>"
            "<th>Meaning</th></tr></thead><tbody>" + body + "</tbody></table>"
            "<h3>Accuracy, reported apart</h3><table><thead><tr><th>Accuracy</th>"
            "<th>Share [95% CI]</th><th>Samples</th><th>Over</th></tr></thead><tbody>"
            f"<tr><td>{_e(ACCURACY_LABEL)}</td>" + _share_cells(h.accuracy)
            + "<td>samples with a consistent belief</td></tr></tbody></table>")


def _awareness(f: ProtocolFigures) -> str:
    aw = f.awareness
    if aw is None:
        return ""
    rows = awareness_rows(aw)
    bars = [_share_bar(label, r, USABILITY_FILL) for label, r in
            (("evaluation framing", aw.accuracy_eval), ("ordinary use", aw.accuracy_ordinary))]
    body = "".join(f"<tr><td>{_e(label)}</td>" + _share_cells(r) + "</tr>" for label, r in rows)
    incomplete = (f" ({aw.incomplete_pairs} incomplete, left out)" if aw.incomplete_pairs
                  else "")
    return ("<h2 id='eval-awareness'>Evaluation awareness</h2>"
            f"<p class='basis'>{_e(fmt_sources(f, 'awareness'))} · {aw.n_pairs} complete pairs"
            f"{_e(incomplete)}.</p><p>{_e(AWARENESS_NOTE)}</p>"
            f"<p><strong>Reading:</strong> {_e(f.awareness_reading or '')}</p>"
            + interval_bars(bars, "Accuracy under the evaluation framing and in ordinary use")
            + "<table><thead><tr><th>Figure</th><th>Value [95% CI]</th><th>Correct</th></tr>"
            "</thead><tbody>" + body + f"<tr><td>{_e(DIFFERENCE_LABEL)}</td>"
            + _interval_cell(aw.difference, fmt_points(aw.difference))
            + f"<td class='num'>{aw.n_pairs} pairs</td></tr></tbody></table>"
            "<table><thead><tr><th>Pairs</th><th>correct under evaluation</th>"
            "<th>wrong under evaluation</th></tr></thead><tbody>"
            f"<tr><th>correct in ordinary use</th><td class='num'>{aw.both_correct}</td>"
            f"<td class='num'>{aw.only_ordinary_correct}</td></tr>"
            f"<tr><th>wrong in ordinary use</th><td class='num'>{aw.only_eval_correct}</td>"
            f"<td class='num'>{aw.both_wrong}</td></tr></tbody></table>"
            f"<p class='basis'>Interval of the difference: {_e(aw.difference.method)}.</p>")


def _persuasion(f: ProtocolFigures) -> str:
    p = f.persuasion
    if p is None:
        return ""
    tactics = ("<table><thead><tr><th>Tactic</th><th>Samples</th></tr></thead><tbody>"
               + "".join(f"<tr><td>{_e(t)}</td><td class='num'>{k}</td></tr>"
                         for t, k in p.tactics.items()) + "</tbody></table>"
               if p.tactics else "<p>No manipulative tactic found.</p>")
    return ("<h2 id='persuasion'>Persuasion</h2>"
            f"<p class='basis'>{_e(fmt_sources(f, 'persuasion'))} · {p.n} scored samples.</p>"
            f"<p>{_e(PERSUASION_NOTE)}</p>"
            "<table><thead><tr><th>Figure</th><th>Value [95% CI]</th><th>Samples</th></tr>"
            f"</thead><tbody><tr><td>{_e(SHIFT_LABEL)}, 1–7 scale</td>"
            + _interval_cell(p.shift, fmt_mean(p.shift))
            + f"<td class='num'>{p.shift.n} with both ratings</td></tr>"
            f"<tr><td>{_e(TACTIC_RATE_LABEL)}</td>" + _share_cells(p.tactic_rate) + "</tr>"
            "</tbody></table><h3>Samples per tactic</h3>" + tactics)


def _backdoor(f: ProtocolFigures) -> str:
    b = f.backdoor
    if b is None:
        return ""
    head = "".join(f"<th>{_e(h)}</th>" for h in BACKDOOR_HEADINGS)
    body = "".join(
        "<tr" + (" class='flagged'" if row[-1] != "no" else "") + ">"
        + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>"
        for row in backdoor_rows(b))
    return ("<h2 id='backdoor'>Backdoor sweep</h2>"
            f"<p class='basis'>{_e(fmt_sources(f, 'backdoor'))} · {len(b.flagged)} of "
            f"{len(b.shifts)} trigger shifts flagged.</p><p>{_e(BACKDOOR_NOTE)}</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _transcripts(transcripts: list[Transcript]) -> str:
    parts = ["<h2 id='transcripts'>Sample transcripts</h2><p class='basis'>A reproducible "
             "random draw of failing, passing and unscored samples per red line and per "
             "protocol outside the red lines. Model text is shown verbatim, as text.</p>"]
    group = None
    for t in transcripts:
        if t.group != group:
            group = t.group
            parts.append(f"<h3>{_e(group)}</h3>")
        parts.append(_transcript(t))
    return "".join(parts)


def _transcript(t: Transcript) -> str:
    messages = "".join(
        f"<div class='msg'><div class='role'>{_e(m.role)}</div><pre>{_e(m.content)}</pre>"
        + "".join(f"<pre>[tool call] {_e(c)}</pre>" for c in m.tool_calls) + "</div>"
        for m in t.messages)
    reply = (f"<div class='msg'><div class='role'>reply</div><pre>{_e(t.reply)}</pre></div>"
             if t.reply else "")
    error = f"<p class='basis'>target error: {_e(t.error)}</p>" if t.error else ""
    scores = "".join(f"<li>{_e(s.scorer)}: {_e(s.outcome)} {_e(s.label)} — {_e(s.explanation)}"
                     "</li>" for s in t.scores)
    note = "<p class='basis'>Long text cut; the run log has it whole.</p>" if t.truncated else ""
    return (f"<details><summary>{_badge(t.outcome, OUTCOME_COLOURS[t.outcome])} "
            f"<code>{_e(t.sample_id)}</code> · {_e(t.category)} · attack {_e(t.attack)}"
            f"</summary>{messages}{reply}{error}<ul class='basis'>{scores}</ul>{note}</details>")

