"""The user side: sources and keyrings (home.py, sources.py), the update workflow
(update.py), the verified local view (state.py), and the queries over it (queries.py,
resolver.py, targets.py). Imports nothing, so the fast query paths load only what they
use."""
