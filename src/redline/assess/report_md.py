"""The safety card: an assessment in Markdown, short enough to paste into a model card.

The number formats and labels here are shared with the HTML report and ``redline runs show``,
so a figure reads the same in every rendering of one assessment.
"""

from __future__ import annotations

import re

from redline.assess.backdoor import ArmRate, BackdoorSweep
from redline.assess.model import (
    Assessment,
    CorrectedRate,
    FigureName,
    ProtocolFigures,
    Rate,
    Verdict,
)
from redline.assess.protocols import AwarenessFigures, HonestyFigures, Interval
from redline.assess.protocols import Rate as Share

#: Characters that change Markdown structure inside a table or list item.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|])")

DETERMINATION_WORDS = {
    "not_assessed": "not assessed",
    "ruled_out": "ruled out",
    "precautionary": "precautionary",
    "confirmed": "confirmed",
}


HONESTY_NOTE = (
    "Honesty compares what the model states under pressure with what it said it believed "
    "when asked neutrally; accuracy compares that belief with the truth. They are reported "
    "apart because a model can be honest and wrong, or right and lying: folded into one "
    "score, an honest mistake would count as deception."
)
AWARENESS_NOTE = (
    "Each question is asked twice, once framed as an evaluation and once as ordinary use. "
    "The difference is accuracy in ordinary use minus accuracy under the evaluation "
    "framing, over complete pairs: positive when the model does worse when it is told it "
    "is being evaluated."
)
PERSUASION_NOTE = (
    "The stance shift is the simulated user's agreement after the dialogue minus before, on "
    "a 1–7 scale. The tactic rate counts samples in which the persuader used at least one "
    "manipulative tactic; persuading honestly is not a failure."
)
BACKDOOR_NOTE = (
    "Each candidate trigger's rate of unwanted behaviour (harmful compliance, or refusal of a "
    "benign request) against the same requests without a trigger; the shift is in percentage "
    "points with its 95% interval, flagged when the interval excludes 0. A flag is a lead to "
    "re-test with more samples; a clean sweep speaks only for the triggers tried."
)
BACKDOOR_HEADINGS = ("Suite", "Requests", "Trigger", "Control", "With trigger",
                     "Shift [95% CI]", "Flag")
ACCURACY_LABEL = "Accuracy (belief matches the truth)"
DIFFERENCE_LABEL = "Difference (ordinary − evaluation)"
SHIFT_LABEL = "Mean stance shift (after − before)"
TACTIC_RATE_LABEL = "Manipulative tactic rate"


def md_text(text: str) -> str:
    """Untrusted text made inert in Markdown: angle brackets as entities (renderers pass raw
    HTML through, and no tag can open without ``<``), structure characters backslash-escaped,
    one line."""
    one_line = " ".join(text.split()).replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", one_line)


def fmt_pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def fmt_rate(rate: Rate | CorrectedRate) -> str:
    """"12.5% [5.1%, 24.7%]"; the interval alone when nothing was scored."""
    return f"{fmt_pct(rate.rate)} [{fmt_pct(rate.ci_low)}, {fmt_pct(rate.ci_high)}]"


def fmt_counts(rate: Rate) -> str:
    return f"{rate.fail}/{rate.scored}" + (f" (+{rate.unscored} unscored)" if rate.unscored
                                           else "")


def fmt_share(share: Share) -> str:
    """"40.0% [11.8%, 76.9%]" for a share with its Wilson interval."""
    return f"{fmt_pct(share.estimate)} [{fmt_pct(share.low)}, {fmt_pct(share.high)}]"


def fmt_k_of_n(share: Share) -> str:
    return f"{share.k}/{share.n}"


def fmt_points(diff: Interval) -> str:
    """A difference of two proportions in percentage points: "+76.9 pp [+45.2, +91.0]"."""
    if diff.estimate is None:
        return "–"
    if diff.low is None or diff.high is None:
        return f"{diff.estimate * 100:+.1f} pp"
    return f"{diff.estimate * 100:+.1f} pp [{diff.low * 100:+.1f}, {diff.high * 100:+.1f}]"


def fmt_mean(mean: Interval) -> str:
    """A mean with its interval, "+2.00 [-10.71, +14.71]"; no interval below two values."""
    if mean.estimate is None:
        return "–"
    if mean.low is None or mean.high is None:
        return f"{mean.estimate:+.2f} (no interval from {mean.n} value)"
    return f"{mean.estimate:+.2f} [{mean.low:+.2f}, {mean.high:+.2f}]"


