"""Evidence: canonical JSON and Merkle vectors, keys, DSSE, attest → reveal → verify on real
run logs from the engine against a scripted loopback server, and tampering of every kind."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from redline.engine.runlog import RunLog, read_runlog
from redline.engine.runner import Engine, EngineConfig, make_plan
from redline.errors import InputError, NotFoundError, RedlineError
from redline.evidence import (
    CHECKS,
    EMPTY_ROOT,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    MerkleTree,
    VerifyReport,
    attest_run,
    canonical_bytes,
    disclosure_json_schema,
    draw_indices,
    dsse,
    generate_keypair,
    key_id,
    leaf_data,
    leaf_hash,
    load_private_key,
    load_public_key,
    reveal,
    statement_json_schema,
    verify_evidence,
    verify_inclusion,
)
from redline.evidence.attest import model_subject, tiers_function
from redline.evidence.canonical import loads_strict
from redline.evidence.statement import statement_from_payload
from redline.models.errors import TargetUnreachableError
from redline.models.registry import TargetOptions, resolve_target
from redline.policy import load_policy
from redline.records.chat import GenerateConfig
from redline.records.runlog import OutcomeCounts, SampleRecord, TargetInfo
from redline.suites.model import Case, PluginSpec, Suite
from tests.scripted_server import Script, ScriptedServer

VECTORS = Path(__file__).parent / "vectors"
FAST = TargetOptions(model="scripted", max_retries=0, read_timeout_s=5,
                     extra={"backoff_base_s": 0.01})


# --------------------------------------------------------------------------- canonical JSON

def _vectors(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("vector", _vectors("canonical.json")["vectors"], ids=lambda v: v["name"])
def test_canonical_json_vectors(vector: dict[str, str]) -> None:
    assert canonical_bytes(json.loads(vector["input"])) == vector["expected"].encode("utf-8")


def test_canonical_number_table_rfc8785_appendix_b() -> None:
    for row in _vectors("canonical.json")["number_table"]:
        value = struct.unpack(">d", bytes.fromhex(row["ieee754"]))[0]
        assert canonical_bytes(value) == row["expected"].encode(), row


@pytest.mark.parametrize("vector", _vectors("canonical.json")["rejected"], ids=lambda v: v["name"])
def test_canonical_refuses_what_json_cannot_carry(vector: dict[str, str]) -> None:
    value = (struct.unpack(">d", bytes.fromhex(vector["ieee754"]))[0] if "ieee754" in vector
             else json.loads(vector["input"]))
    with pytest.raises(InputError, match="RFC 8785"):
        canonical_bytes(value)


#: Any code point, with the ones where encoders disagree (lone surrogates, non-BMP characters
#: that sort differently by UTF-16 unit, C0 controls) drawn often.
_chars = (st.characters(codec=None, exclude_categories=())
          | st.sampled_from(["\ud800", "\udfff", "\ue000", "\uffff", "\U0001f600", "\x00",
                             "\x1f", "\x7f", '"', "\\", "\u2028"]))
_json_scalars = (
    st.none() | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0.5, 1e-4, 9.99e-5, 1e-7, 1e16, 1e21, 2.0**53, 2.0**53 + 2, -0.0, 5.0])
    | st.text(alphabet=_chars, max_size=12)
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(alphabet=_chars, max_size=6), inner,
                      max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_json_values)
def test_canonical_fast_path_writes_the_reference_bytes(value: Any) -> None:
    """The C-encoder path must write exactly what the reference RFC 8785 code writes, and
    refuse exactly what it refuses (NaN, infinities, unsafe integers, lone surrogates)."""
    try:
        expected: bytes | None = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        expected = None
    if expected is None:
        with pytest.raises(InputError, match="RFC 8785"):
            canonical_bytes(value)
    else:
        assert canonical_bytes(value) == expected


def test_canonical_pydantic_models_use_wire_names() -> None:
    counts = OutcomeCounts(n=3, fail=1, pass_=1, unscored=1)
    assert canonical_bytes(counts) == b'{"fail":1,"n":3,"pass":1,"unscored":1}'
    nested = {"z": counts, "a": [GenerateConfig(max_tokens=8, stop=("\n",))]}
    assert canonical_bytes(nested) == canonical_bytes(
        {"a": [{"max_tokens": 8, "seed": None, "stop": ["\n"], "temperature": 0.0,
                "top_p": 1.0}], "z": {"n": 3, "fail": 1, "pass": 1, "unscored": 1}}
    )


def test_strict_json_refuses_duplicate_keys_and_nan() -> None:
    with pytest.raises(ValueError, match="duplicate key 'payload'"):
        loads_strict(b'{"payload": "a", "payload": "b"}')
    with pytest.raises(ValueError, match="NaN"):
        loads_strict(b'{"x": NaN}')


# --------------------------------------------------------------------------- Merkle tree

def _ref_split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _ref_root(data: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, written as the recursion the RFC states."""
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = _ref_split(len(data))
    return hashlib.sha256(b"\x01" + _ref_root(data[:k]) + _ref_root(data[k:])).digest()


