"""The TUF layer shared by the publisher's self-audit and the client: the python-tuf
updater as repotool drives it (updater.py). Imports nothing."""
