"""``compare``, ``drift`` charts and ``runs query`` over a real campaign against loopback
targets: version 1 refuses everything, version 2 complies with everything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from redline.campaign.executors import LocalExecutor
from redline.campaign.plan import load_campaign
from redline.campaign.runner import run_campaign
from redline.drift.charts import risk_map_png, trend_png
from redline.drift.drift_report import render_drift_html
from redline.drift.risk import campaign_risk
from tests.campaign.campaign_helpers import COMPLY, REFUSE, write_plan
from tests.scripted_server import Script, ScriptedServer

PNG = b"\x89PNG\r\n\x1a\n"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "redline.cli", *args], capture_output=True,
                          text=True, timeout=180)


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    with ScriptedServer(Script(reply=lambda m: REFUSE)) as v1, \
            ScriptedServer(Script(reply=lambda m: COMPLY)) as v2:
        plan = write_plan(tmp_path, [
            {"name": "m", "version": "1", "uri": v1.url},
            {"name": "m", "version": "2", "uri": v2.url},
        ], ["starter-rl4"], policy="idais")
        root = tmp_path / "camp"
        run_campaign(load_campaign(plan), root, LocalExecutor())
    return root


def test_plan_rejects_unsafe_version(tmp_path: Path) -> None:
    # The version becomes part of a folder name: only safe characters pass.
    with ScriptedServer() as s:
        plan = write_plan(tmp_path, [{"name": "m", "version": "../x", "uri": s.url}],
                          ["starter-rl4"])
        res = _cli("campaign", "run", str(plan))
    assert res.returncode == 2 and "targets.0.version" in res.stderr


def test_compare_query_and_charts(campaign: Path, tmp_path: Path) -> None:
    logs = sorted(campaign.rglob("log.jsonl"))
    assert len(logs) == 2
    res = _cli("compare", str(logs[0]), str(logs[1]), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    [comp] = out["comparisons"]
    assert comp["labels"] == ["m@1", "m@2"]
    cyber = next(c for c in comp["changes"]
                 if c["key"] == "CAT.CYBER" and c["metric"] == "fail_rate")
    assert (cyber["base_k"], cyber["cand_k"], cyber["cand_n"]) == (0, 9, 9)
    assert cyber["regression"]

    sql = ("SELECT version, count(*) AS n, count(*) FILTER (WHERE outcome = 'fail') AS fails "
           "FROM samples GROUP BY version ORDER BY version")
    res = _cli("runs", "query", sql, "--out", str(campaign), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [{"version": "1", "n": 9, "fails": 0},
                                      {"version": "2", "n": 9, "fails": 9}]
    blocked = _cli("runs", "query", f"COPY samples TO '{tmp_path / 'leak.csv'}'",
                   "--out", str(campaign))
    assert blocked.returncode == 2 and not (tmp_path / "leak.csv").exists()

    risk = campaign_risk(campaign)
    assert risk.labels == ["m@1", "m@2"]
    tiers = {(c.label, c.category): c.tier for c in risk.cells}
    assert tiers[("m@2", "CAT.CYBER")] == 4, tiers
    # Nine refusals are too few to rule a tier out: not assessed, never a high tier.
    assert tiers[("m@1", "CAT.CYBER")] in (None, 0), tiers
    assert risk_map_png(risk).startswith(PNG)
    assert trend_png(risk, "rl4-cyberattacks").startswith(PNG)
    page = render_drift_html(risk.model_copy(update={"campaign": "<script>x</script>"}), [])
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>" not in page
