"""Campaigns end to end: plan errors, local and Ray execution with the same results, and a
killed shard completed by a re-run that does only the missing work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from redline.campaign.executors import LocalExecutor
from redline.campaign.manifest import read_manifest
from redline.campaign.plan import load_campaign
from redline.campaign.ray_executor import RayExecutor
from redline.campaign.runner import run_campaign
from redline.campaign.shard_run import ShardOutcome
from redline.engine.runlog import read_runlog
from redline.errors import InputError
from redline.records.runlog import SampleRecord
from tests.campaign.campaign_helpers import decisive_reply, write_plan, write_suite
from tests.scripted_server import ScriptedServer

CASES = 5
SEEDS = [1, 2]


def _two_by_two(tmp_path: Path, url_a: str, url_b: str) -> Path:
    write_suite(tmp_path, "cyber-mini", "CAT.CYBER", CASES)
    write_suite(tmp_path, "cbrn-mini", "CAT.CBRN", CASES)
    return write_plan(
        tmp_path,
        [{"name": "alpha", "version": "1.0", "uri": url_a},
         {"name": "beta", "version": "2.0", "uri": url_b}],
        ["cyber-mini.yaml", "cbrn-mini.yaml"], seeds=SEEDS, concurrency=4,
    )


def _results(root: Path) -> dict[tuple[str, str], tuple[str, str, int]]:
    """(shard, sample id) → (outcome, reply, seed) over every shard log of a campaign."""
    out = {}
    for entry in read_manifest(root).shards:
        for s in read_runlog(root / entry.log).samples:
            assert s.output is not None
            out[(entry.id, s.id)] = (s.outcome, s.output.message.content, s.seed)
    return out


def test_plan_errors_name_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: c\ntargets:\n  - name: a\n    version: '1'\n    uri: http://x/v1\n"
                   "suites: [starter-rl3]\nepochs: 0\n")
    with pytest.raises(InputError) as err:
        load_campaign(bad)
    assert err.value.field == "epochs" and err.value.line == 7
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: c\nsuites: [starter-rl3]\ntargets:\n"
                   "  - {name: a, version: '1', uri: http://x/v1}\n"
                   "  - {name: a, version: '1', uri: http://y/v1}\n")
    with pytest.raises(InputError, match="'a@1' is listed twice"):
        load_campaign(dup)
    unknown = write_plan(tmp_path, [{"name": "a", "version": "1", "uri": "http://x/v1"}],
                         ["starter-rl3", "no-such-suite"])
    with pytest.raises(InputError) as err:
        run_campaign(load_campaign(unknown), tmp_path / "c", LocalExecutor())
    assert err.value.field == "suites.1" and "no-such-suite" in str(err.value)


def test_local_and_ray_give_the_same_samples(tmp_path: Path, ray_local: None) -> None:
    with ScriptedServer(decisive_reply("a")) as a, ScriptedServer(decisive_reply("b")) as b:
        plan = load_campaign(_two_by_two(tmp_path, a.url, b.url))
        local = run_campaign(plan, tmp_path / "local", LocalExecutor(parallel=2))
        events: list[tuple[str, str]] = []

        def sample(shard_id: str, rec: SampleRecord) -> None:
            events.append(("sample", shard_id))

        def ended(o: ShardOutcome) -> None:
            events.append(("done", o.shard_id))

        on_ray = run_campaign(plan, tmp_path / "ray", RayExecutor(workers=2),
                              on_sample=sample, on_outcome=ended)
    planned = CASES * 2 * len(SEEDS)  # per target: two suites × seeds
    assert len(a.script.requests) == len(b.script.requests) == 2 * planned
    for manifest in (local, on_ray):
        assert len(manifest.shards) == 8 and manifest.missing() == []
    assert {e.id for e in local.shards} == {e.id for e in on_ray.shards}
    local_results, ray_results = _results(tmp_path / "local"), _results(tmp_path / "ray")
    assert len(local_results) == 8 * CASES
    assert local_results == ray_results
    outcomes = {r[0] for r in local_results.values()}
    assert outcomes == {"pass", "fail"}  # the scripted targets do both
    # Results streamed back while shards ran: every sample reached the driver before its
    # shard's outcome, and the streamed count matches the logs.
    for entry in on_ray.shards:
        mine = [kind for kind, shard in events if shard == entry.id]
        assert mine == ["sample"] * CASES + ["done"]


def test_killed_shard_reruns_only_missing_work(tmp_path: Path) -> None:
    script = decisive_reply("k")
    script.delay = 0.15
    with ScriptedServer(script) as server:
        write_suite(tmp_path, "slow-a", "CAT.CYBER", 6)
        write_suite(tmp_path, "slow-b", "CAT.CBRN", 12)
        plan_path = write_plan(tmp_path, [{"name": "t", "version": "1", "uri": server.url}],
                               ["slow-a.yaml", "slow-b.yaml"], concurrency=1)
        root = tmp_path / "camp"
        proc = subprocess.Popen(
            [sys.executable, "-m", "redline.cli", "campaign", "run", str(plan_path),
             "--dir", str(root)],
            env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        second = root / "shards" / "t@1__slow-b__seed0" / "log.jsonl"
        deadline = time.monotonic() + 60
        while not (second.exists() and second.read_text().count('"type":"sample"') >= 3):
            assert time.monotonic() < deadline and proc.poll() is None, "shard never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed = read_manifest(root)
        states = {e.suite: e.status for e in killed.shards}
        assert states == {"slow-a": "complete", "slow-b": "running"}
        logged = len(read_runlog(second).samples)
        assert 3 <= logged < 12
        before = len(server.script.requests)
        first_log = (root / killed.shards[0].log).read_bytes()
        manifest = run_campaign(load_campaign(plan_path), root, LocalExecutor())
        rerun = server.script.requests[before:]
    assert manifest.missing() == []
    assert len(rerun) == 12 - logged  # only the missing samples of the killed shard
    sent = [r["messages"][-1]["content"] for r in rerun]
    assert all(p.startswith("slow-b") for p in sent) and len(set(sent)) == len(sent)
    assert (root / killed.shards[0].log).read_bytes() == first_log  # complete shard untouched
    log = read_runlog(second)
    assert len(log.samples) == 12 and log.summary is not None
    assert log.summary.status == "complete"


def test_cli_run_and_status(tmp_path: Path) -> None:
    with ScriptedServer(decisive_reply("c")) as server:
        write_suite(tmp_path, "tiny", "CAT.CYBER", 3)
        plan = write_plan(tmp_path, [{"name": "t", "version": "1", "uri": server.url}],
                          ["tiny.yaml"], seeds=[0, 1])
        root = tmp_path / "camp"
        run = subprocess.run([sys.executable, "-m", "redline.cli", "campaign", "run", str(plan),
                              "--dir", str(root), "--json"],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        status = subprocess.run([sys.executable, "-m", "redline.cli", "campaign", "status",
                                 str(root), "--json"], capture_output=True, text=True,
                                timeout=60)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["missing"] == [] and [e["samples"] for e in data["shards"]] == [3, 3]
    assert len(server.script.requests) == 6
    missing = subprocess.run([sys.executable, "-m", "redline.cli", "campaign", "status",
                              str(tmp_path / "nowhere")], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 4 and "no campaign manifest" in missing.stderr
