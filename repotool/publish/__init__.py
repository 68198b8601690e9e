"""The publisher: a repository directory, its changes, signing, checking and serving.

Import the modules themselves (``repotool.publish.workspace`` …): this package imports
nothing, so a command pays only for what it uses (SPEC §5).
"""
