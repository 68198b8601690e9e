"""Ed25519 keys: generation, files, fingerprints and signers.

Key files:

* ``PREFIX.key`` — the private key, PEM PKCS#8, encrypted with a passphrase
  (``BestAvailableEncryption``) unless generated with ``--no-passphrase``; created
  with ``O_EXCL`` and mode 0600.
* ``PREFIX.pub`` — the public key, PEM SubjectPublicKeyInfo (``openssl pkey -pubin``
  reads it).

A fingerprint is the key's TUF key id: the sha256 of the canonical JSON of
``{"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": HEX}}``, 64
lowercase hex digits. Every primitive comes from ``cryptography`` (through
securesystemslib's ``SSlibKey``/``CryptoSigner``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NewType

from repotool.errors import UserError

if TYPE_CHECKING:
    from securesystemslib.signer import CryptoSigner, SSlibKey

__all__ = [
    "Fingerprint",
    "GeneratedKey",
    "generate",
    "is_fingerprint",
    "load_public",
    "load_signer",
    "load_signer_pem",
    "public_from_file",
]

Fingerprint = NewType("Fingerprint", str)

_FPR = re.compile(r"[0-9a-f]{64}")
key_file_max_length = 64 * 1024  # bytes; a key file is a few hundred bytes


def is_fingerprint(text: str) -> bool:
    return bool(_FPR.fullmatch(text))


@dataclass(frozen=True)
class GeneratedKey:
    private_path: Path
    public_path: Path
    fingerprint: Fingerprint


def _sslib_key(public_key: object) -> SSlibKey:
    from securesystemslib.signer import SSlibKey

    return SSlibKey.from_crypto(public_key, scheme="ed25519")  # type: ignore[arg-type]


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` exclusively with ``mode``; never overwrite."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise UserError(
            f"{str(path)!r} already exists", "choose another prefix; keys are never overwritten"
        ) from None
    except OSError as e:
        raise UserError(f"cannot create {str(path)!r}: {e.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def generate(prefix: Path, passphrase: bytes | None) -> GeneratedKey:
    """Write ``PREFIX.key`` (0600, encrypted unless ``passphrase`` is None) and ``PREFIX.pub``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    priv_path = Path(f"{prefix}.key")
    pub_path = Path(f"{prefix}.pub")
    for p in (priv_path, pub_path):
        if p.exists():
            raise UserError(
                f"{str(p)!r} already exists", "choose another prefix; keys are never overwritten"
            )
    key = Ed25519PrivateKey.generate()
    enc: serialization.KeySerializationEncryption
    if passphrase is None:
        enc = serialization.NoEncryption()
    else:
        if not passphrase:
            raise UserError("empty passphrase", "give a passphrase, or --no-passphrase")
        enc = serialization.BestAvailableEncryption(passphrase)
    priv_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc
    )
    pub_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(priv_path, priv_pem, 0o600)
    _write_new(pub_path, pub_pem, 0o644)
    return GeneratedKey(priv_path, pub_path, Fingerprint(_sslib_key(key.public_key()).keyid))


def _read_key_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(key_file_max_length + 1)
    except FileNotFoundError:
        raise UserError(f"key file {str(path)!r} not found") from None
    except IsADirectoryError:
        raise UserError(f"key file {str(path)!r} is a directory") from None
    except OSError as e:
        raise UserError(f"cannot read key file {str(path)!r}: {e.strerror}") from None
    if len(data) > key_file_max_length:
        raise UserError(f"{str(path)!r} is too large to be a key file")
    return data


def load_public(data: bytes, origin: str) -> SSlibKey:
    """Parse a PEM public key into a TUF key: Ed25519 (what ``key generate`` writes), or
    ECDSA P-256/P-384 (the keys of HSMs and KMSs that sign through a signer URI)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from securesystemslib.signer import SSlibKey

    try:
        pub = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise UserError(
            f"{origin!r} is not a PEM public key", "give the .pub file written by 'key generate'"
        ) from None
    if isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name in _EC_SCHEMES:
        return SSlibKey.from_crypto(pub, scheme=_EC_SCHEMES[pub.curve.name])
    if not isinstance(pub, Ed25519PublicKey):
        raise UserError(f"{origin!r} is not an Ed25519 key",
                        "repotool's keys are Ed25519 (ECDSA P-256/P-384 for HSM and KMS keys)")
    return _sslib_key(pub)


_EC_SCHEMES = {"secp256r1": "ecdsa-sha2-nistp256", "secp384r1": "ecdsa-sha2-nistp384"}


def public_from_file(path: Path) -> SSlibKey:
    """The public half of a public *or* private key file (private ones unencrypted or not:
    the public half of an encrypted PKCS#8 file cannot be read without the passphrase)."""
    data = _read_key_file(path)
    if b"PRIVATE KEY" in data:
        raise UserError(
            f"{str(path)!r} is a private key",
            "give the .pub file; private keys are read only by commands that sign",
        )
    return load_public(data, str(path))


def fingerprint_of_file(path: Path, passphrase: bytes | None = None) -> Fingerprint:
    """Fingerprint of a public key file, or of a private one (unlocked if encrypted)."""
    data = _read_key_file(path)
    if b"PRIVATE KEY" in data:
        signer = _load_private(data, str(path), lambda: passphrase)
        return Fingerprint(signer.public_key.keyid)
    return Fingerprint(load_public(data, str(path)).keyid)


def is_encrypted(path: Path) -> bool:
    return b"ENCRYPTED PRIVATE KEY" in _read_key_file(path)


def _load_private(
    data: bytes, origin: str, passphrase: object
) -> CryptoSigner:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from securesystemslib.signer import CryptoSigner

    if b"PRIVATE KEY" not in data:
        raise UserError(f"{origin!r} is not a private key", "give the .key file")
    secret: bytes | None = None
    if b"ENCRYPTED PRIVATE KEY" in data:
        assert callable(passphrase)
        secret = passphrase()
        if secret is None:
            raise UserError(
                f"{origin!r} is encrypted",
                "give --passphrase-env VAR or --passphrase-file F (or type it at the prompt)",
            )
    try:
        key = serialization.load_pem_private_key(data, password=secret)
    except ValueError as e:
        if secret is not None and ("password" in str(e).lower() or "decrypt" in str(e).lower()):
            raise UserError(f"wrong passphrase for {origin!r}") from None
        raise UserError(f"{origin!r} is not a readable PEM private key") from None
    except (TypeError, UnsupportedAlgorithm):
        raise UserError(f"{origin!r} is not a readable PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UserError(f"{origin!r} is not an Ed25519 key", "repotool signs with Ed25519 only")
    return CryptoSigner(key, _sslib_key(key.public_key()))


def load_signer(path: Path, passphrase: object) -> CryptoSigner:
    """Unlock a private key file. ``passphrase`` is a callable returning bytes or None,
    called only when the file is encrypted."""
    return _load_private(_read_key_file(path), str(path), passphrase)


def load_signer_pem(data: bytes, origin: str, passphrase: object) -> CryptoSigner:
    """Unlock a PEM private key held in memory (e.g. an environment variable), exactly as
    a key file is unlocked; ``origin`` names it in errors and never shows the secret."""
    if len(data) > key_file_max_length:
        raise UserError(f"{origin} is too large to be a key")
    return _load_private(data, origin, passphrase)
