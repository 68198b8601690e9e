"""The pure formats: index shards (docs/format.md §Index shards) and simple pages (§Simple)."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import html.parser
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.utils import canonicalize_name

from repotool.errors import FormatError
from repotool.format import simple
from repotool.format.index import FORMAT_VERSION, FileEntry, Project, Shard, shard_of, shard_path

SHA = "a" * 64


def test_shard_of_is_first_two_hex_of_sha256() -> None:
    assert shard_of("demo-pkg") == hashlib.sha256(b"demo-pkg").hexdigest()[:2]
    assert shard_path("0f") == "index/0f.json"
    assert len({shard_of(f"p{i}") for i in range(2000)}) == 256


def _entry(project: str = "demo-pkg", version: str = "1.0", **kw: Any) -> FileEntry:
    d: dict[str, Any] = {
        "filename": f"{project.replace('-', '_')}-{version}-py3-none-any.whl",
        "version": version,
        "sha256": SHA,
        "size": 123,
        "requires_python": ">=3.8",
        "requires_dist": ("dep-a>=1",),
        "upload_time": "2030-01-02T03:04:05Z",
        "yanked": False,
    }
    d.update(kw)
    return FileEntry(**d)


def _shard(project: str = "demo-pkg", files: list[FileEntry] | None = None) -> Shard:
    sid = shard_of(project)
    files = files if files is not None else [_entry(project)]
    return Shard(sid, {project: Project(project, "A demo", files)})


def test_canonical_bytes() -> None:
    s = _shard(files=[_entry(version="2.0"), _entry(version="1.0", yanked="broken")])
    data = s.to_bytes()
    doc = json.loads(data)
    assert data == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert doc["repotool-index"] == FORMAT_VERSION == 1
    assert doc["shard"] == shard_of("demo-pkg")
    files = doc["projects"]["demo-pkg"]["files"]
    assert [f["version"] for f in files] == ["1.0", "2.0"]  # sorted by filename
    assert set(files[0]) == {"filename", "version", "sha256", "size", "requires_python",
                             "requires_dist", "upload_time", "yanked"}
    assert files[0]["yanked"] == "broken" and files[1]["yanked"] is False
    parsed = Shard.from_bytes(data, s.shard)
    assert parsed.to_bytes() == data
    assert parsed.projects["demo-pkg"].versions()[-1].public == "2.0"


# ---- property: to_bytes / from_bytes round trip ---------------------------------------

_names = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,12}[a-z0-9])?\Z").filter(
    lambda n: canonicalize_name(n) == n)
_versions = st.builds(
    lambda parts, pre: ".".join(map(str, parts)) + pre,
    st.lists(st.integers(0, 300), min_size=1, max_size=4),
    st.sampled_from(["", "rc1", "a2", ".post1", ".dev3"]),
)
_text = st.text(max_size=40)
_times = st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")).filter(
    lambda t: len(t) == 20)


@st.composite
def _shards(draw: st.DrawFn) -> Shard:
    first = draw(_names)
    sid = shard_of(first)
    shard = Shard(sid)
    names = {first, *[n for n in draw(st.lists(_names, max_size=30)) if shard_of(n) == sid]}
    for name in names:
        files: dict[str, FileEntry] = {}
        for version in draw(st.lists(_versions, max_size=4)):
            from packaging.version import Version

            v = str(Version(version))
            kind = draw(st.sampled_from(["whl", "sdist"]))
            dist = name.replace("-", "_")
            fn = f"{dist}-{v}-py3-none-any.whl" if kind == "whl" else f"{dist}-{v}.tar.gz"
            files[fn] = FileEntry(
                filename=fn,
                version=v,
                sha256=draw(st.from_regex(r"\A[0-9a-f]{64}\Z")),
                size=draw(st.integers(0, 2**53)),
                requires_python=draw(st.none() | _text),
                requires_dist=tuple(draw(st.lists(_text, max_size=3))),
                upload_time=draw(_times),
                yanked=draw(st.booleans() | _text.filter(bool)),
            )
        shard.projects[name] = Project(name, draw(_text), sorted(files.values(),
                                                                 key=lambda f: f.filename))
    return shard


@settings(max_examples=150, deadline=None)
@given(_shards())
def test_shard_round_trip(shard: Shard) -> None:
    data = shard.to_bytes()
    back = Shard.from_bytes(data, shard.shard)
    assert back == shard
    assert back.to_bytes() == data


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_shard_from_random_bytes_only_raises_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):  # anything else escapes and fails the test
        Shard.from_bytes(data, "00")


# ---- malformed shards ------------------------------------------------------------------


def _valid_doc() -> dict[str, Any]:
    return json.loads(_shard(files=[_entry(), _entry(version="2.0")]).to_bytes())


SID = shard_of("demo-pkg")


def _other_project_in_shard(sid: str) -> str:
    return next(n for n in (f"p{i}" for i in range(10000))
                if shard_of(n) == sid and n != "demo-pkg")


def _mutate(kind: str) -> bytes:
    doc = _valid_doc()
    proj = doc["projects"]["demo-pkg"]
    f0 = proj["files"][0]
    if kind == "not_json":
        return b"{not json"
    if kind == "not_utf8":
        return b"\xff\xfe{}"
    if kind == "json_array":
        return b"[]"
    if kind == "deeply_nested":
        return b'{"projects":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    if kind == "wrong_format_version":
        doc["repotool-index"] = 2
    elif kind == "format_version_as_bool":
        doc["repotool-index"] = True
    elif kind == "format_version_as_string":
        doc["repotool-index"] = "1"
    elif kind == "wrong_shard_id":
        doc["shard"] = "00" if SID != "00" else "01"
    elif kind == "missing_shard_field":
        del doc["shard"]
    elif kind == "extra_top_level_field":
        doc["extra"] = 1
    elif kind == "projects_not_object":
        doc["projects"] = []
    elif kind == "project_in_wrong_shard":
        other = next(n for n in (f"q{i}" for i in range(1000)) if shard_of(n) != SID)
        doc["projects"][other] = {**copy.deepcopy(proj), "name": other, "files": []}
    elif kind == "unnormalized_name":
        doc["projects"]["Demo_Pkg"] = {**copy.deepcopy(proj), "name": "Demo_Pkg"}
    elif kind == "name_field_differs":
        proj["name"] = _other_project_in_shard(SID)
    elif kind == "extra_project_field":
        proj["homepage"] = "x"
    elif kind == "missing_project_field":
        del proj["summary"]
    elif kind == "files_not_list":
        proj["files"] = {}
    elif kind == "summary_too_long":
        proj["summary"] = "x" * 513
    elif kind == "bad_sha":
        f0["sha256"] = "A" * 64
    elif kind == "short_sha":
        f0["sha256"] = "a" * 63
    elif kind == "sha_not_string":
        f0["sha256"] = 5
    elif kind == "negative_size":
        f0["size"] = -1
    elif kind == "size_as_bool":
        f0["size"] = True
    elif kind == "size_as_float":
        f0["size"] = 1.5
    elif kind == "duplicate_filename":
        proj["files"].append(copy.deepcopy(f0))
    elif kind == "file_of_another_project":
        f0["filename"] = "other_pkg-1.0-py3-none-any.whl"
    elif kind == "file_of_another_version":
        f0["version"] = "3.0"
    elif kind == "invalid_version":
        f0["version"] = "not a version"
    elif kind == "bad_filename":
        f0["filename"] = "demo_pkg.exe"
    elif kind == "path_in_filename":
        f0["filename"] = "../demo_pkg-1.0-py3-none-any.whl"
    elif kind == "extra_file_field":
        f0["url"] = "http://evil/"
    elif kind == "missing_file_field":
        del f0["yanked"]
    elif kind == "bad_upload_time":
        f0["upload_time"] = "2030-01-02 03:04:05"
    elif kind == "upload_time_with_offset":
        f0["upload_time"] = "2030-01-02T03:04:05+00:00"
    elif kind == "requires_dist_not_list":
        f0["requires_dist"] = "dep-a"
    elif kind == "requires_dist_entry_not_string":
        f0["requires_dist"] = [1]
    elif kind == "requires_python_not_string":
        f0["requires_python"] = 3
    elif kind == "yanked_number":
        f0["yanked"] = 1
    elif kind == "yanked_empty_reason":
        f0["yanked"] = ""
    elif kind == "file_not_object":
        proj["files"][0] = "x"
    else:
        raise AssertionError(kind)
    return json.dumps(doc).encode()


MALFORMED = [
    "not_json", "not_utf8", "json_array", "deeply_nested", "wrong_format_version",
    "format_version_as_bool", "format_version_as_string", "wrong_shard_id", "missing_shard_field",
    "extra_top_level_field", "projects_not_object", "project_in_wrong_shard", "unnormalized_name",
    "name_field_differs", "extra_project_field", "missing_project_field", "files_not_list",
    "summary_too_long", "bad_sha", "short_sha", "sha_not_string", "negative_size", "size_as_bool",
    "size_as_float", "duplicate_filename", "file_of_another_project", "file_of_another_version",
    "invalid_version", "bad_filename", "path_in_filename", "extra_file_field",
    "missing_file_field", "bad_upload_time", "upload_time_with_offset", "requires_dist_not_list",
    "requires_dist_entry_not_string", "requires_python_not_string", "yanked_number",
    "yanked_empty_reason", "file_not_object",
]


def test_valid_doc_parses() -> None:
    Shard.from_bytes(json.dumps(_valid_doc()).encode(), SID)


@pytest.mark.parametrize("kind", MALFORMED)
def test_malformed_shard_refused(kind: str) -> None:
    with pytest.raises(FormatError) as ei:
        Shard.from_bytes(_mutate(kind), SID)
    assert ei.value.exit_code == 3
    assert "\n" not in ei.value.message


def test_shard_with_many_problems_reports_count() -> None:
    doc = _valid_doc()
    for i in range(3):
        doc["projects"][f"BAD{i}"] = {}
    with pytest.raises(FormatError, match=r"and 2 more"):
        Shard.from_bytes(json.dumps(doc).encode(), SID)


# ---- simple pages ----------------------------------------------------------------------


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.meta: dict[str, str | None] = {}
        self._cur: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._cur = dict(attrs)
        if tag == "meta":
            d = dict(attrs)
            self.meta[d.get("name") or ""] = d.get("content")

    def handle_data(self, data: str) -> None:
        if self._cur is not None:
            self.anchors.append((self._cur, data))
            self._cur = None


def _project() -> Project:
    return Project("demo-pkg", "A demo", [
        _entry(version="1.0", requires_python=">=3.8,<4", yanked="broken <build>"),
        _entry(version="1.1", requires_python=None, yanked=True, sha256="b" * 64),
        _entry(version="2.0", requires_python=None, sha256="c" * 64),
    ])


def test_project_html_pep503_pep592() -> None:
    p = _links(simple.project_html(_project()))
    assert p.meta["pypi:repository-version"] == "1.1"
    by_name = {text: attrs for attrs, text in p.anchors}
    assert set(by_name) == {f.filename for f in _project().files}
    a10 = by_name["demo_pkg-1.0-py3-none-any.whl"]
    assert a10["href"] == f"../../files/demo-pkg/demo_pkg-1.0-py3-none-any.whl#sha256={SHA}"
    assert a10["data-requires-python"] == ">=3.8,<4"  # unescaped by the parser
    assert a10["data-yanked"] == "broken <build>"
    a11 = by_name["demo_pkg-1.1-py3-none-any.whl"]
    assert a11["data-yanked"] == ""  # yanked without a reason
    assert "data-requires-python" not in a11
    a20 = by_name["demo_pkg-2.0-py3-none-any.whl"]
    assert "data-yanked" not in a20
    assert a20["href"].endswith("#sha256=" + "c" * 64)
    raw = simple.project_html(_project()).decode()
    assert "&gt;=3.8,&lt;4" in raw and "broken &lt;build&gt;" in raw


def _links(data: bytes) -> _Links:
    p = _Links()
    p.feed(data.decode())
    return p


def test_project_html_with_base() -> None:
    p = _links(simple.project_html(_project(), base="http://127.0.0.1:9/"))
    hrefs = [a["href"] for a, _ in p.anchors]
    assert all(str(h).startswith("http://127.0.0.1:9/files/demo-pkg/") for h in hrefs)


def test_project_json_pep691() -> None:
    doc = json.loads(simple.project_json(_project()))
    assert doc["meta"] == {"api-version": "1.1"}
    assert doc["name"] == "demo-pkg"
    assert doc["versions"] == ["1.0", "1.1", "2.0"]
    f = {x["filename"]: x for x in doc["files"]}
    f10 = f["demo_pkg-1.0-py3-none-any.whl"]
    assert f10 == {
        "filename": "demo_pkg-1.0-py3-none-any.whl",
        "url": "../../files/demo-pkg/demo_pkg-1.0-py3-none-any.whl",
        "hashes": {"sha256": SHA},
        "requires-python": ">=3.8,<4",
        "size": 123,
        "upload-time": "2030-01-02T03:04:05Z",
        "yanked": "broken <build>",
    }
    assert f["demo_pkg-1.1-py3-none-any.whl"]["yanked"] is True
    assert f["demo_pkg-2.0-py3-none-any.whl"]["yanked"] is False
    assert f["demo_pkg-2.0-py3-none-any.whl"]["requires-python"] is None


def test_root_pages() -> None:
    names = ["zeta", "alpha", "mid-name"]
    p = _links(simple.root_html(names))
    assert [(a["href"], t) for a, t in p.anchors] == [
        ("alpha/", "alpha"), ("mid-name/", "mid-name"), ("zeta/", "zeta")]
    doc = json.loads(simple.root_json(names))
    assert doc == {"meta": {"api-version": "1.1"},
                   "projects": [{"name": "alpha"}, {"name": "mid-name"}, {"name": "zeta"}]}


def test_pages_are_deterministic() -> None:
    a, b = _project(), _project()
    b.files.reverse()
    assert simple.project_html(a) == simple.project_html(b)
    assert simple.project_json(a) == simple.project_json(b)
    assert simple.root_json(["b", "a"]) == simple.root_json(["a", "b"])
