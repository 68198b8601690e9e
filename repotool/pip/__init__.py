"""pip and uv on verified data: the verified simple index (proxy.py), ``install``
(install.py), build-requirement checks (buildreqs.py) and ``lock`` (lock.py). Imports
nothing."""
