"""Append-only, hash-chained audit log (JSON Lines) with optional signed checkpoints.

Each line is a JSON record ``{seq, ts, kind, data, prev, hash}``: ``hash`` is the sha256
of the RFC 8785 canonical JSON of the record without ``hash`` (so any JCS implementation can
recompute it), ``prev`` is the previous record's ``hash`` (``GENESIS`` for the first).
Editing, deleting or reordering a record breaks the chain at that line.

Re-chaining the whole file, or cutting its tail, needs more than a chain: with a signing key
the log appends a ``checkpoint`` record every ``checkpoint_every`` records (and on close)
whose Ed25519 signature covers the head hash, and writes the latest checkpoint to
``PATH.head``. Without the key nobody can forge a checkpoint, and a log cut before the head
it names is reported as truncated. Keep a copy of ``PATH.head`` elsewhere (ship it with the
guard's events) to also catch a rollback of both files.

Writing: :meth:`AuditLog.append` only builds the record and buffers it; a writer thread
writes the buffer every ``FLUSH_INTERVAL_S``, as soon as ``FLUSH_EVERY_RECORDS`` are
waiting, at each checkpoint (then with fsync) and on close. A crash loses at most the
unflushed records; a torn final line from a crash is cut off when the log is reopened and
its size and digest are recorded in the ``start`` record. One writer per file: an
exclusive ``flock`` on ``PATH.lock``; a restart continues the chain from the last record.

``verify_audit`` names the first bad line and the check that failed; a failed verification
is a :class:`~redline.errors.VerificationError` (exit code 5) via
:meth:`AuditReport.raise_for_problem`.
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from redline.errors import InputError, NotFoundError, RedlineError, VerificationError
from redline.evidence.canonical import (
    canonical_bytes,
    describe_error,
    json_value_bytes,
    loads_strict,
    sha256_hex,
    to_json_value,
)
from redline.evidence.keys import key_id

GENESIS = "0" * 64
#: The writer thread writes once this many records wait, or every ``FLUSH_INTERVAL_S``.
FLUSH_EVERY_RECORDS = 64
FLUSH_INTERVAL_S = 0.2
#: Records between signed checkpoints (when the log has a signing key).
CHECKPOINT_EVERY = 1000
#: Largest record line; larger ``data`` is refused.
MAX_RECORD_BYTES = 1 << 20
START_KIND = "start"
CHECKPOINT_KIND = "checkpoint"
HEAD_SUFFIX = ".head"
LOCK_SUFFIX = ".lock"
#: Domain separation for checkpoint signatures.
CHECKPOINT_PURPOSE = "redline-audit-checkpoint/v1"

_HEX64 = r"^[0-9a-f]{64}$"
_KIND_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
_KIND = re.compile(_KIND_PATTERN)

Check = Literal[
    "torn_line", "not_json", "bad_record", "edited", "deleted", "reordered", "broken_chain",
    "bad_checkpoint", "missing_head", "bad_head", "truncated",
]


class AuditRecord(BaseModel):
    """One line of the audit log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(ge=0)
    ts: float
    kind: str = Field(pattern=_KIND_PATTERN)
    data: dict[str, Any]
    prev: str = Field(pattern=_HEX64)
    hash: str = Field(pattern=_HEX64)


class Checkpoint(BaseModel):
    """``data`` of a checkpoint record, and the content of ``PATH.head``."""

    model_config = ConfigDict(extra="forbid")

    through_seq: int = Field(ge=0)
    head: str = Field(pattern=_HEX64)
    key_id: str
    signature: str


class AuditProblem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: 1-based line of the log (0 for a problem with ``PATH.head``).
    line: int
    check: Check
    message: str


class AuditReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    ok: bool
    records: int
    last_seq: int | None = None
    head: str | None = None
    checkpoints: int = 0
    #: Whether checkpoint signatures were checked (a public key was given).
    signatures_verified: bool = False
    #: Highest seq covered by the signed head file, if any.
    signed_through_seq: int | None = None
    problem: AuditProblem | None = None

    def raise_for_problem(self) -> None:
        """``VerificationError`` (exit code 5) naming the line and the failed check."""
        if self.problem is not None:
            p = self.problem
            where = f"{self.path}:{p.line}" if p.line else self.path
            raise VerificationError(f"audit log {where}: {p.check}: {p.message}")


