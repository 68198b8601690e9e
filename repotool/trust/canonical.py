"""Canonical JSON of a role, the bytes signatures are made over, at C speed.

python-tuf's ``CanonicalJSONSerializer`` encodes with securesystemslib's OLPC canonical
JSON encoder, written in Python: at 100,000 targets that is most of what signing a
repository's bins costs. OLPC canonical JSON is ``json.dumps`` with sorted keys, no
whitespace and raw (non-ASCII-escaped) strings, except in three places: it escapes
only ``"`` and ``\\`` in strings (``json`` also escapes control characters), it
refuses floats, and it refuses non-string keys (``json`` converts them). So
:func:`canonical_bytes` encodes with ``json`` and keeps the result only when none of
the three can have happened: no backslash in the output (no string held ``"``, ``\\``
or a control character), and the output parses back, float-free, to the very object
encoded. Anything else is encoded by securesystemslib, so the bytes are the same
either way (``tests/trust/test_canonical.py`` checks it on arbitrary objects).
"""

from __future__ import annotations

import json
from typing import Any

from tuf.api.metadata import Signed
from tuf.api.serialization import SignedSerializer
from tuf.api.serialization.json import CanonicalJSONSerializer

__all__ = ["FAST_CANONICAL", "FastCanonicalSerializer", "canonical_bytes"]

_SLOW = CanonicalJSONSerializer()


class _HasFloat(Exception):
    pass


def _refuse_float(text: str) -> Any:
    raise _HasFloat(text)


def _fast(obj: Any) -> bytes | None:
    """``obj`` as canonical JSON through ``json``, or None where that might differ."""
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False, check_circular=False)
        if "\\" in text or json.loads(text, parse_float=_refuse_float) != obj:
            return None
        return text.encode("utf-8")
    except (TypeError, ValueError, UnicodeError, RecursionError, _HasFloat):
        return None


def canonical_bytes(obj: Any) -> bytes:
    """OLPC canonical JSON of a JSON-like object (as securesystemslib encodes it)."""
    from securesystemslib.formats import encode_canonical

    fast = _fast(obj)
    if fast is not None:
        return fast
    text = encode_canonical(obj)
    assert text is not None
    return text.encode("utf-8")


class FastCanonicalSerializer(SignedSerializer):
    """python-tuf's ``CanonicalJSONSerializer``, the same bytes, sooner."""

    def serialize(self, signed_obj: Signed) -> bytes:
        fast = _fast(signed_obj.to_dict())
        return fast if fast is not None else _SLOW.serialize(signed_obj)


FAST_CANONICAL = FastCanonicalSerializer()
