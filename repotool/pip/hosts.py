"""Which Host names the proxy answers (the DNS-rebinding guard) and what counts as
loopback."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["HostCheck", "is_loopback"]

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the proxy on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_host(header: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a Host header (name lower-cased, IPv6 in brackets), or
    None when it is not ``NAME``, ``NAME:PORT``, ``[V6]`` or ``[V6]:PORT``."""
    text = header.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        name, rest = text[:end + 1], text[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, sep, port_text_ = text.partition(":")
        port_text = port_text_ if sep else None
    if not name or (port_text is not None and not (port_text.isdigit() and len(port_text) <= 5)):
        return None
    return name, int(port_text) if port_text is not None else None


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True)
class HostCheck:
    """The ``Host`` headers the proxy answers — its guard against DNS rebinding.

    A web page on ``attacker.example`` whose DNS name is re-pointed at 127.0.0.1 makes
    the browser send its requests (and read the answers) to the proxy, with
    ``Host: attacker.example``: refused here (421), so no project list or file leaves.

    Answered: ``localhost``, ``127.0.0.1``, ``[::1]``, the exact ``--host`` given and
    every ``--allow-host`` name, each with the port the proxy listens on (a missing
    port only for port 80 or an ``--allow-host`` name: a reverse proxy in front).
    Listening beyond loopback (``--host 0.0.0.0`` or a LAN address) also answers any
    IP address literal: a rebinding attack needs a DNS name, and clients on the
    network reach the proxy by one of this machine's addresses, which we cannot list.
    A LAN DNS name must be named with ``--allow-host``.
    """

    port: int
    names: frozenset[str]
    allowed: frozenset[str] = frozenset()  # --allow-host names (any port or none)
    any_ip: bool = False

    @classmethod
    def for_address(cls, host: str, port: int, allow: tuple[str, ...] = ()) -> HostCheck:
        names = {*_LOOPBACK_NAMES, _bracketed(host.lower())}
        any_ip = not is_loopback(host)
        return cls(port, frozenset(names), frozenset(_bracketed(a.lower()) for a in allow),
                   any_ip)

    def accepts(self, header: str | None) -> bool:
        if header is None:
            return False  # HTTP/1.1 requires it; a browser always sends one
        split = _split_host(header)
        if split is None:
            return False
        name, port = split
        if name in self.allowed:
            return port is None or port == self.port
        if port != self.port and not (port is None and self.port == 80):
            return False
        if name in self.names:
            return True
        if self.any_ip:
            try:
                ipaddress.ip_address(name[1:-1] if name.startswith("[") else name)
            except ValueError:
                return False
            return True
        return False

    def describe(self) -> str:
        """The accepted names, for the warning of a proxy listening beyond loopback."""
        names = sorted(self.names | self.allowed)
        return ", ".join(["any IP address", *names] if self.any_ip else names)