class AuditLogLockedError(InputError):
    """Another process (or another ``AuditLog`` here) is writing this log."""


class AuditWriteError(RedlineError):
    """Writing the log failed (disk full, permissions); records since the last flush may
    be lost."""


def _hash(body: dict[str, Any]) -> str:
    return sha256_hex(canonical_bytes(body))


def checkpoint_message(through_seq: int, head: str) -> bytes:
    """The bytes a checkpoint signature covers."""
    return canonical_bytes(
        {"purpose": CHECKPOINT_PURPOSE, "through_seq": through_seq, "head": head}
    )


def _sign(key: Ed25519PrivateKey, through_seq: int, head: str) -> Checkpoint:
    signature = key.sign(checkpoint_message(through_seq, head))
    return Checkpoint(through_seq=through_seq, head=head, key_id=key_id(key.public_key()),
                      signature=base64.b64encode(signature).decode())


def _signature_ok(cp: Checkpoint, public_key: Ed25519PublicKey) -> str | None:
    """None if ``cp`` is signed by ``public_key``, else why not."""
    if cp.key_id != key_id(public_key):
        return f"signed by key {cp.key_id[:16]}…, not the given key"
    try:
        public_key.verify(base64.b64decode(cp.signature, validate=True),
                          checkpoint_message(cp.through_seq, cp.head))
    except (InvalidSignature, ValueError):
        return "signature does not verify"
    return None


