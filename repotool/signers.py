"""Where a private ``--key`` comes from: a key file, ``env:VAR`` or a signer URI (SPEC §6.1).

A ``--key`` value is read as:

* ``env:VAR`` — a PEM private key held in the environment variable ``VAR`` (the CI
  secret). It is unlocked exactly like a key file: an encrypted PEM takes its passphrase
  from ``--passphrase-env``/``--passphrase-file``/the prompt.
* ``SCHEME:...`` where SCHEME is one securesystemslib's ``Signer.from_priv_key_uri``
  knows (``hsm:``, ``gcpkms:``, ``awskms:``, ``azurekms:``, ``hv:``, ``gnupg:``,
  ``file2:``, ``tkey:``) — handed to that library as is. Such a signer does not carry its
  public key: it is matched against the keys the command can use (the repository's or the
  proposal's roots and delegations) by a test signature, so the same URI works for any
  role the key holds. The signer's secret (an HSM PIN) is asked for like a passphrase.
* anything else — a path to a key file (``./env:x`` names a file called ``env:x``).

Nothing here writes; every failure is a one-line ``UserError`` (exit 1) or, for a value
that cannot be a key at all, a ``UsageError`` (exit 2).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from repotool import keys
from repotool.errors import UsageError, UserError

if TYPE_CHECKING:
    from securesystemslib.signer import Key, Signer

__all__ = ["is_uri", "open_signer", "open_signers", "sslib_schemes"]

_SCHEME = re.compile(r"([a-z][a-z0-9+.-]+):")  # two letters at least: C:\ is a path
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Passphrase = Callable[[], "bytes | None"]


def sslib_schemes() -> list[str]:
    from securesystemslib.signer import SIGNER_FOR_URI_SCHEME

    return sorted(SIGNER_FOR_URI_SCHEME)


def _scheme(spec: str) -> str | None:
    m = _SCHEME.match(spec)
    return m.group(1) if m else None


def is_uri(spec: str) -> bool:
    """Whether ``spec`` names a signer URI (``env:`` or a securesystemslib scheme)."""
    scheme = _scheme(spec)
    return scheme is not None and (scheme == "env" or scheme in sslib_schemes())


def open_signers(
    specs: Sequence[str], passphrase: Passphrase, candidates: Callable[[], Sequence[Key]]
) -> list[Signer]:
    """Open every ``--key``; ``candidates`` (called once, only if a URI needs it) gives
    the public keys a URI signer may stand for."""
    cache: list[Sequence[Key]] = []

    def keys_once() -> Sequence[Key]:
        if not cache:
            cache.append(candidates())
        return cache[0]

    return [open_signer(s, passphrase, keys_once) for s in specs]


def open_signer(
    spec: str, passphrase: Passphrase, candidates: Callable[[], Sequence[Key]]
) -> Signer:
    scheme = _scheme(spec)
    if scheme == "env":
        return _from_env(spec, passphrase)
    if scheme is not None and scheme in sslib_schemes():
        return _from_uri(spec, passphrase, candidates())
    if scheme is not None and not Path(spec).exists():
        raise UsageError(
            f"--key {spec!r}: unknown signer URI scheme {scheme!r}",
            "a --key is a key file, env:VAR, or a URI of: " + ", ".join(
                f"{s}:" for s in sslib_schemes()) + " (name a file like that as ./" + spec + ")",
        )
    return keys.load_signer(Path(spec), passphrase)


def _from_env(spec: str, passphrase: Passphrase) -> Signer:
    name = spec[len("env:"):]
    if not _ENV_NAME.fullmatch(name):
        raise UsageError(f"--key {spec!r}: env: takes an environment variable name, "
                         "e.g. env:REPOTOOL_TARGETS_KEY")
    value = os.environ.get(name)
    if value is None:
        raise UserError(f"environment variable {name!r} (--key {spec}) is not set",
                        "export it with the PEM private key, e.g. from your CI's secrets")
    if not value.strip():
        raise UserError(f"environment variable {name!r} (--key {spec}) is empty")
    if "\n" not in value and "\\n" in value:  # a CI secret stored on one line, "\n"-escaped
        value = value.replace("\\n", "\n")
    return keys.load_signer_pem(value.encode(), spec, passphrase)


def _from_uri(spec: str, passphrase: Passphrase, candidates: Sequence[Key]) -> Signer:
    """Open a securesystemslib signer and find which of ``candidates`` it holds."""
    from securesystemslib.signer import Signer

    def secrets(_what: str) -> str:
        secret = passphrase()
        if secret is None:
            raise UserError(f"--key {spec}: the signer asks for a secret (PIN)",
                            "give --passphrase-env VAR or --passphrase-file F")
        return secret.decode()

    if not candidates:
        raise UserError(f"--key {spec}: no key this command can use to match the signer to",
                        "a signer URI signs for a key the repository (or proposal) lists")
    challenge = b"repotool signer check " + os.urandom(16)
    last = "its signature matches none of them"
    for key in candidates:
        try:
            signer = Signer.from_priv_key_uri(spec, key, secrets)
            sig = signer.sign(challenge)
            if sig.keyid != key.keyid:
                continue
            key.verify_signature(sig, challenge)
        except UserError:
            raise
        except Exception as e:  # the backend's own errors: ValueError, OSError, PKCS#11
            text = (str(e).splitlines() or [""])[0][:160]
            if not text.startswith("unsupported scheme"):
                last = f"{type(e).__name__}: {text}" if text else type(e).__name__
            continue
        return signer
    raise UserError(
        f"--key {spec}: the signer holds none of the {len(candidates)} key(s) this "
        f"command can use ({last})",
        "check the URI (and the PIN), and that its public key holds a role: "
        "'repotool repo keys DIR'",
    )
