"""Fetching bytes with limits: the fetcher over paths, file:// and http(s):// (fetcher.py),
the length/time limits every download obeys (limits.py), and the lean no-change probe
(probe.py). Imports nothing, so ``transport.limits`` stays cheap for the fast paths."""