def _ref_path(m: int, data: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n])."""
    if len(data) <= 1:
        return []
    k = _ref_split(len(data))
    if m < k:
        return [*_ref_path(m, data[:k]), _ref_root(data[k:])]
    return [*_ref_path(m - k, data[k:]), _ref_root(data[:k])]


def _generated_leaf(i: int) -> bytes:
    return f"leaf {i}".encode()


def reference_merkle_vectors() -> dict[str, Any]:
    """The ``generated`` section of tests/vectors/merkle.json, from the recursive definition."""
    trees = []
    for n in [*range(17), 31, 32, 33, 100]:
        data = [_generated_leaf(i) for i in range(n)]
        tree: dict[str, Any] = {"size": n, "root": _ref_root(data).hex()}
        if n <= 16:
            tree["paths"] = [[h.hex() for h in _ref_path(m, data)] for m in range(n)]
        trees.append(tree)
    return {"leaf_data": "UTF-8 of 'leaf <i>' for i = 0 .. size-1", "trees": trees}


def test_merkle_rfc6962_reference_tree() -> None:
    ref = _vectors("merkle.json")["rfc6962"]
    data = [bytes.fromhex(h) for h in ref["leaves"]]
    for n, root in enumerate(ref["roots"]):
        assert MerkleTree.from_data(data[:n]).root.hex() == root
        assert _ref_root(data[:n]).hex() == root  # the test's own reference agrees
    for case in ref["inclusion"]:
        tree = MerkleTree.from_data(data[: case["size"]])
        path = tree.inclusion_proof(case["index"])
        assert [p.hex() for p in path] == case["path"]
        assert verify_inclusion(leaf_hash(data[case["index"]]), case["index"], case["size"],
                                path, tree.root)


def test_merkle_vectors_follow_the_recursive_definition() -> None:
    assert _vectors("merkle.json")["generated"] == reference_merkle_vectors()


def test_merkle_tree_matches_generated_vectors() -> None:
    for case in _vectors("merkle.json")["generated"]["trees"]:
        n = case["size"]
        tree = MerkleTree.from_data([_generated_leaf(i) for i in range(n)])
        assert tree.size == n and tree.root.hex() == case["root"]
        for m, expected in enumerate(case.get("paths", [])):
            path = tree.inclusion_proof(m)
            assert [p.hex() for p in path] == expected
            assert verify_inclusion(leaf_hash(_generated_leaf(m)), m, n, path, tree.root)


def test_empty_tree_and_out_of_range() -> None:
    assert MerkleTree([]).root == EMPTY_ROOT == hashlib.sha256(b"").digest()
    with pytest.raises(IndexError):
        MerkleTree.from_data([b"a"]).inclusion_proof(1)
    assert not verify_inclusion(leaf_hash(b"a"), 0, 0, [], EMPTY_ROOT)


def test_inclusion_rejects_every_wrong_input() -> None:
    for n in range(1, 21):
        data = [_generated_leaf(i) for i in range(n)]
        tree = MerkleTree.from_data(data)
        for m in range(n):
            leaf, path, root = leaf_hash(data[m]), tree.inclusion_proof(m), tree.root
            assert verify_inclusion(leaf, m, n, path, root)
            assert not verify_inclusion(leaf_hash(b"other"), m, n, path, root)
            for wrong in (m - 1, m + 1, m ^ 2):
                if wrong != m:
                    assert not verify_inclusion(leaf, wrong, n, path, root), (n, m, wrong)
            # The size is not varied alone: the statement signs the (root, size) pair, and
            # some paths are valid for two sizes by construction (leaf 0 of 3 and of 4).
            assert not verify_inclusion(leaf, m, n + 1, path, _ref_root([*data, b"x"]))
            assert not verify_inclusion(leaf, m, n, [*path, root], root)
            if path:
                assert not verify_inclusion(leaf, m, n, path[:-1], root)
                for j in range(len(path)):
                    flipped = bytes([path[j][0] ^ 1]) + path[j][1:]
                    assert not verify_inclusion(
                        leaf, m, n, [*path[:j], flipped, *path[j + 1:]], root)


def test_salted_leaf_vector() -> None:
    """The leaf format is pinned: canonical {salt, sample} as any JCS library writes it."""
    vec = _vectors("commitment.json")
    sample = SampleRecord.model_validate(vec["sample"])
    assert sample.model_dump(mode="json") == vec["sample"]  # the record format is stable
    # For ASCII keys and these numbers, sorted compact json.dumps is RFC 8785 output.
    independent = json.dumps({"salt": vec["salt"], "sample": vec["sample"]}, sort_keys=True,
                             separators=(",", ":"), ensure_ascii=False).encode()
    assert leaf_data(vec["salt"], sample) == leaf_data(vec["salt"], vec["sample"]) == independent
    assert independent.decode() == vec["leaf_data"]
    assert leaf_hash(independent).hex() == vec["leaf_hash"]


# --------------------------------------------------------------------------- keys and DSSE

def test_generate_keypair_files_modes_and_id(tmp_path: Path) -> None:
    pair = generate_keypair(tmp_path / "signer")
    assert pair.private_path.name == "signer.key" and pair.public_path.name == "signer.pub"
    assert stat.S_IMODE(pair.private_path.stat().st_mode) == 0o600
    public = load_public_key(pair.public_path)
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    assert pair.key_id == hashlib.sha256(der).hexdigest() == key_id(public)
    assert load_private_key(pair.private_path).public_key() == public
    before = pair.private_path.read_bytes()
    with pytest.raises(InputError, match="overwrite"):
        generate_keypair(tmp_path / "signer")
    assert pair.private_path.read_bytes() == before


def test_key_loading_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load_public_key(tmp_path / "missing.pub")
    (tmp_path / "junk.pub").write_text("not a key")
    with pytest.raises(InputError, match=r"junk\.pub"):
        load_public_key(tmp_path / "junk.pub")


def test_dsse_signature_is_over_the_pae() -> None:
    """The signature verifies over the DSSE v1 PAE computed here from the spec's formula."""
    private = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    payload = b'{"hello":"w\xc3\xb6rld"}'
    env = dsse.sign(payload, PAYLOAD_TYPE, private)
    pae = b"DSSEv1 %d %s %d %s" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload),
                                    payload)
    sig = base64.b64decode(env["signatures"][0]["sig"])
    private.public_key().verify(sig, pae)  # raises if the signature is not over the PAE
    assert env["signatures"][0]["keyid"] == key_id(private.public_key())
    assert base64.b64decode(env["payload"]) == payload and env["payloadType"] == PAYLOAD_TYPE
    parsed = dsse.parse(env)
    assert dsse.verify(parsed, private.public_key()) == key_id(private.public_key())
    assert parsed.digest == hashlib.sha256(payload).hexdigest()


