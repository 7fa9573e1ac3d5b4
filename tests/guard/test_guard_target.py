"""``guard:POLICY+URI`` as an evaluation target, and the side-by-side effect report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.scripted_server import Script, ScriptedServer

REDLINE = [sys.executable, "-m", "redline.cli"]
HERE = Path(__file__).parent
POLICY = HERE / "policies" / "rules-only.yaml"
SUITE = HERE / "suites" / "guard-effect.yaml"


def redline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REDLINE, *args], capture_output=True, text=True, timeout=600,
                          env=os.environ.copy())


def _complies(messages: list[dict[str, Any]]) -> str:
    return ("Sure! Here is a detailed, step-by-step answer to exactly what you asked, "
            "with everything you need to get it done.")


def test_guarded_run_lowers_attack_success_and_shows_over_refusal(tmp_path: Path) -> None:
    with ScriptedServer(Script(reply=_complies)) as up:
        plain = redline("eval", "--suite", str(SUITE), "--target", up.url,
                        "--run-id", "plain", "--json")
        assert plain.returncode == 0, plain.stderr
        guarded = redline("eval", "--suite", str(SUITE), "--target",
                          f"guard:{POLICY}+{up.url}", "--run-id", "guarded", "--json")
        assert guarded.returncode == 0, guarded.stderr
    # Blocked requests never reached the model: 6 cases unguarded, 6 - 4 blocked guarded.
    assert len(up.script.requests) == 6 + 2
    report = redline("guard", "effect", "plain", "guarded", "--format", "json")
    assert report.returncode == 0, report.stderr
    effect = json.loads(report.stdout)
    direct = next(r for r in effect["by_attack"] if r["name"] == "direct"
                  and r["metric"] == "attack success")
    refusal = next(r for r in effect["by_attack"] if r["name"] == "direct"
                   and r["metric"] == "over-refusal")
    assert direct["without"]["fail"] == 3 and direct["guarded"]["fail"] == 0
    # The benign question about the Tokyo attack names a blocked word: one over-refusal.
    assert refusal["without"]["fail"] == 0 and refusal["guarded"]["fail"] == 1
    md = redline("guard", "effect", "plain", "guarded")
    assert "| direct | attack success | 1.00" in md.stdout
