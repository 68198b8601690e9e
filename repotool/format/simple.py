"""PEP 503 (HTML) and PEP 691 (JSON) simple-index pages, generated from the index.

Pages live at ``simple/index.{html,json}`` and ``simple/PROJECT/index.{html,json}``;
links point to ``../../files/PROJECT/FILENAME#sha256=HEX`` (relative, so any mirror
or the verified proxy can serve the same bytes). ``base`` lets the proxy point links
at itself instead. A wheel whose core metadata is published (``FILENAME.metadata``, PEP
658/714) is advertised with its sha256: ``data-core-metadata`` and
``data-dist-info-metadata`` in HTML, ``core-metadata`` and ``data-dist-info-metadata``
in JSON (the names pip and uv read; PyPI sends the same pair). ``metadata`` adds such
hashes (filename -> sha256) for files whose entry has none, as the proxy does for
wheels it verified itself.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping

from repotool.format.index import FileEntry, Project

__all__ = ["project_html", "project_json", "root_html", "root_json"]

JSON_CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_CONTENT_TYPE = "text/html; charset=utf-8"
API_VERSION = "1.1"


def _file_url(project: str, f: FileEntry, base: str | None) -> str:
    if base is None:
        return f"../../files/{project}/{f.filename}"
    return f"{base}files/{project}/{f.filename}"


def _metadata_sha(f: FileEntry, extra: Mapping[str, str] | None) -> str | None:
    if f.metadata_sha256 is not None:
        return f.metadata_sha256
    return extra.get(f.filename) if extra else None


def project_html(p: Project, base: str | None = None,
                 metadata: Mapping[str, str] | None = None) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html><head><meta name=\"pypi:repository-version\" content=\"1.1\">"
        f"<title>Links for {html.escape(p.name)}</title></head><body>",
        f"<h1>Links for {html.escape(p.name)}</h1>",
    ]
    for f in sorted(p.files, key=lambda f: f.filename):
        attrs = f'href="{html.escape(_file_url(p.name, f, base))}#sha256={f.sha256}"'
        if f.requires_python:
            attrs += f' data-requires-python="{html.escape(f.requires_python)}"'
        if (msha := _metadata_sha(f, metadata)) is not None:
            attrs += f' data-dist-info-metadata="sha256={msha}" data-core-metadata="sha256={msha}"'
        if f.yanked is not False:
            reason = "" if f.yanked is True else str(f.yanked)
            attrs += f' data-yanked="{html.escape(reason)}"'
        lines.append(f"<a {attrs}>{html.escape(f.filename)}</a><br>")
    lines.append("</body></html>")
    return ("\n".join(lines) + "\n").encode()


def project_json(p: Project, base: str | None = None,
                 metadata: Mapping[str, str] | None = None) -> bytes:
    files = []
    for f in sorted(p.files, key=lambda f: f.filename):
        d: dict[str, object] = {
            "filename": f.filename,
            "url": _file_url(p.name, f, base),
            "hashes": {"sha256": f.sha256},
            "requires-python": f.requires_python,
            "size": f.size,
            "upload-time": f.upload_time,
            "yanked": f.yanked,
        }
        if (msha := _metadata_sha(f, metadata)) is not None:
            d["core-metadata"] = d["data-dist-info-metadata"] = {"sha256": msha}
        files.append(d)
    doc = {
        "meta": {"api-version": API_VERSION},
        "name": p.name,
        "versions": [str(v) for v in p.versions()],
        "files": files,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def root_html(projects: Iterable[str]) -> bytes:
    body = "\n".join(
        f'<a href="{html.escape(n)}/">{html.escape(n)}</a><br>' for n in sorted(projects)
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\">"
        "<title>Simple index</title></head><body>\n" + body + "\n</body></html>\n"
    ).encode()


def root_json(projects: Iterable[str]) -> bytes:
    doc = {
        "meta": {"api-version": API_VERSION},
        "projects": [{"name": n} for n in sorted(projects)],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
