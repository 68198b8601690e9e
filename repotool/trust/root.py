"""A repository's first root, checked against the keys the user vouches for.

``source add`` trusts a root only when it meets its own threshold and, with ``--key``,
lists every given key as a root key and carries a valid signature by each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repotool.errors import DownloadError, FormatError, RepotoolError, UserError, VerificationError

__all__ = ["check_root", "download_root", "parse_root", "read_root_file", "repo_name",
           "root_max_length", "short_error"]

root_max_length = 512 * 1024  # bytes of one root.json


def parse_root(data: bytes, origin: str) -> Any:
    from tuf.api.metadata import Metadata, Root

    try:
        md = Metadata.from_bytes(data)
    except Exception as e:
        raise FormatError(f"{origin} is not valid TUF metadata: {short_error(e)}") from None
    if not isinstance(md.signed, Root):
        raise FormatError(f"{origin} is {md.signed.type!r} metadata, not a root")
    return md


def short_error(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


def download_root(fetcher: Any, url: str) -> bytes:
    """The bytes of the root at ``url`` (at most ``root_max_length``), not yet checked.

    Raises:
        RepotoolError: the download failed, as ``translate_download_error`` words it.
    """
    from repotool.transport.fetcher import translate_download_error

    try:
        return bytes(fetcher.download_bytes(url, root_max_length))
    except Exception as e:
        err = translate_download_error(e, url)
        raise err if isinstance(err, RepotoolError) else DownloadError(
            f"{url}: {short_error(err)}") from None


def check_root(data: bytes, origin: str, key_ids: list[str]) -> Any:
    """The root in ``data`` (``Metadata[Root]``) if it meets its own threshold and, with
    ``key_ids``, lists each as a root key and carries a valid signature by each.

    Raises:
        FormatError: not a root.
        VerificationError: the signatures do not hold.
    """
    md = parse_root(data, origin)
    root = md.signed
    try:
        root.verify_delegate("root", md.signed_bytes, md.signatures)
    except Exception as e:
        raise VerificationError(f"{origin}: root is not signed by its own threshold: {e}") \
            from None
    if key_ids:
        from securesystemslib.exceptions import UnverifiedSignatureError

        root_keys = set(root.roles["root"].keyids)
        for kid in key_ids:
            if kid not in root_keys:
                raise VerificationError(
                    f"{origin}: key {kid} is not a root key of the repository's first root",
                    "check the key or fingerprint the publisher gave you; after a root "
                    "key rotation, add it with the original key or with --root ROOT.json",
                )
            sig = md.signatures.get(kid)
            try:
                if sig is None:
                    raise UnverifiedSignatureError("missing")
                root.get_key(kid).verify_signature(sig, md.signed_bytes)
            except UnverifiedSignatureError:
                raise VerificationError(
                    f"{origin}: the repository's root carries no valid signature by key "
                    f"{kid}"
                ) from None
    return md


def repo_name(root: Any) -> str:
    field_ = root.unrecognized_fields.get("x-repotool")
    if isinstance(field_, dict) and isinstance(field_.get("name"), str):
        return str(field_["name"])
    return ""


def read_root_file(root_file: Path, key_ids: list[str]) -> tuple[bytes, Any]:
    """A root.json the user gave (``--root``), read and checked by ``check_root``.

    Raises:
        UserError: the file cannot be read, or is not a root those keys vouch for.
    """
    try:
        data = root_file.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {str(root_file)!r}: {e.strerror}") from None
    try:
        return data, check_root(data, str(root_file), key_ids)
    except FormatError as e:
        raise UserError(e.message, "give the root.json the publisher gave you") from None
