"""Key files: generation, modes, fingerprints, and every kind of bad key input (SPEC §2, §3.10)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from conftest import cli
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from repotool import keys
from repotool.errors import UserError

FPR = re.compile(r"^[0-9a-f]{64}$")
PASS = {"RT_PASS": "correct horse battery staple"}


def _gen(tmp_path: Path, *args: str, name: str = "k") -> tuple[Path, str]:
    r = cli("key", "generate", tmp_path / name, *args, env=PASS)
    assert r.exit_code == 0, r.output
    fpr = r.stdout.strip()
    assert FPR.match(fpr), r.stdout
    return tmp_path / name, fpr


def _one_line_error(r: object, code: int = 1) -> None:
    assert r.exit_code == code, r.output  # type: ignore[attr-defined]
    lines = [x for x in r.stderr.splitlines() if x.strip()]  # type: ignore[attr-defined]
    assert 1 <= len(lines) <= 2, r.stderr  # type: ignore[attr-defined]
    assert lines[0].startswith("repotool: error:"), r.stderr  # type: ignore[attr-defined]


# ---- generate -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["env", "file"])
def test_generate_encrypted_key_and_fingerprints_agree(tmp_path: Path, how: str) -> None:
    pf = tmp_path / "pass.txt"
    pf.write_text(PASS["RT_PASS"] + "\n")  # a trailing newline is not part of the passphrase
    opt = ["--passphrase-env", "RT_PASS"] if how == "env" else ["--passphrase-file", str(pf)]
    prefix, fpr = _gen(tmp_path, *opt)
    priv, pub = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in priv.read_bytes()
    assert b"BEGIN PUBLIC KEY" in pub.read_bytes()
    # the .pub and the (unlocked) .key have the same fingerprint, the one printed
    assert cli("key", "fingerprint", pub).stdout.strip() == fpr
    r = cli("key", "fingerprint", priv, *opt, env=PASS)
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == fpr
    # both passphrase sources unlock the same key
    r = cli("key", "fingerprint", priv, "--passphrase-file", str(pf))
    assert r.stdout.strip() == fpr


def test_generate_no_passphrase(tmp_path: Path) -> None:
    prefix, fpr = _gen(tmp_path, "--no-passphrase")
    priv = Path(f"{prefix}.key")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert b"ENCRYPTED" not in priv.read_bytes()
    assert cli("key", "fingerprint", priv).stdout.strip() == fpr
    assert keys.fingerprint_of_file(priv) == fpr == keys.public_from_file(
        Path(f"{prefix}.pub")).keyid


def test_fingerprint_is_tuf_key_id(tmp_path: Path) -> None:
    """The fingerprint is python-tuf's key id for the key (SPEC §2)."""
    from securesystemslib.signer import SSlibKey

    prefix, fpr = _gen(tmp_path, "--no-passphrase")
    pem = Path(f"{prefix}.pub").read_bytes()
    pub = serialization.load_pem_public_key(pem)
    assert SSlibKey.from_crypto(pub, scheme="ed25519").keyid == fpr  # type: ignore[arg-type]


def test_generate_never_overwrites(tmp_path: Path) -> None:
    prefix, _ = _gen(tmp_path, "--no-passphrase")
    before = Path(f"{prefix}.key").read_bytes(), Path(f"{prefix}.pub").read_bytes()
    r = cli("key", "generate", prefix, "--no-passphrase")
    _one_line_error(r)
    assert "already exists" in r.stderr
    assert (Path(f"{prefix}.key").read_bytes(), Path(f"{prefix}.pub").read_bytes()) == before