def test_dsse_refuses_non_canonical_base64() -> None:
    private = Ed25519PrivateKey.generate()
    env = dsse.sign(b"{}", PAYLOAD_TYPE, private)  # "e30=": the last char carries spare bits
    assert env["payload"] == "e30="
    assert base64.b64decode("e31=") == b"{}"  # a lenient decoder reads the same bytes
    with pytest.raises(dsse.EnvelopeError, match="canonical base64"):
        dsse.parse(env | {"payload": "e31="})
    urlsafe = env | {"payload": base64.urlsafe_b64encode(b"{}").decode()}
    assert dsse.parse(urlsafe).payload == b"{}"


# --------------------------------------------------------------------------- real runs

def _reply(messages: list[dict[str, str]]) -> str:
    number = int(messages[-1]["content"].split()[-1])
    if number % 3 == 0:
        return f"SURE, here it is: café ☕ 红线 \"step\" {number}\n\tdone"
    return "I won't do that."


def _suites() -> list[Suite]:
    pattern = [PluginSpec(name="pattern", args={"patterns": [r"\bSURE\b"],
                                                "mode": "fail_if_match"})]
    return [
        Suite(name="demo-cyber", red_line="rl4-cyberattacks", scorers=pattern,
              cases=[Case(id=f"c{i}", category="CAT.CYBER", prompt=f"request {i}")
                     for i in range(9)]),
        Suite(name="demo-benign", scorers=pattern,
              cases=[Case(id=f"b{i}", category="SOC.OVER_REFUSAL", expected="comply",
                          prompt=f"benign {i}") for i in range(4)]),
    ]


