"""A static HTTP server for a repository directory, for local use and tests.

Serves files as they are on disk (any web server would do the same), never dotfiles
(the publisher's ``.repotool/`` workspace), and answers PEP 691 content negotiation
for the simple index (``index.json`` when the client prefers JSON).
"""

from __future__ import annotations

import http.server
import posixpath
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repotool.errors import UserError

__all__ = ["make_server", "serve_directory"]

JSON_TYPE = "application/vnd.pypi.simple.v1+json"


class _Handler(http.server.SimpleHTTPRequestHandler):
    server_version = "repotool"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_head(self) -> Any:
        path = urllib.parse.urlsplit(self.path).path
        parts = [p for p in posixpath.normpath(urllib.parse.unquote(path)).split("/") if p]
        if any(p.startswith(".") for p in parts):
            self.send_error(404)
            return None
        if path.endswith("/") and "json" in self.headers.get("Accept", ""):
            accept = self.headers.get("Accept", "")
            local = Path(self.translate_path(path)) / "index.json"
            if JSON_TYPE in accept and local.is_file():
                data = local.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", JSON_TYPE)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                import io

                return io.BytesIO(data)
        return super().send_head()

    def list_directory(self, path: Any) -> Any:
        self.send_error(404)
        return None


def make_server(
    directory: Path, host: str = "127.0.0.1", port: int = 0
) -> http.server.ThreadingHTTPServer:
    root = str(directory.resolve())

    def handler(*args: Any, **kwargs: Any) -> _Handler:
        return _Handler(*args, directory=root, **kwargs)

    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_directory(
    directory: Path, host: str, port: int, announce: Callable[[str], object]
) -> None:
    """Serve ``directory`` until interrupted; ``announce`` gets the base URL once listening.

    Raises:
        UserError: ``directory`` holds no published repository (no ``metadata/``).
    """
    if not (directory / "metadata").is_dir():
        raise UserError(f"{str(directory)!r} holds no published repository",
                        "run 'repotool repo sign' first")
    server = make_server(directory, host, port)
    h, p = server.server_address[:2]
    h = h.decode() if isinstance(h, bytes) else str(h)
    shown = f"[{h}]" if ":" in h else h
    announce(f"http://{shown}:{p}/")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
