"""repotool: signed Python package repositories, apt's user model, TUF's protections.

Nothing heavy is imported here: the CLI's start-up budget (SPEC §5) depends on it.
"""

from repotool import lazyimports

__all__ = ["__version__"]

__version__ = "0.2.0"

lazyimports.install()  # securesystemslib's cloud signer backends load on first use