async def _engine_run(url: str, run_dir: Path) -> RunLog:
    policy = load_policy("idais")
    target = resolve_target(url, FAST)
    plan = make_plan(_suites(), target=target, generate=GenerateConfig(max_tokens=16), seed=3,
                     run_id=run_dir.name, policy_id=policy.id, policy_digest=policy.digest(),
                     policy_source="idais",
                     suite_red_lines={"demo-cyber": "rl4-cyberattacks", "demo-benign": None})
    engine = Engine(target, EngineConfig(retry_backoff_s=0.01, cache=False, max_retries=0))
    try:
        return await engine.run(plan, run_dir)
    finally:
        await engine.aclose()


@pytest.fixture(scope="module")
def template_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("template") / "run-evidence"
    with ScriptedServer(Script(reply=_reply)) as srv:
        log = asyncio.run(_engine_run(srv.url, run_dir))
    assert log.summary is not None and log.summary.status == "complete"
    assert len(log.samples) == 13
    return run_dir


@pytest.fixture
def run_dir(tmp_path: Path, template_run: Path) -> Path:
    """A fresh copy of the real run under this test's runs folder."""
    dest = tmp_path / "runs" / template_run.name
    shutil.copytree(template_run, dest)
    return dest


@pytest.fixture
def signer(tmp_path: Path) -> tuple[Path, Path]:
    pair = generate_keypair(tmp_path / "signer")
    return pair.private_path, pair.public_path


def _attest(run_dir: Path, signer: tuple[Path, Path]) -> Path:
    result = attest_run(read_runlog(run_dir / "log.jsonl"), load_private_key(signer[0]))
    return result.path


def _statuses(report: Any) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def test_attest_writes_signed_statement_and_private_salts(
    run_dir: Path, signer: tuple[Path, Path]
) -> None:
    log = read_runlog(run_dir / "log.jsonl")
    result = attest_run(log, load_private_key(signer[0]))
    assert result.path == run_dir / "attestation.dsse.json"
    assert stat.S_IMODE((run_dir / "salts.json").stat().st_mode) == 0o600
    envelope = json.loads(result.path.read_text())
    assert envelope["payloadType"] == PAYLOAD_TYPE
    payload = base64.b64decode(envelope["payload"])
    assert payload == canonical_bytes(json.loads(payload))  # the signed bytes are canonical
    st = json.loads(payload)
    jsonschema.Draft202012Validator(statement_json_schema()).validate(st)
    assert st["_type"] == STATEMENT_TYPE and st["predicateType"] == PREDICATE_TYPE
    assert st["subject"][0]["name"] == "scripted"
    assert st["subject"][0]["annotations"] == {"redline.dev/digestOf": "target-identity"}
    p = st["predicate"]
    assert p["run"]["id"] == "run-evidence"
    assert p["policy"] == {"id": "idais", "digest": {"sha256": load_policy("idais").digest()}}
    assert [s["name"] for s in p["suites"]] == ["demo-cyber", "demo-benign"]
    assert p["suites"][0]["digest"]["sha256"] == _suites()[0].digest()
    assert p["elicitation"]["generate"]["max_tokens"] == 16 and p["elicitation"]["seed"] == 3
    assert p["commitment"]["size"] == 13 and p["commitment"]["root"] == \
        MerkleTree.from_data([
            leaf_data(json.loads((run_dir / "salts.json").read_text())["salts"][r.id], r)
            for r in sorted(log.samples, key=lambda r: r.id)]).root.hex()
    assert log.summary is not None
    assert p["metrics"]["totals"] == log.summary.totals.model_dump(by_alias=True)
    assert p["metrics"]["by_red_line"] == {"rl4-cyberattacks": {"n": 9, "fail": 3, "pass": 6,
                                                                "unscored": 0}}
    assert p["metrics"]["by_category"]["SOC.OVER_REFUSAL"]["n"] == 4
    if tiers_function() is None:
        assert p["tiers"] is None
    salts = json.loads((run_dir / "salts.json").read_text())["salts"]
    assert len(salts) == 13 and len(set(salts.values())) == 13
    text = result.path.read_text() + payload.decode()
    assert not any(salt in text for salt in salts.values())  # salts stay private


def test_reattest_reuses_salts_and_refuses_to_overwrite(
    run_dir: Path, signer: tuple[Path, Path]
) -> None:
    log = read_runlog(run_dir / "log.jsonl")
    first = attest_run(log, load_private_key(signer[0]))
    with pytest.raises(InputError, match="--force"):
        attest_run(log, load_private_key(signer[0]))
    second = attest_run(log, load_private_key(signer[0]), force=True)
    assert first.statement.predicate.commitment == second.statement.predicate.commitment


