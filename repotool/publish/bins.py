"""Format 2: the hash bins follow the repository's size, and the index layout is signed by
the targets role (docs/format.md, "Format version 2").

The bin count is ``2**B`` with ``B = choose_bits(B, F + 2P + 2, BIN_TARGETS, 1)`` (F file
entries, P projects: each project has two simple pages, and two root pages). When B
changes every target is redistributed into new ``SuccinctRoles``; same-named bins keep
their version (the caller bumps it), older ones stay listed in snapshot (python-tuf
refuses a snapshot that drops a role).
"""

from __future__ import annotations

from typing import Any

from tuf.api.metadata import Metadata, Root, SuccinctRoles, Targets

from repotool.format.index2 import BIN_TARGETS, FIELD, IndexLayout, choose_bits, layout_field
from repotool.format.layout import BINS_PREFIX
from repotool.publish.tree import Published, RepositoryTree

__all__ = ["size_bins"]


def size_bins(
    repo: RepositoryTree,
    pub: Published | None,
    targets: Metadata[Targets],
    bins_role: SuccinctRoles,
    root: Root,
    layout: IndexLayout,
) -> tuple[SuccinctRoles, dict[str, Any] | None, bool]:
    """Re-size ``targets``' bins delegation for ``layout`` and record the layout in it.

    Returns the bins role, every published bin target (path → TargetFile) when the bins
    were re-balanced (else None), and whether the layout field changed.
    """
    tr = root.roles["targets"]
    delegations = targets.signed.delegations
    assert delegations is not None
    start = bins_role.bit_length if pub is not None else repo.config().get("bin_bits")
    bin_bits = choose_bits(start, layout.files + 2 * layout.projects + 2, BIN_TARGETS, 1)
    rebalanced: dict[str, Any] | None = None
    if pub is None or bin_bits != bins_role.bit_length:
        rebalanced = {}
        if pub is not None:
            for b in bins_role.get_roles():
                rebalanced.update(repo.load_bin(pub, b).signed.targets)
        bins_role = SuccinctRoles(list(tr.keyids), tr.threshold, bin_bits, BINS_PREFIX)
        delegations.succinct_roles = bins_role
        delegations.keys = {k: root.keys[k] for k in tr.keyids}
    want = layout_field(layout)
    field_changed = targets.signed.unrecognized_fields.get(FIELD) != want
    if field_changed:
        targets.signed.unrecognized_fields[FIELD] = want
    return bins_role, rebalanced, field_changed
