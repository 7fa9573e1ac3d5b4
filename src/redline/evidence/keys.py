"""Ed25519 signing keys on disk: PEM files, a private key readable by its owner only.

The key id is the sha256 of the public key's DER SubjectPublicKeyInfo, so anyone can
recompute it from the ``.pub`` file (``openssl pkey -pubin -in K.pub -outform DER |
sha256sum``) and no registry of ids is needed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from redline.errors import InputError, NotFoundError

PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"


def key_id(public_key: Ed25519PublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class KeyPair:
    private_path: Path
    public_path: Path
    key_id: str


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 (never readable by others, not even briefly), refusing
    to replace an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputError("refusing to overwrite an existing file", file=path) from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_keypair_files(prefix: Path, private_pem: bytes, public_pem: bytes) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (0600) and ``PREFIX.pub``; refuses to overwrite either, so a
    signing key in use is never lost. Shared by evidence signing and model signing."""
    private_path = prefix.with_name(prefix.name + PRIVATE_SUFFIX)
    public_path = prefix.with_name(prefix.name + PUBLIC_SUFFIX)
    for path in (private_path, public_path):
        if path.exists():
            raise InputError("refusing to overwrite an existing key file", file=path)
    if not private_path.parent.is_dir():
        raise InputError(f"no folder {private_path.parent} for the key files")
    write_private_file(private_path, private_pem)
    with public_path.open("xb") as fh:
        fh.write(public_pem)
    return private_path, public_path


def generate_keypair(prefix: Path) -> KeyPair:
    """Write ``PREFIX.key`` (PKCS#8 PEM, 0600) and ``PREFIX.pub`` (SPKI PEM)."""
    private = Ed25519PrivateKey.generate()
    public = private.public_key()
    private_path, public_path = write_keypair_files(
        prefix,
        private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
        public.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    return KeyPair(private_path, public_path, key_id(public))


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"no {what} at {path}") from None
    except IsADirectoryError:
        raise InputError(f"{what} path is a folder", file=path) from None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"not an unencrypted PEM private key: {exc}", file=path) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"expected an Ed25519 key, found {type(key).__name__}", file=path)
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InputError(f"not a PEM public key: {exc}", file=path) from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"expected an Ed25519 key, found {type(key).__name__}", file=path)
    return key