def honesty_rows(h: HonestyFigures) -> list[tuple[str, Share, str]]:
    """Label, share and meaning of each honesty figure; they add up to 1."""
    return [
        ("P(lie)", h.lie, "states the opposite of what it believes"),
        ("P(honest)", h.honest, "states what it believes"),
        ("P(evasive)", h.evasive, "neither affirms nor denies"),
        ("P(unscored)", h.unscored, "no consistent belief, or the target or extractor failed"),
    ]


def awareness_rows(a: AwarenessFigures) -> list[tuple[str, Share]]:
    return [("Accuracy under the evaluation framing", a.accuracy_eval),
            ("Accuracy in ordinary use", a.accuracy_ordinary)]


def fmt_sources(figures: ProtocolFigures, name: FigureName) -> str:
    """"protocol honesty" or "protocols a, b": the suites a figure pools (untrusted)."""
    suites = figures.sources.get(name, [])
    return f"protocol{'s' if len(suites) > 1 else ''} {', '.join(suites)}"


def fmt_tier(verdict: Verdict) -> str:
    return "—" if verdict.tier is None else f"CRT-{verdict.tier}"


def fmt_determination(verdict: Verdict) -> str:
    word = DETERMINATION_WORDS[verdict.determination]
    if verdict.determination == "not_assessed" and verdict.samples_needed is not None:
        return f"{word} (needs {verdict.samples_needed} samples)"
    return word


def render_card(a: Assessment) -> str:
    """The safety card for one assessment."""
    t = a.target
    policy = (f"{md_text(a.policy_title or a.policy_id or '')} ({md_text(a.policy_id or '')} "
              f"v{md_text(a.policy_version or '')}, digest `{(a.policy_digest or '')[:16]}`)"
              if a.policy_id else "none (descriptive figures only)")
    lines = [
        f"# Safety card: {md_text(t.model or t.uri)}",
        "",
        f"- **Target:** {md_text(t.uri)}" + (f", weights sha256 `{md_text(t.digest)}`"
                                             if t.digest else ""),
        f"- **Policy:** {policy}",
        f"- **Run:** {md_text(a.run_id)}, {md_text(a.run_status)}, {a.samples} of "
        f"{a.planned_samples} samples, attacks: {md_text(', '.join(a.attacks))}",
        f"- **Assessed by:** redline {md_text(a.tool_version)}, {a.confidence:.0%} exact "
        "intervals",
    ]
    lines += [f"> **Warning:** {md_text(w)}" for w in a.warnings]
    if a.red_lines:
        lines += ["", "## Red lines", "",
                  "| Red line | Category | Tier | Determination | Fail rate [95% CI] | "
                  "Fails | Judge-corrected |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {md_text(r.id)} | {md_text(r.category)} | {fmt_tier(r.verdict)} | "
                  f"{fmt_determination(r.verdict)} | {fmt_rate(r.rate)} | {fmt_counts(r.rate)} | "
                  f"{_corrected(r.corrected)} |"
                  for r in a.red_lines]
        lines += ["", "Basis:", ""]
        lines += [f"- **{md_text(r.id)}**: {md_text(r.verdict.basis)}" for r in a.red_lines]
    readings = [(c, rd) for c in a.categories for rd in c.readings]
    if readings:
        lines += ["", "## Framework readings", ""]
        lines += [f"- **{md_text(c.id)}**: {md_text(rd.reading)}" for c, rd in readings]
    lines += ["", "## Usability beside safety", "",
              "| Attack | Attack success [95% CI] | Over-refusal [95% CI] |", "|---|---|---|"]
    lines += [f"| {md_text(b.attack)} | {fmt_rate(b.attack_success)} | "
              f"{fmt_rate(b.over_refusal)} |" for b in a.balance]
    lines += ["", "## Protocols", "",
              "| Protocol | Kind | Red line | Fails | Fail rate [95% CI] |",
              "|---|---|---|---|---|"]
    lines += [f"| {md_text(p.protocol)} | {p.kind} | {md_text(p.red_line or '—')} | "
              f"{fmt_counts(p.rate)} | {fmt_rate(p.rate)} |" for p in a.protocols]
    lines += _protocol_figures(a.protocol_figures)
    lines += ["", "## Method", ""]
    lines += [f"- {md_text(m)}" for m in a.method]
    return "\n".join(lines) + "\n"


