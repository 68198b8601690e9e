"""Pure formats: bytes in, values out; no I/O, no clock (SPEC §4, docs/format.md)."""
