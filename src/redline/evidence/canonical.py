"""Canonical JSON (RFC 8785, JCS) and strict JSON reading for evidence files.

Every hash and signature in ``redline.evidence`` is over canonical bytes, so a third party
with any RFC 8785 implementation recomputes the same digests from the same values. The
``rfc8785`` package is the reference: it passes the RFC's number-serialisation table (ES6
shortest round-trip form) and sorts keys by UTF-16 code units; it rejects what I-JSON cannot
carry (NaN, infinities, integers beyond ±(2**53 - 1), lone surrogates) instead of guessing.

It is pure Python and costs tens of microseconds for a small record, which the guard pays on
every audited check. Most values need nothing RFC 8785 adds to what the C JSON encoder with
sorted keys already writes, so ``canonical_bytes`` hands those to it and everything else
(floats outside the range where Python's shortest repr equals ES6's, keys where code-point and
UTF-16 order could differ, anything unusual) to ``rfc8785``. A property test holds the two
paths byte-equal.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import rfc8785
from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from redline.errors import InputError, NotFoundError


def to_json_value(obj: Any) -> Any:
    """The JSON value of ``obj``: pydantic models (also nested in lists and dicts) as they
    serialise on the wire, with aliases and ISO dates, exactly as ``model_dump(mode="json",
    by_alias=True)`` writes them."""
    return to_jsonable_python(obj, by_alias=True)


#: Largest magnitude of an integer (or integral float) that RFC 8785 writes as digits exactly.
_SAFE_INT = 2**53 - 1
#: Non-integral floats in this range print the same in Python's repr and ES6 (no exponent).
_PLAIN_FLOAT = (1e-4, 1e16)
#: Keys below this code point sort the same by code point and by UTF-16 code unit.
_FIRST_SURROGATE = "\ud800"
_LONE_SURROGATE = ("value cannot be canonicalised as RFC 8785 JSON: a string holds a lone "
                   "surrogate")
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                            allow_nan=False)


class _NeedsReference(Exception):
    """The value holds something only the reference implementation writes correctly."""


def _plain(value: Any) -> Any:
    """``value`` with integral floats as ints, or ``_NeedsReference`` where the C encoder's
    output could differ from RFC 8785. Strings, the most common leaves, skip the call."""
    kind = type(value)
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or max(key) < _FIRST_SURROGATE):
                raise _NeedsReference
            out[key] = item if type(item) is str else _plain(item)
        return out
    if kind is list or kind is tuple:
        return [item if type(item) is str else _plain(item) for item in value]
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if -_SAFE_INT <= value <= _SAFE_INT:
            return value
        raise _NeedsReference
    if kind is float:
        if value.is_integer():
            if -_SAFE_INT <= value <= _SAFE_INT:
                return int(value)
            raise _NeedsReference
        if _PLAIN_FLOAT[0] <= abs(value) < _PLAIN_FLOAT[1]:
            return value
    raise _NeedsReference


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 bytes of a JSON value or a pydantic model."""
    try:
        value = to_json_value(obj)
    except UnicodeEncodeError:
        raise InputError(_LONE_SURROGATE) from None
    return json_value_bytes(value)


def json_value_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of a value that is already plain JSON (dicts, lists, str, numbers,
    bools, None), as ``to_json_value`` returns it."""
    try:
        # Strings: the C encoder escapes exactly RFC 8785's set (quote, backslash, C0
        # controls, short forms for \b\f\n\r\t, lowercase \u00xx); encoding to UTF-8
        # rejects lone surrogates as the reference does.
        return _encoder.encode(_plain(value)).encode()
    except (_NeedsReference, UnicodeEncodeError):
        pass
    try:
        return rfc8785.dumps(value)
    except UnicodeEncodeError:
        # The reference sorts keys by their UTF-16 form, which a lone surrogate lacks.
        raise InputError(_LONE_SURROGATE) from None
    except rfc8785.CanonicalizationError as exc:
        raise InputError(f"value cannot be canonicalised as RFC 8785 JSON: {exc}") from None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_digest(obj: Any) -> str:
    """sha256 (hex) of the canonical bytes: how records are named in a statement."""
    return sha256_hex(canonical_bytes(obj))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Two parsers that keep different copies of a duplicated key would read different
    evidence from the same bytes; such input is refused."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(data: bytes | str) -> Any:
    """Parse JSON refusing duplicate keys and NaN/Infinity; raises ``ValueError``."""
    return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def read_json_file(path: Path, what: str) -> Any:
    """Read an evidence file: not found → exit 4, not strict JSON → exit 2."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"no {what} at {path}") from None
    except IsADirectoryError:
        raise InputError(f"{what} path is a folder", file=path) from None
    try:
        return loads_strict(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} is not valid JSON: {exc}", file=path) from None


def describe_error(exc: ValueError) -> str:
    """One line for a parse or validation error: field paths and messages, not a dump."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}"
                         for e in exc.errors()[:3])
    return str(exc)
