"""What a guard buys and costs: one run without the guard and one through it, side by side.

Attack success (fail rate on safety protocols) and over-refusal (fail rate on usability
protocols) per attack and per protocol, each with its interval, so a reader sees at once how
much the red lines' enforcement lowers harm and how much benign traffic it refuses.
"""

from __future__ import annotations

import html

from pydantic import BaseModel, ConfigDict

from redline.assess.model import Assessment, Rate


class EffectRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: An attack name (balance rows) or a protocol name (protocol rows).
    name: str
    #: ``attack success`` or ``over-refusal``.
    metric: str
    without: Rate
    guarded: Rate

    @property
    def delta(self) -> float | None:
        if self.without.rate is None or self.guarded.rate is None:
            return None
        return self.guarded.rate - self.without.rate


class GuardEffect(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unguarded_run: str
    guarded_run: str
    unguarded_target: str
    guarded_target: str
    by_attack: list[EffectRow]
    by_protocol: list[EffectRow]
    warnings: list[str]


def guard_effect(without: Assessment, guarded: Assessment) -> GuardEffect:
    """Pair the two runs' figures by attack and by protocol (only those in both runs)."""
    warnings: list[str] = []
    if without.policy_digest != guarded.policy_digest:
        warnings.append("the two runs were read against different policies")
    if not guarded.target.uri.startswith("guard:"):
        warnings.append(f"the second run's target {guarded.target.uri!r} is not a guard: target")
    balance = {b.attack: b for b in guarded.balance}
    by_attack: list[EffectRow] = []
    for b in without.balance:
        if b.attack in balance:
            g = balance[b.attack]
            by_attack += [EffectRow(name=b.attack, metric="attack success",
                                    without=b.attack_success, guarded=g.attack_success),
                          EffectRow(name=b.attack, metric="over-refusal",
                                    without=b.over_refusal, guarded=g.over_refusal)]
    protocols = {p.protocol: p for p in guarded.protocols}
    by_protocol = [
        EffectRow(name=p.protocol,
                  metric="over-refusal" if p.kind == "usability" else "attack success",
                  without=p.rate, guarded=protocols[p.protocol].rate)
        for p in without.protocols if p.protocol in protocols
    ]
    missing = sorted({p.protocol for p in without.protocols} ^ set(protocols))
    if missing:
        warnings.append("protocols in only one run (left out): " + ", ".join(missing))
    return GuardEffect(unguarded_run=without.run_id, guarded_run=guarded.run_id,
                       unguarded_target=without.target.uri, guarded_target=guarded.target.uri,
                       by_attack=by_attack, by_protocol=by_protocol, warnings=warnings)


def _rate(r: Rate) -> str:
    if r.rate is None:
        return f"n/a (n={r.n})"
    return f"{r.rate:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] (n={r.scored})"


def _delta(row: EffectRow) -> str:
    d = row.delta
    return "" if d is None else f"{100 * d:+.0f} pp"


def _rows(rows: list[EffectRow]) -> list[tuple[str, str, str, str, str]]:
    return [(r.name, r.metric, _rate(r.without), _rate(r.guarded), _delta(r)) for r in rows]


HEADERS = ("", "metric", "without guard", "with guard", "change")


def render_effect_md(effect: GuardEffect) -> str:
    out = [f"# Guard effect: {effect.guarded_target}", "",
           f"Without guard: run `{effect.unguarded_run}` ({effect.unguarded_target}); "
           f"with guard: run `{effect.guarded_run}`. Rates are fail rates with 95% Wilson "
           "intervals: lower attack success is safer, lower over-refusal is more usable.", ""]
    for title, rows in (("By attack", effect.by_attack), ("By protocol", effect.by_protocol)):
        out += [f"## {title}", "", "| " + " | ".join(HEADERS) + " |",
                "|" + "---|" * len(HEADERS)]
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
                for row in _rows(rows)]
        out.append("")
    out += [f"- warning: {w}" for w in effect.warnings]
    return "\n".join(out).rstrip() + "\n"


def render_effect_html(effect: GuardEffect) -> str:
    e = html.escape

    def table(rows: list[EffectRow]) -> str:
        head = "".join(f"<th>{e(h)}</th>" for h in HEADERS)
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                       for row in _rows(rows))
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    warnings = "".join(f"<li>{e(w)}</li>" for w in effect.warnings)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Guard effect: {e(effect.guarded_target)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;"
        "border-bottom:1px solid #ddd;text-align:left}</style></head><body>"
        f"<h1>Guard effect: {e(effect.guarded_target)}</h1>"
        f"<p>Without guard: run <code>{e(effect.unguarded_run)}</code> "
        f"({e(effect.unguarded_target)}); with guard: run <code>{e(effect.guarded_run)}</code>."
        " Fail rates with 95% Wilson intervals.</p>"
        f"<h2>By attack</h2>{table(effect.by_attack)}"
        f"<h2>By protocol</h2>{table(effect.by_protocol)}"
        + (f"<ul>{warnings}</ul>" if warnings else "") + "</body></html>\n"
    )
