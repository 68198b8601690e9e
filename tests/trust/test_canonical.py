"""The fast canonical JSON encoder gives securesystemslib's bytes, or its refusal."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from securesystemslib.formats import encode_canonical
from tuf.api.metadata import Metadata, TargetFile, Targets
from tuf.api.serialization.json import CanonicalJSONSerializer

from repotool.trust.canonical import FAST_CANONICAL, canonical_bytes


def slow(obj: Any) -> bytes:
    text = encode_canonical(obj)
    assert text is not None
    return text.encode("utf-8")


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_like)
def test_same_bytes_as_securesystemslib(obj: Any) -> None:
    try:
        want = slow(obj)
    except UnicodeEncodeError:  # lone surrogates: neither encoder can give UTF-8
        with pytest.raises(UnicodeEncodeError):
            canonical_bytes(obj)
        return
    assert canonical_bytes(obj) == want


@pytest.mark.parametrize("text", ['a"b', "a\\b", "line\nbreak", "tab\t", "\x00", "\x7f",
                                  "caf\u00e9", "\u2028", "\U0001f600"])
def test_strings_json_escapes_differently(text: str) -> None:
    """``json`` writes control characters as escapes; canonical JSON writes them raw."""
    obj = {"k": text, text: [text]}
    assert canonical_bytes(obj) == slow(obj)


def test_float_refused_as_securesystemslib_refuses_it() -> None:
    with pytest.raises(Exception, match="cannot encode"):
        canonical_bytes({"a": 1.5})


def test_non_string_key_refused_not_converted() -> None:
    with pytest.raises(Exception):  # noqa: B017 - securesystemslib's own refusal
        slow({1: "a"})
    with pytest.raises(Exception):  # noqa: B017
        canonical_bytes({1: "a"})


def test_tuples_encode_as_lists() -> None:
    obj = {"t": ("a", 1, (True, None))}
    assert canonical_bytes(obj) == slow(obj)


def test_serializer_matches_python_tuf_on_a_targets_role() -> None:
    tgt = Targets(version=3)
    for i in range(300):
        path = f"files/p{i % 7}/p{i}-1.0-py3-none-any.whl"
        tgt.targets[path] = TargetFile(100 + i, {"sha256": f"{i:064x}"}, path)
    tgt.unrecognized_fields["x-note"] = {"name": "caf\u00e9 \"quoted\"\n"}
    md = Metadata(tgt)
    assert FAST_CANONICAL.serialize(md.signed) == CanonicalJSONSerializer().serialize(md.signed)
    del tgt.unrecognized_fields["x-note"]
    assert FAST_CANONICAL.serialize(md.signed) == md.signed_bytes
