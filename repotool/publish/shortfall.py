"""Step 7 of a sign (``repotool.publish.signing``): does every role written meet its
threshold? Each role is verified with its delegator's keys, as a client would: root by
the old and the new root, the top-level roles by root, bins and developer roles by the
role that delegates them. Nothing is written unless every one does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuf.api.metadata import Targets

from repotool.errors import VerificationError
from repotool.format.layout import BINS_PREFIX
from repotool.trust.canonical import FAST_CANONICAL

if TYPE_CHECKING:
    from securesystemslib.signer import Signer
    from tuf.api.metadata import Metadata, Root

__all__ = ["FAST_CANONICAL", "Signed", "check_missing", "short_of"]  # FAST_CANONICAL: signed bytes

# (role name, metadata, delegator (a Targets) or None, root, the previous root)
Signed = tuple[str, "Metadata[Any]", Any, "Root", "Root | None"]


def _parts(item: Signed) -> list[tuple[str, Any]]:
    """(label, verification result) of one role; root has two: the old and the new."""
    name, md, delegator, root, old_root = item
    payload = FAST_CANONICAL.serialize(md.signed)  # md.signed_bytes, sooner
    if name == "root":
        res = md.signed.get_root_verification_result(old_root, payload, md.signatures)
        labels = ([f"root (old v{old_root.version})", f"root (new v{md.signed.version})"]
                  if old_root is not None else ["root", "root"])
        return list(zip(labels, [res.first, res.second], strict=True))
    if isinstance(delegator, Targets):
        return [(name, delegator.get_verification_result(name, payload, md.signatures))]
    return [(name, root.get_verification_result(name, payload, md.signatures))]


def short_of(signed: list[Signed]) -> set[str]:
    """The roles that do not meet their threshold."""
    return {item[0] for item in signed if not all(p.verified for _, p in _parts(item))}


def check_missing(signed: list[Signed], signers: list[Signer], used: set[str]) -> list[str]:
    """Check every role meets its threshold — and so verify our own output. Returns the
    notes of keys given that signed nothing (SPEC §6.1: ignored, with a note).

    Raises:
        VerificationError: a role is short of signatures; names the keys needed.
    """
    # (role names, in signing order) per distinct shortfall, so 256 bins short of the
    # same key make one line, and top-level roles are named first
    shortfalls: dict[str, list[str]] = {}
    for item in signed:
        for label, part in _parts(item):
            if not part.verified:
                ids = ", ".join(sorted(part.unsigned))
                who = ("key" if len(part.unsigned) == 1 else
                       "keys" if len(part.unsigned) == part.missing else "any of keys")
                what = f"{part.missing} more signature(s) needed, by {who} {ids}"
                if label not in shortfalls.setdefault(what, []):
                    shortfalls[what].append(label)
    problems = []
    for what, names in shortfalls.items():
        if sum(n.startswith("root (") for n in names) == 2:  # old and new: the same keys
            names = ["root" if n.startswith("root (old") else n for n in names
                     if not n.startswith("root (new")]
        top = [n for n in names if not n.startswith(BINS_PREFIX + "-")]
        bins = [n for n in names if n.startswith(BINS_PREFIX + "-")]
        shown = top + (bins if len(bins) <= 2 else [f"{len(bins)} bins"])
        problems.append(f"{', '.join(shown)}: {what}")
    unused = {s.public_key.keyid for s in signers} - used
    if problems:
        uniq = list(dict.fromkeys(problems))
        raise VerificationError(
            "not enough authorized keys to sign; nothing was written: " + "; ".join(uniq[:4])
            + (f" (and {len(uniq) - 4} more)" if len(uniq) > 4 else "")
            + (f" (ignored, holding no role written: {', '.join(sorted(unused))})"
               if unused else ""),
            "give the private keys of the roles named (--key), or check 'repotool repo keys'",
        )
    return [f"key {keyid} holds no role this sign writes: ignored" for keyid in sorted(unused)]
