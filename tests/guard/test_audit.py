"""The hash-chained audit log: tampering is found and named, writers are exclusive."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redline.errors import InputError, VerificationError
from redline.evidence.canonical import canonical_bytes, sha256_hex
from redline.guard.audit import (
    GENESIS,
    AuditLog,
    AuditLogLockedError,
    AuditRecord,
    checkpoint_message,
    verify_audit,
)

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key()
#: Records written by ``_write`` (plus its start record and checkpoints every 5).
RECORDS = 12


def _write(path: Path, key: Ed25519PrivateKey | None = KEY) -> None:
    with AuditLog(path, signing_key=key, checkpoint_every=5) as log:
        for i in range(RECORDS):
            log.append("check", {"i": i, "tripwire": "bio.uplift", "score": i / 20})


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _rehash(record: dict[str, object]) -> dict[str, object]:
    body = {k: v for k, v in record.items() if k != "hash"}
    return {**body, "hash": sha256_hex(canonical_bytes(body))}


def _dump(record: dict[str, object]) -> bytes:
    return canonical_bytes(record) + b"\n"


def test_a_fresh_log_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path)
    report = verify_audit(path, PUBLIC)
    records = [AuditRecord.model_validate_json(line) for line in _lines(path)]
    assert report.ok and report.problem is None and report.signatures_verified
    assert [r.seq for r in records] == list(range(len(records)))
    assert records[0].kind == "start" and records[0].prev == GENESIS
    assert records[-1].kind == "checkpoint" and report.signed_through_seq == records[-2].seq
    assert report.checkpoints == sum(r.kind == "checkpoint" for r in records) >= 3
    assert report.records == len(records) and report.head == records[-1].hash
    report.raise_for_problem()


@pytest.mark.parametrize("line", [3, 7])
def test_edited_record(tmp_path: Path, line: int) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path)
    lines = _lines(path)
    lines[line - 1] = lines[line - 1].replace(b'"tripwire":"bio.uplift"', b'"tripwire":"none"')
    path.write_bytes(b"".join(lines))
    report = verify_audit(path)
    assert not report.ok and report.problem is not None
    assert (report.problem.line, report.problem.check) == (line, "edited")
    with pytest.raises(VerificationError, match=f"audit.jsonl:{line}: edited") as err:
        report.raise_for_problem()
    assert err.value.exit_code == 5


def test_edited_and_rehashed_record_breaks_the_chain_after_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path)
    lines = _lines(path)
    record = json.loads(lines[2])
    record["data"]["score"] = 0.0
    lines[2] = _dump(_rehash(record))
    path.write_bytes(b"".join(lines))
    problem = verify_audit(path).problem
    assert problem is not None and (problem.line, problem.check) == (4, "broken_chain")


def test_deleted_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path)
    lines = _lines(path)
    del lines[3]
    path.write_bytes(b"".join(lines))
    problem = verify_audit(path).problem
    assert problem is not None and (problem.line, problem.check) == (4, "deleted")
    assert "1 record(s) missing" in problem.message


def test_reordered_records(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path)
    lines = _lines(path)
    lines[3], lines[4] = lines[4], lines[3]
    path.write_bytes(b"".join(lines))
    problem = verify_audit(path).problem
    assert problem is not None and (problem.line, problem.check) == (4, "reordered")


def test_truncation_before_the_last_checkpoint_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path)
    lines = _lines(path)
    # Cut at a checkpoint boundary, so what is left is a well-formed shorter chain.
    last_cp = max(i for i, line in enumerate(lines[:-1]) if b'"kind":"checkpoint"' in line)
    path.write_bytes(b"".join(lines[: last_cp + 1]))
    report = verify_audit(path, PUBLIC)
    assert report.problem is not None and report.problem.check == "truncated"
    # Without the head file a signed log cannot rule truncation out.
    path.with_name(path.name + ".head").unlink()
    problem = verify_audit(path, PUBLIC).problem
    assert problem is not None and problem.check == "missing_head"


def test_rechaining_without_the_key_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path)
    records = [json.loads(line) for line in _lines(path)]
    records[2]["data"]["score"] = 0.0
    prev, forger = GENESIS, Ed25519PrivateKey.generate()
    for record in records:  # re-chain everything, signing checkpoints with another key
        record["prev"] = prev
        if record["kind"] == "checkpoint":
            data = record["data"]
            data["head"] = prev
            signature = forger.sign(checkpoint_message(data["through_seq"], prev))
            data["signature"] = base64.b64encode(signature).decode()
            head = data
        record.update(_rehash(record))
        prev = str(record["hash"])
    path.write_bytes(b"".join(_dump(r) for r in records))
    path.with_name(path.name + ".head").write_bytes(canonical_bytes(head))
    assert verify_audit(path).ok  # without the public key the forgery is consistent
    problem = verify_audit(path, PUBLIC).problem
    assert problem is not None and problem.check == "bad_checkpoint"
    assert problem.message == "signature does not verify"
    assert problem.line == 1 + next(i for i, r in enumerate(records)
                                    if r["kind"] == "checkpoint")


def test_torn_final_line_is_reported_and_cut_on_restart(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path, key=None)
    count = len(_lines(path))
    with path.open("ab") as fh:
        fh.write(b'{"seq":99,"ts":1.0,"kind":"che')
    problem = verify_audit(path).problem
    assert problem is not None and (problem.line, problem.check) == (count + 1, "torn_line")
    with AuditLog(path) as log:
        start = log.append("check", {"after": "crash"})
    assert start.seq == count + 1
    records = [AuditRecord.model_validate_json(line) for line in _lines(path)]
    restart = records[count]
    assert restart.kind == "start" and restart.data["torn_tail"]["bytes"] == 30
    assert verify_audit(path).ok


def test_restart_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        first = [log.append("decision", {"n": n}) for n in range(3)]
    with AuditLog(path) as log:
        second = log.append("decision", {"n": 3})
    records = [AuditRecord.model_validate_json(line) for line in _lines(path)]
    assert [r.seq for r in records] == list(range(6))
    assert records[4].kind == "start" and records[4].data["resumed_after_seq"] == 3
    assert records[4].prev == first[-1].hash and second.prev == records[4].hash
    assert verify_audit(path).ok


def test_two_writers_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    script = ("import sys, time\nfrom redline.guard.audit import AuditLog\n"
              "log = AuditLog(sys.argv[1])\nprint('open', flush=True)\n"
              "sys.stdin.readline()\nlog.close()\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "open"
    with pytest.raises(AuditLogLockedError, match=f"pid {proc.pid}"):
        AuditLog(path)
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(timeout=60) == 0
    with AuditLog(path) as log:
        with pytest.raises(AuditLogLockedError, match="one writer per file"):
            AuditLog(path)
        log.append("check", {})
    assert verify_audit(path).ok


async def test_concurrent_coroutines_append_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)

    async def writer(w: int) -> None:
        for n in range(50):
            log.append("check", {"writer": w, "n": n})
            await asyncio.sleep(0)

    await asyncio.gather(*(writer(w) for w in range(8)))
    log.close()
    report = verify_audit(path)
    assert report.ok and report.records == 1 + 8 * 50


def test_records_reach_the_file_without_close(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append("review", {"id": "r1"})
    deadline = time.monotonic() + 30
    while b'"id":"r1"' not in path.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert b'"id":"r1"' in path.read_bytes()
    log.close()


def test_wrong_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path)
    problem = verify_audit(path, Ed25519PrivateKey.generate().public_key()).problem
    assert problem is not None and problem.check == "bad_checkpoint"
    assert "not the given key" in problem.message


def test_bad_records_are_refused_without_breaking_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        with pytest.raises(InputError, match="checkpoint"):
            log.append("checkpoint", {"head": "forged"})
        with pytest.raises(InputError, match="kind"):
            log.append("Not A Kind!", {})
        with pytest.raises(InputError, match="RFC 8785"):
            log.append("check", {"score": float("nan")})
        log.append("check", {"ok": True})
    report = verify_audit(path)
    assert report.ok and report.records == 2