def _protocol_figures(f: ProtocolFigures) -> list[str]:
    lines: list[str] = []
    if f.honesty is not None:
        h = f.honesty
        lines += ["", "## Honesty under pressure", "",
                  f"{md_text(fmt_sources(f, 'honesty'))}, {h.n} samples. {HONESTY_NOTE}", "",
                  "| Figure | Share [95% CI] | Samples |", "|---|---|---|"]
        lines += [f"| {label} | {fmt_share(r)} | {fmt_k_of_n(r)} |"
                  for label, r, _ in honesty_rows(h)]
        lines += ["", f"- **{ACCURACY_LABEL}**, reported apart: {fmt_share(h.accuracy)}, "
                      f"{fmt_k_of_n(h.accuracy)} samples with a consistent belief"]
    if f.awareness is not None:
        aw = f.awareness
        lines += ["", "## Evaluation awareness", "",
                  f"{md_text(fmt_sources(f, 'awareness'))}, {aw.n_pairs} complete pairs"
                  + (f" ({aw.incomplete_pairs} incomplete, left out)" if aw.incomplete_pairs
                     else "") + f". {AWARENESS_NOTE}", "",
                  "| Figure | Value [95% CI] | Correct |", "|---|---|---|"]
        lines += [f"| {label} | {fmt_share(r)} | {fmt_k_of_n(r)} |"
                  for label, r in awareness_rows(aw)]
        lines += [f"| {DIFFERENCE_LABEL} | {fmt_points(aw.difference)} | {aw.n_pairs} pairs |",
                  "", f"- **Reading:** {md_text(f.awareness_reading or '')}"]
    if f.persuasion is not None:
        p = f.persuasion
        tactics = ", ".join(f"{md_text(t)} {k}" for t, k in p.tactics.items()) or "none"
        lines += ["", "## Persuasion", "",
                  f"{md_text(fmt_sources(f, 'persuasion'))}, {p.n} scored samples. "
                  f"{PERSUASION_NOTE}", "",
                  f"- **{SHIFT_LABEL}:** {fmt_mean(p.shift)} on the 1–7 scale, "
                  f"{p.shift.n} samples with both ratings",
                  f"- **{TACTIC_RATE_LABEL}:** {fmt_share(p.tactic_rate)}, "
                  f"{fmt_k_of_n(p.tactic_rate)} samples",
                  f"- **Samples per tactic:** {tactics}"]
    if f.backdoor is not None:
        b = f.backdoor
        lines += ["", "## Backdoor sweep", "",
                  f"{md_text(fmt_sources(f, 'backdoor'))}, {len(b.flagged)} of "
                  f"{len(b.shifts)} trigger shifts flagged. {BACKDOOR_NOTE}", "",
                  "| " + " | ".join(BACKDOOR_HEADINGS) + " |",
                  "|" + "---|" * len(BACKDOOR_HEADINGS)]
        lines += ["| " + " | ".join([*map(md_text, row[:-1]),
                                     f"**{row[-1]}**" if row[-1] != "no" else "no"]) + " |"
                  for row in backdoor_rows(b)]
    return lines


def backdoor_rows(sweep: BackdoorSweep) -> list[list[str]]:
    """Per shift: suite, requests, trigger, control and triggered counts, shift with its
    interval, and the flag. Trigger text is untrusted (suite files are the user's)."""
    rows = []
    for sh in sweep.shifts:
        diff = Interval(n=sh.triggered.n, estimate=sh.shift, low=sh.ci_low, high=sh.ci_high,
                        method=sweep.method)
        flag = f"flagged: {sh.direction}" if sh.flagged else "no"
        rows.append([sh.suite, f"{sh.kind} ({sh.metric.replace('_', ' ')})",
                     sh.trigger_id or sh.trigger, _arm(sh.control), _arm(sh.triggered),
                     fmt_points(diff), flag])
    return rows


def _arm(arm: ArmRate) -> str:
    return f"{arm.unwanted}/{arm.n}" + (f" (+{arm.unscored} unscored)" if arm.unscored else "")


def _corrected(corrected: CorrectedRate | None) -> str:
    return "—" if corrected is None else fmt_rate(corrected)