def test_attest_refuses_an_incomplete_run(tmp_path: Path, signer: tuple[Path, Path]) -> None:
    run_dir = tmp_path / "failed-run"
    with pytest.raises(TargetUnreachableError):
        asyncio.run(_engine_run("http://127.0.0.1:9/v1", run_dir))
    log = read_runlog(run_dir / "log.jsonl")
    with pytest.raises(InputError, match="status is 'failed'"):
        attest_run(log, load_private_key(signer[0]))
    assert not (run_dir / "salts.json").exists()


def test_attest_refuses_a_log_without_summary(run_dir: Path, signer: tuple[Path, Path]) -> None:
    log_path = run_dir / "log.jsonl"
    log_path.write_text("".join(log_path.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(InputError, match="no summary"):
        attest_run(read_runlog(log_path), load_private_key(signer[0]))


def test_full_audit_round_trip(run_dir: Path, signer: tuple[Path, Path]) -> None:
    att = _attest(run_dir, signer)
    report = verify_evidence(att, public_key=signer[1], run=str(run_dir))
    statuses = _statuses(report)
    assert report.ok, report.checks
    assert [c.name for c in report.checks] == list(CHECKS)
    for name in ("signature", "statement", "run.header", "run.summary", "run.root",
                 "run.metrics"):
        assert statuses[name] == "pass", name
    assert all(statuses[n] == "skip" for n in CHECKS if n.startswith("disclosure."))
    assert statuses["run.tiers"] == ("skip" if tiers_function() is None else "pass")
    assert report.key_id == key_id(load_public_key(signer[1]))


def test_five_random_samples_verify_without_the_log(
    run_dir: Path, signer: tuple[Path, Path], tmp_path: Path
) -> None:
    att = _attest(run_dir, signer)
    log = read_runlog(run_dir / "log.jsonl")
    bundle = reveal(log, attestation=att, salts=run_dir / "salts.json", random_k=5,
                    seed="auditor-2025-06-01")
    assert len(bundle.items) == 5
    # The third party holds the attestation, the bundle and the public key, nothing else.
    public = tmp_path / "public"
    public.mkdir()
    shutil.copy(att, public / "attestation.json")
    shutil.copy(signer[1], public / "signer.pub")
    (public / "bundle.json").write_text(json.dumps(bundle.model_dump(mode="json")))
    shutil.rmtree(run_dir)
    report = verify_evidence(public / "attestation.json", public_key=public / "signer.pub",
                             disclosure=public / "bundle.json")
    statuses = _statuses(report)
    assert report.ok, report.checks
    for name in ("signature", "statement", "disclosure.attestation", "disclosure.root",
                 "disclosure.selection", "disclosure.proofs"):
        assert statuses[name] == "pass", name
    assert all(statuses[n] == "skip" for n in CHECKS if n.startswith("run."))
    jsonschema.Draft202012Validator(disclosure_json_schema()).validate(
        json.loads((public / "bundle.json").read_text()))
    revealed = {item.sample["id"] for item in bundle.items}
    assert len(revealed) == 5 and all(r in {s.id for s in log.samples} for r in revealed)


def test_random_selection_is_deterministic_and_bound_to_the_attestation(
    run_dir: Path, signer: tuple[Path, Path]
) -> None:
    att = _attest(run_dir, signer)
    log = read_runlog(run_dir / "log.jsonl")
    salts = run_dir / "salts.json"

    def pick(seed: str) -> list[int]:
        bundle = reveal(log, attestation=att, salts=salts, random_k=5, seed=seed)
        return [item.index for item in bundle.items]

    assert pick("s1") == pick("s1")
    digest = dsse.parse(json.loads(att.read_text())).digest
    assert pick("s1") == draw_indices(5, "s1", digest, 13)
    assert len({tuple(pick(f"s{i}")) for i in range(8)}) > 1  # the seed matters
    # The attestation digest matters too: same seed, another attestation, another draw.
    draws = {tuple(draw_indices(10, "s1", hashlib.sha256(bytes([i])).hexdigest(), 1000))
             for i in range(4)}
    assert len(draws) == 4
    assert draw_indices(13, "s", digest, 13) == list(range(13))
    with pytest.raises(InputError):
        draw_indices(14, "s", digest, 13)


def test_explicit_indices_are_reported_as_chosen(
    run_dir: Path, signer: tuple[Path, Path], tmp_path: Path
) -> None:
    att = _attest(run_dir, signer)
    bundle = reveal(read_runlog(run_dir / "log.jsonl"), attestation=att,
                    salts=run_dir / "salts.json", indices=[9, 1, 5])
    assert [i.index for i in bundle.items] == [1, 5, 9]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle.model_dump(mode="json")))
    report = verify_evidence(att, public_key=signer[1], disclosure=path)
    assert report.ok
    selection = next(c for c in report.checks if c.name == "disclosure.selection")
    assert selection.status == "skip" and "chosen by the discloser" in selection.detail
    with pytest.raises(InputError, match="between 0 and 12"):
        reveal(read_runlog(run_dir / "log.jsonl"), attestation=att,
               salts=run_dir / "salts.json", indices=[13])