class AuditLog:
    """The writer. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        path: str | Path,
        signing_key: Ed25519PrivateKey | None = None,
        checkpoint_every: int = CHECKPOINT_EVERY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if checkpoint_every < 1:
            raise InputError("checkpoint_every must be at least 1", field="checkpoint_every")
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + HEAD_SUFFIX)
        self._key = signing_key
        self._checkpoint_every = checkpoint_every
        self._clock = clock
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._buffer: list[bytes] = []
        self._pending_head: Checkpoint | None = None
        self._since_checkpoint = 0
        self._error: BaseException | None = None
        self._closed = False
        self._lock_fd = self._acquire_lock()
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            torn = self._recover()
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._wake = threading.Event()
        self._writer = threading.Thread(target=self._run_writer, name="audit-writer",
                                        daemon=True)
        self._writer.start()
        resumed = self._seq - 1 if self._seq else None
        start: dict[str, Any] = {"pid": os.getpid(), "resumed_after_seq": resumed}
        if torn is not None:
            start["torn_tail"] = torn
        if self._key is not None:
            start["checkpoint_key_id"] = key_id(self._key.public_key())
            start["checkpoint_every"] = checkpoint_every
        self.append(START_KIND, start)

    def _acquire_lock(self) -> int:
        lock_path = self.path.with_name(self.path.name + LOCK_SUFFIX)
        if not self.path.parent.is_dir():
            raise NotFoundError(f"no folder {self.path.parent} for the audit log")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AuditLogLockedError(
                f"audit log is being written by another writer (pid {holder}); "
                "one writer per file", file=self.path,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd

    def _recover(self) -> dict[str, Any] | None:
        """Set ``_seq``/``_prev`` from the last record; cut a torn final line."""
        self._seq, self._prev = 0, GENESIS
        size = os.fstat(self._fd).st_size
        if size == 0:
            return None
        window = min(size, MAX_RECORD_BYTES + 2)
        tail = os.pread(self._fd, window, size - window)
        torn: dict[str, Any] | None = None
        if not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n") + 1
            if cut == 0 and window < size:
                raise VerificationError(f"audit log {self.path}: final line longer than "
                                        f"{MAX_RECORD_BYTES} bytes; run verify")
            fragment = tail[cut:]
            torn = {"bytes": len(fragment), "sha256": sha256_hex(fragment)}
            os.ftruncate(self._fd, size - len(fragment))
            tail = tail[:cut]
        if not tail:
            return torn
        last = tail[:-1].rsplit(b"\n", 1)[-1]
        try:
            record = AuditRecord.model_validate(loads_strict(last))
        except ValueError as exc:
            raise VerificationError(
                f"audit log {self.path}: last record unreadable ({describe_error(exc)}); "
                "run verify"
            ) from None
        body = record.model_dump(exclude={"hash"})
        if _hash(body) != record.hash:
            raise VerificationError(
                f"audit log {self.path}: last record (seq {record.seq}) does not match its "
                "hash; run verify before writing more"
            )
        self._seq, self._prev = record.seq + 1, record.hash
        return torn

    def append(self, kind: str, data: dict[str, Any]) -> AuditRecord:
        """Chain and buffer one record; cheap (no I/O on the caller's thread)."""
        if not isinstance(data, dict):
            raise InputError("audit data must be a JSON object", field="data")
        if kind == CHECKPOINT_KIND:
            raise InputError("audit kind 'checkpoint' is written by the log itself",
                             field="kind")
        data_json = to_json_value(data)
        with self._lock:
            if self._closed:
                raise InputError(f"audit log {self.path} is closed")
            if self._error is not None:
                raise AuditWriteError(f"audit log {self.path}: {self._error}")
            record = self._chain(kind, data_json)
            checkpointed = False
            if self._key is not None:
                self._since_checkpoint += 1
                if self._since_checkpoint >= self._checkpoint_every:
                    self._checkpoint()
                    checkpointed = True
            # Wake the writer once per batch, not on every append while it is busy.
            if checkpointed or len(self._buffer) == FLUSH_EVERY_RECORDS:
                self._wake.set()
        return record

    def _chain(self, kind: str, data: Any) -> AuditRecord:
        if not _KIND.match(kind):
            raise InputError(f"invalid audit kind {kind!r}", field="kind")
        body = {"seq": self._seq, "ts": self._clock(), "kind": kind, "data": data,
                "prev": self._prev}
        canonical = json_value_bytes(body)
        digest = sha256_hex(canonical)
        # The line only needs to parse to the same values as the hashed body: it is the
        # canonical body with ``hash`` appended, so the record is encoded once.
        line = canonical[:-1] + b',"hash":"' + digest.encode() + b'"}\n'
        record = AuditRecord.model_construct(**body, hash=digest)
        if len(line) > MAX_RECORD_BYTES:
            raise InputError(f"audit record of {len(line)} bytes is over {MAX_RECORD_BYTES}",
                             field="data")
        self._buffer.append(line)
        self._seq, self._prev = record.seq + 1, record.hash
        return record

    def _checkpoint(self) -> None:
        """Append a signed checkpoint over the current head (caller holds ``_lock``)."""
        assert self._key is not None
        cp = _sign(self._key, self._seq - 1, self._prev)
        self._chain(CHECKPOINT_KIND, cp.model_dump())
        self._pending_head = cp
        self._since_checkpoint = 0

    def _run_writer(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_INTERVAL_S)
            self._wake.clear()
            try:
                self.flush()
            except OSError as exc:
                with self._lock:
                    self._error = exc

    def flush(self) -> None:
        """Write buffered records; after a checkpoint, fsync and update ``PATH.head``."""
        with self._io_lock:
            with self._lock:
                lines, self._buffer = self._buffer, []
                head, self._pending_head = self._pending_head, None
            if lines:
                data = b"".join(lines)
                written = 0
                while written < len(data):
                    written += os.write(self._fd, data[written:])
            if head is not None:
                os.fsync(self._fd)
                tmp = self.head_path.with_name(self.head_path.name + ".tmp")
                tmp.write_bytes(canonical_bytes(head) + b"\n")
                os.replace(tmp, self.head_path)

    def close(self) -> None:
        """Checkpoint (with a key), write everything, fsync and release the file."""
        with self._lock:
            if self._closed:
                return
            if self._key is not None and self._since_checkpoint:
                self._checkpoint()
            self._closed = True
        self._wake.set()
        self._writer.join()
        try:
            self.flush()
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            os.close(self._lock_fd)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _problem(report: AuditReport, line: int, check: Check, message: str) -> AuditReport:
    return report.model_copy(update={"ok": False,
                                     "problem": AuditProblem(line=line, check=check,
                                                             message=message)})


def verify_audit(path: str | Path, public_key: Ed25519PublicKey | None = None) -> AuditReport:
    """Check every line of an audit log; the report names the first bad line and why.

    With ``public_key``, checkpoint signatures are verified and ``PATH.head`` is required.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"no audit log at {path}") from None
    except IsADirectoryError:
        raise InputError("audit log path is a folder", file=path) from None
    report = AuditReport(path=str(path), ok=True, records=0,
                         signatures_verified=public_key is not None)
    lines = raw.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline
    parsed: list[AuditRecord] = []
    for number, line in enumerate(lines, start=1):
        try:
            parsed.append(AuditRecord.model_validate(loads_strict(line)))
        except ValidationError as exc:
            return _problem(report, number, "bad_record", describe_error(exc))
        except (ValueError, UnicodeDecodeError) as exc:
            return _problem(report, number, "not_json", str(exc))
    seqs_after = _remaining_seqs(parsed)
    prev_hash, expected, by_seq = GENESIS, 0, {}
    checkpoints = 0
    for index, record in enumerate(parsed):
        number = index + 1
        if _hash(record.model_dump(exclude={"hash"})) != record.hash:
            return _problem(report, number, "edited",
                            f"record seq {record.seq} does not match its hash")
        if record.seq != expected:
            if record.seq > expected and expected not in seqs_after[index]:
                return _problem(report, number, "deleted",
                                f"expected seq {expected}, found {record.seq}: "
                                f"{record.seq - expected} record(s) missing")
            return _problem(report, number, "reordered",
                            f"expected seq {expected}, found {record.seq}")
        if record.prev != prev_hash:
            return _problem(report, number, "broken_chain",
                            "prev does not match the hash of the previous record")
        if record.kind == CHECKPOINT_KIND:
            why = _check_checkpoint(record, public_key)
            if why is not None:
                return _problem(report, number, "bad_checkpoint", why)
            checkpoints += 1
        by_seq[record.seq] = record.hash
        prev_hash, expected = record.hash, record.seq + 1
    report = report.model_copy(update={
        "records": len(parsed), "checkpoints": checkpoints,
        "last_seq": parsed[-1].seq if parsed else None,
        "head": parsed[-1].hash if parsed else None,
    })
    if torn:
        return _problem(report, len(lines) + 1, "torn_line",
                        f"final line of {len(torn)} bytes has no newline: an incomplete "
                        "write (e.g. a crash); reopening the log for writing cuts it off")
    return _check_head(report, path, by_seq, public_key)


def _remaining_seqs(records: list[AuditRecord]) -> list[set[int]]:
    """For each index, the seqs of the records after it (to tell reordering from loss)."""
    out: list[set[int]] = [set() for _ in records]
    seen: set[int] = set()
    for index in range(len(records) - 1, -1, -1):
        out[index] = set(seen)
        seen.add(records[index].seq)
    return out


def _check_checkpoint(record: AuditRecord, public_key: Ed25519PublicKey | None) -> str | None:
    try:
        cp = Checkpoint.model_validate(record.data)
    except ValidationError as exc:
        return f"malformed checkpoint: {describe_error(exc)}"
    if cp.head != record.prev or cp.through_seq != record.seq - 1:
        return "checkpoint does not name the record before it"
    return _signature_ok(cp, public_key) if public_key is not None else None


def _check_head(report: AuditReport, path: Path, by_seq: dict[int, str],
                public_key: Ed25519PublicKey | None) -> AuditReport:
    head_path = path.with_name(path.name + HEAD_SUFFIX)
    try:
        cp = Checkpoint.model_validate(loads_strict(head_path.read_bytes()))
    except FileNotFoundError:
        if public_key is not None:
            return _problem(report, 0, "missing_head",
                            f"no signed head file {head_path.name}: truncation cannot be "
                            "ruled out")
        return report
    except ValueError as exc:
        return _problem(report, 0, "bad_head", f"{head_path.name}: {describe_error(exc)}")
    if public_key is not None:
        why = _signature_ok(cp, public_key)
        if why is not None:
            return _problem(report, 0, "bad_head", f"{head_path.name}: {why}")
    if cp.through_seq not in by_seq:
        return _problem(report, len(by_seq), "truncated",
                        f"{head_path.name} covers seq {cp.through_seq} but the log ends at "
                        f"seq {report.last_seq}")
    if by_seq[cp.through_seq] != cp.head:
        return _problem(report, cp.through_seq + 1, "bad_head",
                        f"record seq {cp.through_seq} differs from the one {head_path.name} "
                        "signed")
    return report.model_copy(update={"signed_through_seq": cp.through_seq})