def test_generate_refuses_when_only_pub_exists(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_text("mine\n")
    r = cli("key", "generate", tmp_path / "k", "--no-passphrase")
    _one_line_error(r)
    assert not (tmp_path / "k.key").exists()
    assert (tmp_path / "k.pub").read_text() == "mine\n"


def test_generate_passphrase_options_conflict(tmp_path: Path) -> None:
    r = cli("key", "generate", tmp_path / "k", "--no-passphrase", "--passphrase-env", "RT_PASS",
            env=PASS)
    assert r.exit_code == 2
    assert not (tmp_path / "k.key").exists()


def test_generate_without_terminal_or_passphrase_fails(tmp_path: Path) -> None:
    r = cli("key", "generate", tmp_path / "k")
    _one_line_error(r)
    assert not (tmp_path / "k.key").exists()


def test_generate_empty_passphrase_refused(tmp_path: Path) -> None:
    r = cli("key", "generate", tmp_path / "k", "--passphrase-env", "EMPTY", env={"EMPTY": ""})
    _one_line_error(r)
    assert not (tmp_path / "k.key").exists()


def test_generate_unset_env_var(tmp_path: Path) -> None:
    assert "RT_UNSET_VAR_X" not in os.environ
    r = cli("key", "generate", tmp_path / "k", "--passphrase-env", "RT_UNSET_VAR_X")
    _one_line_error(r)
    assert "not set" in r.stderr
    assert not (tmp_path / "k.key").exists()


def test_generate_in_missing_directory(tmp_path: Path) -> None:
    r = cli("key", "generate", tmp_path / "nope" / "k", "--no-passphrase")
    _one_line_error(r)


# ---- bad key input: one line, exit 1, no traceback -------------------------------------


def _rsa_pem(private: bool) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if private:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def test_wrong_passphrase(tmp_path: Path) -> None:
    prefix, _ = _gen(tmp_path, "--passphrase-env", "RT_PASS")
    r = cli("key", "fingerprint", f"{prefix}.key", "--passphrase-env", "RT_PASS",
            env={"RT_PASS": "wrong"})
    _one_line_error(r)
    assert "wrong passphrase" in r.stderr
    with pytest.raises(UserError, match="wrong passphrase"):
        keys.load_signer(Path(f"{prefix}.key"), lambda: b"wrong")


def test_encrypted_key_without_passphrase(tmp_path: Path) -> None:
    prefix, _ = _gen(tmp_path, "--passphrase-env", "RT_PASS")
    r = cli("key", "fingerprint", f"{prefix}.key")
    _one_line_error(r)
    with pytest.raises(UserError, match="encrypted"):
        keys.load_signer(Path(f"{prefix}.key"), lambda: None)


BAD_FILES = {
    "not_a_key": b"hello, I am not a key\n",
    "empty": b"",
    "binary": bytes(range(256)),
    "rsa_public": None,  # filled in lazily (key generation)
    "rsa_private": None,
    "truncated_public": b"TRUNC_PUB",
    "truncated_private": b"TRUNC_PRIV",
    "garbage_pem_public": b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    "garbage_pem_private": b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
    "huge": b"x" * (keys.key_file_max_length + 10),
}


def _bad_file(tmp_path: Path, kind: str) -> Path:
    data = BAD_FILES[kind]
    if kind == "rsa_public":
        data = _rsa_pem(False)
    elif kind == "rsa_private":
        data = _rsa_pem(True)
    elif kind.startswith("truncated"):
        prefix, _ = _gen(tmp_path, "--no-passphrase", name="good")
        full = Path(f"{prefix}.pub" if kind == "truncated_public" else f"{prefix}.key").read_bytes()
        data = full[: len(full) // 2]
    assert data is not None
    p = tmp_path / f"{kind}.pem"
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_key_file_fingerprint(tmp_path: Path, kind: str) -> None:
    r = cli("key", "fingerprint", _bad_file(tmp_path, kind))
    _one_line_error(r)


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_public_key_in_repo_init(tmp_path: Path, kind: str) -> None:
    r = cli("repo", "init", tmp_path / "repo", "--name", "x", "--key", _bad_file(tmp_path, kind))
    _one_line_error(r)
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_private_key_in_sign(kind: str, tmp_path: Path) -> None:
    prefix, _ = _gen(tmp_path, "--no-passphrase", name="pub")
    repo = tmp_path / "repo"
    assert cli("repo", "init", repo, "--name", "x", "--key", f"{prefix}.pub").exit_code == 0
    r = cli("repo", "sign", repo, "--key", _bad_file(tmp_path, kind))
    _one_line_error(r)
    assert not (repo / "metadata").exists()


def test_rsa_key_named_as_such(tmp_path: Path) -> None:
    r = cli("key", "fingerprint", _bad_file(tmp_path, "rsa_public"))
    assert "not an Ed25519 key" in r.stderr
    r = cli("key", "fingerprint", _bad_file(tmp_path, "rsa_private"))
    assert "not an Ed25519 key" in r.stderr


def test_private_key_given_as_public(tmp_path: Path) -> None:
    prefix, _ = _gen(tmp_path, "--no-passphrase")
    r = cli("repo", "init", tmp_path / "repo", "--name", "x", "--key", f"{prefix}.key")
    _one_line_error(r)
    assert "private key" in r.stderr


def test_public_key_given_as_private(make_published) -> None:
    pub = make_published()
    r = cli("repo", "sign", pub.root, "--key", pub.key.public)
    _one_line_error(r)
    assert "not a private key" in r.stderr


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_missing_or_directory_key_file(tmp_path: Path, what: str) -> None:
    target = tmp_path / "nothing.pub"
    if what == "directory":
        target.mkdir()
    r = cli("key", "fingerprint", target)
    _one_line_error(r)
    assert ("not found" if what == "missing" else "directory") in r.stderr


def test_load_signer_signs_with_the_key(tmp_path: Path) -> None:
    """A fixed seed gives a fixed key: the loaded signer is that key."""
    seed = bytes(range(32))
    key = Ed25519PrivateKey.from_private_bytes(seed)
    p = tmp_path / "seed.key"
    p.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    signer = keys.load_signer(p, lambda: None)
    sig = signer.sign(b"payload")
    signer.public_key.verify_signature(sig, b"payload")
    assert keys.is_fingerprint(signer.public_key.keyid)
    assert not keys.is_fingerprint(signer.public_key.keyid.upper())