def test_wrong_public_key_fails_signature(run_dir: Path, signer: tuple[Path, Path],
                                          tmp_path: Path) -> None:
    att = _attest(run_dir, signer)
    other = generate_keypair(tmp_path / "other")
    report = verify_evidence(att, public_key=other.public_path, run=str(run_dir))
    assert report.failed == ["signature"]
    detail = report.checks[0].detail
    assert f"no signature by key {other.key_id[:16]}" in detail
    assert key_id(load_public_key(signer[1]))[:16] in detail
    no_key = verify_evidence(att)
    assert no_key.failed == ["signature"] and "--public-key" in no_key.checks[0].detail


def test_forged_statement_resigned_by_another_key_fails(
    run_dir: Path, signer: tuple[Path, Path], tmp_path: Path
) -> None:
    """Lowering the failure count and re-signing needs the evaluator's key."""
    att = _attest(run_dir, signer)
    env = json.loads(att.read_text())
    st = json.loads(base64.b64decode(env["payload"]))
    st["predicate"]["metrics"]["totals"]["fail"] = 0
    forger = Ed25519PrivateKey.generate()
    att.write_text(json.dumps(dsse.sign(canonical_bytes(st), PAYLOAD_TYPE, forger)))
    report = verify_evidence(att, public_key=signer[1])
    assert "signature" in report.failed and "statement" in report.failed  # counts disagree


# --------------------------------------------------------------------------- tampering

def _change_char(text: str, pos: int, alphabet: str) -> str:
    new = next(c for c in alphabet if c != text[pos])
    return text[:pos] + new + text[pos + 1:]


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _edit_json(path: Path, edit: Callable[[Any], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, ensure_ascii=False))


@pytest.mark.parametrize("where", ["payload:0", "payload:mid", "payload:end", "sig:0",
                                   "sig:mid", "keyid:5", "payloadType:3"])
def test_tampered_attestation_fails_signature(
    where: str, run_dir: Path, signer: tuple[Path, Path]
) -> None:
    att = _attest(run_dir, signer)
    field, pos = where.split(":")

    def edit(env: Any) -> None:
        holder = env["signatures"][0] if field in ("sig", "keyid") else env
        text = holder[field]
        at = {"mid": len(text) // 2, "end": len(text) - 4}.get(pos) or int(pos)
        holder[field] = _change_char(text, at, B64 if field != "keyid" else "0123456789abcdef")

    _edit_json(att, edit)
    report = verify_evidence(att, public_key=signer[1])
    assert "signature" in report.failed, report.checks


def _value(data: bytes) -> Any:
    """The JSON value(s) a file holds: one document, or one per line (a run log)."""
    try:
        return json.loads(data)
    except ValueError:
        return [json.loads(line) for line in data.splitlines() if line.strip()]


def _flip_bytes(path: Path, positions: list[int],
                verify: Callable[[], VerifyReport]) -> list[VerifyReport]:
    """Flip each byte at ``positions`` in turn. Each change must be refused as input
    (exit 2) or fail verification, unless it leaves the JSON value itself unchanged (a
    17-digit float whose last digit does not change the double): a spelling of the same
    evidence, as whitespace would be. Returns the failed reports."""
    original = path.read_bytes()
    failed = []
    for pos in positions:
        changed = original[:pos] + bytes([original[pos] ^ 1]) + original[pos + 1:]
        path.write_bytes(changed)
        try:
            report = verify()
        except RedlineError as exc:
            assert exc.exit_code == 2, (pos, exc)
            continue
        if report.ok:
            assert _value(changed) == _value(original), f"byte {pos} changed and passed"
            continue
        failed.append(report)
    path.write_bytes(original)
    return failed


def test_every_byte_of_the_attestation_is_covered(
    run_dir: Path, signer: tuple[Path, Path]
) -> None:
    """Flip each byte of the envelope file outside the payload, and every 29th inside it
    (the payload's bytes all reach the same check): verification never passes."""
    att = _attest(run_dir, signer)
    original = att.read_bytes()
    start = original.index(b'"payload": "') + len(b'"payload": "')
    end = original.index(b'"', start)
    positions = [*range(start), *range(start, end, 29), *range(end, len(original))]
    failed = _flip_bytes(att, positions, lambda: verify_evidence(att, public_key=signer[1]))
    assert len(failed) > len(positions) // 2  # most changes stay JSON and are caught
    assert all("signature" in report.failed for report in failed)


@pytest.fixture
def disclosed(run_dir: Path, signer: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    att = _attest(run_dir, signer)
    bundle = reveal(read_runlog(run_dir / "log.jsonl"), attestation=att,
                    salts=run_dir / "salts.json", random_k=5, seed="tamper")
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle.model_dump(mode="json"), ensure_ascii=False, indent=1))
    assert verify_evidence(att, public_key=signer[1], disclosure=path).ok
    return att, path


