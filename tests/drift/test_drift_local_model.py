"""Drift with the real embedded model: a version without the defensive system prompt is a
significant regression against one with it; two runs of the same configuration are not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from bench.attacks import DEFENSIVE_SYSTEM_PROMPT

from redline.campaign.executors import LocalExecutor
from redline.campaign.plan import load_campaign
from redline.campaign.runner import run_campaign
from redline.drift.changes import compare_groups
from redline.drift.drift import drift_campaign, version_groups

SUITES = ["starter-rl3", "starter-rl4", "starter-manipulation"]
#: Enough for a refusal or the start of a compliance; keeps the generations short.
MAX_TOKENS = 24


def _plan(folder: Path, name: str, versions: dict[str, str | None]) -> Path:
    path = folder / f"{name}.yaml"
    targets = [{"name": "smollm2", "version": v, "uri": "local:smollm2",
                **({"system_prompt": p} if p else {})} for v, p in versions.items()]
    path.write_text(yaml.safe_dump({
        "name": name, "policy": "idais", "targets": targets, "suites": SUITES,
        "max_tokens": MAX_TOKENS, "concurrency": 32,
    }))
    return path


def test_drift_flags_the_undefended_version_only(tmp_path: Path) -> None:
    plan = load_campaign(_plan(tmp_path, "defence", {
        "1-defended": DEFENSIVE_SYSTEM_PROMPT, "2-undefended": None}))
    run_campaign(plan, tmp_path / "defence", LocalExecutor())
    [changed] = drift_campaign(tmp_path / "defence")
    overall = next(c for c in changed.changes
                   if c.dimension == "all" and c.metric == "fail_rate")
    assert overall.cand_rate > overall.base_rate
    assert overall.regression and overall.p_adjusted is not None and overall.p_adjusted < 0.05

    # A second, separate run of the defended configuration against the first.
    same = load_campaign(_plan(tmp_path, "repeat", {"1-defended": DEFENSIVE_SYSTEM_PROMPT}))
    run_campaign(same, tmp_path / "repeat", LocalExecutor())
    first, again = (version_groups(tmp_path / c)["smollm2"][0] for c in ("defence", "repeat"))
    unchanged = compare_groups([first, again])
    assert len(first[1]) == len(again[1]) == 27
    assert unchanged.changes and not any(c.significant for c in unchanged.changes)

    # Through the CLI, with the risk map over versions and the trend charts.
    res = subprocess.run(
        [sys.executable, "-m", "redline.cli", "drift", str(tmp_path / "defence"), "--json",
         "--html", str(tmp_path / "drift.html"), "--png-dir", str(tmp_path / "png")],
        capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["regressions"] >= 1
    page = (tmp_path / "drift.html").read_text()
    assert "smollm2@2-undefended" in page and page.count("data:image/png;base64,") >= 3
    assert (tmp_path / "png" / "risk-map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
