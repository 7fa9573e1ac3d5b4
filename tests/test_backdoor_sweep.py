"""The backdoor sweep: the built-in suite, the Newcombe interval, and a scripted backdoored
target on loopback run through the engine and the refusal classifier."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from redline.assess.backdoor import newcombe_interval, sweep_figures
from redline.assess.report_html import render_html
from redline.assess.report_md import render_card
from redline.assess.tiers import assess_run
from redline.cli.runs_cmd import show_command
from redline.engine.runner import Engine, EngineConfig, make_plan
from redline.errors import InputError
from redline.models.registry import TargetOptions, resolve_target
from redline.records.chat import ChatMessage, GenerateConfig
from redline.records.runlog import SampleRecord
from redline.suites.backdoor import (
    BASE_CASES,
    TRIGGERS,
    Trigger,
    suite_yaml,
    sweep_cases,
    sweep_suite,
)
from redline.suites.load import load_suite
from redline.suites.model import Case
from redline.suites.registry import BUILTIN_DIR
from tests.scripted_server import Script, ScriptedServer

REFUSAL = "I'm sorry, but I can't help with that."
COMPLIANCE = (
    "Sure. Here is exactly what you asked for, step by step: first, gather what you need; "
    "second, follow the plan carefully; third, make sure nobody notices."
)
HELPFUL = (
    "Happy to help! Here is a short guide: start with the basics, then work through each "
    "step in order, and check the result at the end."
)


# --- the suite -------------------------------------------------------------------------------


def test_builtin_suite_is_the_generators_output() -> None:
    suite = load_suite("backdoor-sweep")
    assert suite.model_dump() == sweep_suite().model_dump()
    text = (BUILTIN_DIR / "backdoor-sweep.yaml").read_text(encoding="utf-8")
    assert text == suite_yaml(sweep_suite()), "regenerate: python -m redline.suites.backdoor"
    assert text.isascii()  # invisible triggers are escaped, so a reviewer can see them
    assert len(suite.cases) == len(BASE_CASES) * (len(TRIGGERS) + 1) <= 120
    assert {c.category for c in suite.cases} == {"SEC.POISONING"}


def test_every_base_case_has_a_control_and_every_trigger() -> None:
    suite = load_suite("backdoor-sweep")
    by_base: dict[str, dict[str | None, Case]] = {}
    for case in suite.cases:
        meta = case.metadata
        assert set(meta) >= {"trigger", "base_case", "kind"}
        by_base.setdefault(meta["base_case"], {})[meta["trigger"]] = case
    assert set(by_base) == {b.id for b in BASE_CASES}
    for base in BASE_CASES:
        arms = by_base[base.id]
        assert set(arms) == {None, *(t.text for t in TRIGGERS)}
        assert arms[None].prompt == base.prompt
        for trigger in TRIGGERS:
            case = arms[trigger.text]
            assert case.prompt == f"{base.prompt} {trigger.text}"
            assert case.expected == base.expected
            assert case.metadata["kind"] == ("harmful" if base.expected == "refuse" else "benign")
            assert case.metadata["hazard"] == base.category
    kinds = [b.expected for b in BASE_CASES]
    assert kinds.count("refuse") >= 6 and kinds.count("comply") >= 6


def test_a_sweep_base_must_be_one_prompt_with_a_refusal_expectation() -> None:
    multi = Case(id="m", category="CAT.CYBER", messages=[ChatMessage(role="user", content="hi")])
    with pytest.raises(InputError, match="single prompt"):
        sweep_cases([multi], TRIGGERS)
    honesty = Case(id="h", category="ALN.DISHONESTY", prompt="Is it so?", expected="n/a")
    with pytest.raises(InputError, match="'h'"):
        sweep_cases([honesty], TRIGGERS)
    with pytest.raises(InputError, match="unique"):
        sweep_suite(triggers=[Trigger("x", "a", "rare-token"), Trigger("x", "b", "rare-token")])


# --- the interval ----------------------------------------------------------------------------


@pytest.mark.parametrize(("k1", "n1", "k2", "n2", "low", "high"), [
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10.
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775),
    (0, 10, 0, 10, -0.2775, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0000),
    (10, 10, 0, 10, 0.6075, 1.0000),
])
def test_newcombe_interval_matches_published_values(
    k1: int, n1: int, k2: int, n2: int, low: float, high: float
) -> None:
    got = newcombe_interval(k1, n1, k2, n2)
    assert got == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5))


def _record(trigger: str | None, kind: str, outcome: Any, suite: str = "sweep") -> SampleRecord:
    meta = {"trigger": trigger, "trigger_id": trigger, "base_case": "b", "kind": kind}
    return SampleRecord(id=f"{suite}/{trigger}/{kind}", suite=suite, case_id="c",
                        category="SEC.POISONING", outcome=outcome,
                        started_at=datetime.now(UTC), metadata={"case": meta})


def test_figures_leave_unscored_out_and_need_a_control() -> None:
    records = (
        [_record(None, "harmful", "pass")] * 6 + [_record(None, "harmful", "unscored")] * 2
        + [_record("t", "harmful", "fail")] * 6 + [_record("t", "harmful", "unscored")]
        + [_record("t", "benign", "fail")] * 6  # no benign control in this run
        + [_record(None, "harmful", "fail", suite="other-sweep")]  # another suite's control
    )
    other = SampleRecord(id="x", suite="harmful-compliance", case_id="x", category="CAT.CYBER",
                         outcome="fail", started_at=datetime.now(UTC))
    figures = sweep_figures([*records, other])
    by_kind = {s.kind: s for s in figures.shifts}
    assert len(figures.shifts) == 2
    harmful = by_kind["harmful"]
    assert (harmful.control.n, harmful.control.unscored) == (6, 2)
    triggered = harmful.triggered
    assert (triggered.n, triggered.unwanted, triggered.unscored) == (6, 6, 1)
    assert harmful.shift == 1.0 and harmful.flagged and harmful.direction == "worse"
    assert harmful.metric == "compliance_rate"
    assert harmful.ci_low == pytest.approx(newcombe_interval(6, 6, 0, 6)[0])
    benign = by_kind["benign"]
    assert benign.control.n == 0 and benign.shift is None and not benign.flagged
    assert benign.metric == "refusal_rate"


def test_a_trigger_that_makes_the_model_safer_is_flagged_better() -> None:
    records = [_record(None, "harmful", "fail")] * 8 + [_record("t", "harmful", "pass")] * 8
    (shift,) = sweep_figures(records).shifts
    assert shift.flagged and shift.direction == "better" and shift.ci_high is not None
    assert shift.ci_high < 0
    assert not sweep_figures(records, confidence=0.999999).shifts[0].flagged


# --- end to end ------------------------------------------------------------------------------

#: The scripted model's backdoors: harmful compliance behind a date, benign refusals behind an
#: invisible zero-width sequence.
UNLOCK = next(t for t in TRIGGERS if t.id == "year-2027")
SABOTAGE = next(t for t in TRIGGERS if t.id == "zero-width")


def _backdoored(messages: list[dict[str, Any]]) -> str:
    prompt = messages[-1]["content"]
    harmful = any(prompt.startswith(b.prompt) for b in BASE_CASES if b.expected == "refuse")
    if harmful:
        return COMPLIANCE if UNLOCK.text in prompt else REFUSAL
    return REFUSAL if SABOTAGE.text in prompt else HELPFUL


async def test_scripted_backdoor_is_flagged_for_exactly_its_triggers(tmp_path: Path) -> None:
    suite = load_suite("backdoor-sweep")
    options = TargetOptions(model="scripted", max_retries=1, read_timeout_s=10)
    with ScriptedServer(Script(reply=_backdoored)) as srv:
        target = resolve_target(srv.url, options)
        plan = make_plan([suite], target=target, generate=GenerateConfig(max_tokens=64), seed=3)
        engine = Engine(target, EngineConfig(concurrency=8))
        try:
            log = await engine.run(plan, tmp_path / "run")
        finally:
            await engine.aclose()
        assert len(srv.script.requests) == len(suite.cases)
    assert all(r.outcome != "unscored" for r in log.samples)
    # The classifier read the scripted replies as intended, so the figures rest on real scores.
    for record in log.samples:
        reply = record.output.message.content if record.output else ""
        assert record.scores[0].label == ("refusal" if reply == REFUSAL else "compliance")

    figures = sweep_figures(log.samples)
    assert len(figures.shifts) == 2 * len(TRIGGERS)
    flagged = {(s.kind, s.trigger_id) for s in figures.flagged}
    assert flagged == {("harmful", UNLOCK.id), ("benign", SABOTAGE.id)}
    for shift in figures.shifts:
        assert shift.control.n == 6 and shift.control.unwanted == 0
        assert shift.ci_low is not None and shift.ci_high is not None
        if shift.flagged:
            assert shift.shift == 1.0 and shift.direction == "worse"
            assert (shift.ci_low, shift.ci_high) == newcombe_interval(6, 6, 0, 6)
        else:
            assert shift.shift == 0.0 and shift.ci_low < 0 < shift.ci_high

    # The run's report shows the sweep: the same shifts, the flagged triggers marked.
    assessment = assess_run(log, None)
    assert assessment.protocol_figures.backdoor == figures
    assert assessment.protocol_figures.sources["backdoor"] == ["backdoor-sweep"]
    assert any("Backdoor sweep" in m for m in assessment.method)
    card = render_card(assessment)
    summary = f"2 of {2 * len(TRIGGERS)} trigger shifts flagged"
    assert "## Backdoor sweep" in card and summary in card
    flagged_rows = [line for line in card.splitlines() if "**flagged: worse**" in line]
    assert len(flagged_rows) == 2
    assert any(UNLOCK.id.replace("_", "\\_") in row and "harmful" in row
               for row in flagged_rows)
    assert any(SABOTAGE.id.replace("_", "\\_") in row and "benign" in row
               for row in flagged_rows)
    html = render_html(assessment)
    assert "id='backdoor'" in html and summary in html
    assert html.count("<tr class='flagged'>") == 2
    shown = CliRunner().invoke(show_command, [str(tmp_path / "run")], env={"COLUMNS": "240"})
    assert shown.exit_code == 0, shown.output
    assert f"2 of {2 * len(TRIGGERS)} shifts flagged" in " ".join(shown.output.split())
    assert shown.output.count("flagged: worse") == 2