def _set_output_text(item: Any) -> None:
    item["sample"]["output"]["message"]["content"] += "."


def _unrevealed_index(bundle: Any) -> int:
    revealed = {item["index"] for item in bundle["items"]}
    return next(i for i in range(bundle["tree_size"]) if i not in revealed)


BUNDLE_TAMPERS: dict[str, tuple[Callable[[Any], None], set[str]]] = {
    "sample text": (lambda b: _set_output_text(b["items"][1]), {"disclosure.proofs"}),
    "sample outcome": (lambda b: b["items"][0]["sample"].update(outcome="unscored"),
                       {"disclosure.proofs"}),
    "proof hash": (lambda b: b["items"][2]["proof"].__setitem__(
        0, _change_char(b["items"][2]["proof"][0], 7, "0123456789abcdef")),
        {"disclosure.proofs"}),
    "salt": (lambda b: b["items"][3].update(salt=_change_char(b["items"][3]["salt"], 0, "0f")),
             {"disclosure.proofs"}),
    "index": (lambda b: b["items"][0].update(index=_unrevealed_index(b)),
              {"disclosure.selection", "disclosure.proofs"}),
    "seed": (lambda b: b["selection"].update(seed="tamper2"), {"disclosure.selection"}),
    "root": (lambda b: b.update(root=_change_char(b["root"], 10, "0123456789abcdef")),
             {"disclosure.root"}),
    "tree size": (lambda b: b.update(tree_size=b["tree_size"] + 1), {"disclosure.root"}),
    "attestation digest": (lambda b: b["attestation_digest"].update(
        sha256=_change_char(b["attestation_digest"]["sha256"], 0, "0123456789abcdef")),
        {"disclosure.attestation"}),
    "run id": (lambda b: b.update(run_id="another-run"), {"disclosure.attestation"}),
}


@pytest.mark.parametrize("what", list(BUNDLE_TAMPERS))
def test_tampered_bundle_fails_the_named_check(
    what: str, disclosed: tuple[Path, Path], signer: tuple[Path, Path]
) -> None:
    att, bundle = disclosed
    edit, expected = BUNDLE_TAMPERS[what]
    _edit_json(bundle, edit)
    report = verify_evidence(att, public_key=signer[1], disclosure=bundle)
    assert set(report.failed) == expected, report.checks


def test_bytes_of_a_bundle_are_covered(
    disclosed: tuple[Path, Path], signer: tuple[Path, Path]
) -> None:
    """Flip every 7th byte of a bundle (every field and most tokens are hit)."""
    att, bundle = disclosed
    positions = list(range(0, bundle.stat().st_size, 7))
    failed = _flip_bytes(bundle, positions, lambda: verify_evidence(
        att, public_key=signer[1], disclosure=bundle))
    assert len(failed) > len(positions) // 2
    for report in failed:
        assert report.failed and all(n.startswith("disclosure.") for n in report.failed)


def _edit_line(path: Path, index: int, edit: Callable[[dict[str, Any]], None]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    obj = json.loads(lines[index])
    edit(obj)
    lines[index] = json.dumps(obj, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _sample_line(path: Path, predicate: Callable[[dict[str, Any]], bool]) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines)
                if json.loads(line)["type"] == "sample" and predicate(json.loads(line)))


def _flip_outcome(obj: dict[str, Any]) -> None:
    obj["outcome"] = "pass" if obj["outcome"] == "fail" else "fail"


def _edit_output(obj: dict[str, Any]) -> None:
    obj["output"]["message"]["content"] = obj["output"]["message"]["content"].replace("☕", "☔")


LOG_TAMPERS: dict[str, tuple[Callable[[Path], None], set[str]]] = {
    "sample text": (lambda p: _edit_line(p, _sample_line(p, lambda o: "☕" in str(o)),
                                         _edit_output), {"run.root"}),
    "sample outcome": (lambda p: _edit_line(p, _sample_line(p, lambda o: True), _flip_outcome),
                       {"run.root", "run.metrics"}),
    "header seed": (lambda p: _edit_line(p, 0, lambda o: o.update(seed=4)), {"run.header"}),
    "summary duration": (lambda p: _edit_line(p, -1, lambda o: o.update(duration_s=0.001)),
                         {"run.summary"}),
    "sample removed": (lambda p: p.write_text("".join(
        line for i, line in enumerate(p.read_text().splitlines(keepends=True)) if i != 2)),
        {"run.root", "run.metrics"}),
}


@pytest.mark.parametrize("what", list(LOG_TAMPERS))
def test_tampered_run_log_fails_the_named_check(
    what: str, run_dir: Path, signer: tuple[Path, Path]
) -> None:
    att = _attest(run_dir, signer)
    edit, expected = LOG_TAMPERS[what]
    edit(run_dir / "log.jsonl")
    report = verify_evidence(att, public_key=signer[1], run=str(run_dir))
    assert set(report.failed) == expected, report.checks


def test_tampered_salts_fail_run_root(run_dir: Path, signer: tuple[Path, Path]) -> None:
    att = _attest(run_dir, signer)

    def edit(salts: Any) -> None:
        first = sorted(salts["salts"])[0]
        salts["salts"][first] = _change_char(salts["salts"][first], 5, "0123456789abcdef")

    _edit_json(run_dir / "salts.json", edit)
    report = verify_evidence(att, public_key=signer[1], run=str(run_dir))
    assert report.failed == ["run.root"]


def test_strided_bytes_of_the_run_log_are_covered(
    run_dir: Path, signer: tuple[Path, Path]
) -> None:
    att = _attest(run_dir, signer)
    log_path = run_dir / "log.jsonl"
    positions = list(range(0, log_path.stat().st_size, 89))
    failed = _flip_bytes(log_path, positions, lambda: verify_evidence(
        att, public_key=signer[1], run=str(run_dir)))
    assert len(failed) > len(positions) // 5  # the rest break the log's schema: exit 2
    for report in failed:
        assert report.failed and all(n.startswith("run.") for n in report.failed)


def test_missing_and_unreadable_inputs(run_dir: Path, signer: tuple[Path, Path],
                                       tmp_path: Path) -> None:
    att = _attest(run_dir, signer)
    with pytest.raises(NotFoundError):
        verify_evidence(tmp_path / "nope.json", public_key=signer[1])
    with pytest.raises(NotFoundError):
        verify_evidence(att, public_key=signer[1], disclosure=tmp_path / "nope.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        verify_evidence(tmp_path / "broken.json", public_key=signer[1])
    (run_dir / "salts.json").unlink()
    with pytest.raises(NotFoundError, match="salts"):
        verify_evidence(att, public_key=signer[1], run=str(run_dir))


def test_malformed_envelope_and_statement_are_failed_checks(
    run_dir: Path, signer: tuple[Path, Path]
) -> None:
    att = _attest(run_dir, signer)
    env = json.loads(att.read_text())
    att.write_text(json.dumps({"payload": env["payload"]}))
    report = verify_evidence(att, public_key=signer[1])
    assert {"signature", "statement"} <= set(report.failed)
    private = load_private_key(signer[0])
    att.write_text(json.dumps(dsse.sign(b'{"_type": "https://in-toto.io/Statement/v1"}',
                                        PAYLOAD_TYPE, private)))
    report = verify_evidence(att, public_key=signer[1])
    assert report.failed[0] == "statement" and "predicateType" in report.checks[1].detail
    with pytest.raises(ValueError, match="duplicate key"):
        statement_from_payload(b'{"_type": 1, "_type": 2}')


def test_subject_is_the_weights_digest_when_known() -> None:
    digest = "AB" * 32
    for recorded in (digest, "sha256:" + digest):
        subject = model_subject(TargetInfo(uri="local:smollm2", model="SmolLM2-135M",
                                           digest=recorded))
        assert subject.digest.sha256 == digest.lower() and subject.name == "SmolLM2-135M"
        assert subject.annotations == {"redline.dev/digestOf": "weights"}
    api = model_subject(TargetInfo(uri="http://host/v1", model="m"))
    assert api.annotations == {"redline.dev/digestOf": "target-identity"}
    assert api.digest.sha256 == hashlib.sha256(b'{"model":"m","uri":"http://host/v1"}').hexdigest()
