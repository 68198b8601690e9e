"""``repo publish DIR DEST``: to a directory and to a REAL S3-compatible server.

The server is moto's standalone ``moto_server`` (tests/s3server.py), started once for
this module on 127.0.0.1 as a subprocess; its access log is the record of which PUTs
arrived and in which order. Clients read the bucket over plain http, path-style
(``http://127.0.0.1:PORT/BUCKET/PREFIX/``), like any other repository URL.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import small_repos
from builders import tamper
from conftest import Published, cli
from s3server import MotoServer, aws_env
from venvs import make_venv, pip_freeze

from repotool.publish.upload import cache_kind

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_published(tmp_path: Path) -> Any:
    """4 hash bins instead of 256 (small_repos): the same layout and stages, a tenth of
    the files for the S3 server to store and read back."""
    return small_repos.factory(tmp_path)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer.start(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """AWS settings for this test only: test credentials, no ~/.aws, no metadata service."""
    for k in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(k)
    env = aws_env(tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


_names = iter(range(10_000))


@pytest.fixture
def bucket(moto: MotoServer, aws: dict[str, str], tmp_path: Path) -> str:
    name = f"repo-{os.getpid()}-{next(_names)}"
    moto.make_bucket(tmp_path, name)
    return name


def publish(directory: Path, dest: str | Path, *args: str, **kw: Any) -> Any:
    return cli("repo", "publish", directory, dest, *args, **kw)


def s3_publish(moto: MotoServer, directory: Path, dest: str, *args: str) -> dict[str, Any]:
    r = publish(directory, dest, "--endpoint-url", moto.endpoint, "--json", *args)
    assert r.exit_code == 0, r.output
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def files_of(root: Path) -> dict[str, str]:
    """Every published file (not the workspace) → sha256."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and not p.relative_to(root).parts[0].startswith(".")}


def puts(moto: MotoServer, mark: int, bucket: str, prefix: str) -> list[str]:
    head = f"/{bucket}/{prefix}/"
    return [p[len(head):] for m, p in moto.requests(mark) if m == "PUT" and p.startswith(head)]


def add_source(home: Path, name: str, url: str, pub: Published) -> None:
    r = cli("--home", home, "source", "add", name, url, "--key", pub.key.public)
    assert r.exit_code == 0, r.output


def versions_seen(home: Path, project: str) -> list[str]:
    r = cli("--home", home, "show", project, "--json")
    assert r.exit_code == 0, r.output
    return sorted(v["version"] for s in json.loads(r.stdout)["sources"] for v in s["versions"])


# ---- end to end ------------------------------------------------------------------------


def test_publish_to_s3_then_pip_installs_from_the_bucket_url(
        make_published, moto: MotoServer, bucket: str, home: Path, tmp_path: Path) -> None:
    pub = make_published("demo", projects={"demo-pkg": ["1.0"], "dep-a": ["2.0"]})
    pub.add_wheel("app", "1.0", requires_dist=["dep-a>=2"])
    pub.sign()
    doc = s3_publish(moto, pub.root, f"s3://{bucket}/pypi/stable")
    assert doc["destination"] == f"s3://{bucket}/pypi/stable/"
    assert set(doc["uploaded"]) == set(files_of(pub.root))  # everything, nothing else
    assert doc["verified"] == len(doc["uploaded"]) and doc["present"] == 0
    assert doc["uploaded"][-1] == "metadata/timestamp.json"

    url = moto.bucket_url(bucket, "pypi/stable")
    add_source(home, "cloud", url, pub)
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output
    py = make_venv(tmp_path / "venv")
    r = cli("--home", home, "install", "--python", py, "app")
    assert r.exit_code == 0, r.output
    assert pip_freeze(py) == {"app": "1.0", "dep-a": "2.0"}

    # what a CDN in front of the bucket is told (docs/publishing.md)
    def head(name: str) -> Any:
        r = requests.get(url + name, timeout=10)
        assert r.status_code == 200, (name, r.status_code)
        return r.headers

    ts = head("metadata/timestamp.json")
    assert ts["Content-Type"] == "application/json" and ts["Cache-Control"] == "no-cache"
    snap = head(f"metadata/{doc['versions']['snapshot']}.snapshot.json")
    assert "immutable" in snap["Cache-Control"]
    wheel = next(n for n in doc["uploaded"] if n.endswith("app-1.0-py3-none-any.whl")
                 and cache_kind(n) == "immutable" and "/" in n)
    assert head(wheel)["Content-Type"] == "application/zip"
    page = head("simple/app/index.html")
    assert page["Content-Type"].startswith("text/html") and page["Cache-Control"] == "max-age=300"


def test_publish_to_a_directory_is_verified_as_a_client_would_and_is_idempotent(
        make_published, home: Path, tmp_path: Path) -> None:
    pub = make_published("demo", projects={"demo-pkg": ["1.0"]})
    dest = tmp_path / "www" / "repo"
    r = publish(pub.root, dest, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["audited"] is True and files_of(dest) == files_of(pub.root)
    assert not (dest / ".repotool").exists()
    assert cli("repo", "check", dest).exit_code == 0
    add_source(home, "copy", dest.as_uri(), pub)
    assert cli("--home", home, "update").exit_code == 0

    r = publish(pub.root, dest)  # nothing new: nothing uploaded
    assert r.exit_code == 0, r.output
    assert "uploaded 0 file(s), 0 bytes" in r.stdout


# ---- only what DEST lacks, in client-safe order -------------------------------------------

STAGES = [  # (what, matches) in the order publish must keep
    ("hash-named distributions", lambda n: n.startswith("files/") and _hashed(n)),
    ("plain distributions", lambda n: n.startswith("files/")),
    ("hash-named shards and pages", lambda n: n.startswith(("index/", "simple/")) and _hashed(n)),
    ("plain project pages", lambda n: n.startswith("simple/") and n.count("/") == 2),
    ("plain project list", lambda n: n.startswith("simple/")),
    ("versioned metadata", lambda n: n.startswith("metadata/")
     and n.split("/")[1][0].isdigit() and not n.endswith(".snapshot.json")),
    ("snapshot", lambda n: n.endswith(".snapshot.json")),
    ("root.json", lambda n: n == "metadata/root.json"),
    ("timestamp", lambda n: n == "metadata/timestamp.json"),
]


def _hashed(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return len(base) > 65 and base[64] == "." and all(c in "0123456789abcdef" for c in base[:64])


def stage_of(name: str) -> int:
    return next(i for i, (_, match) in enumerate(STAGES) if match(name))


def test_second_publish_puts_only_new_and_changed_files_timestamp_last(
        make_published, moto: MotoServer, bucket: str) -> None:
    pub = make_published("demo", projects={"demo-pkg": ["1.0"], "other": ["1.0"]})
    dest = f"s3://{bucket}/repo"
    s3_publish(moto, pub.root, dest)
    before = files_of(pub.root)
    pub.add_wheel("demo-pkg", "1.1")
    pub.add_wheel("newcomer", "0.1")  # a new project: the project list changes too
    pub.sign()
    after = files_of(pub.root)
    changed = {n for n, h in after.items() if before.get(n) != h}

    mark = moto.mark()
    doc = s3_publish(moto, pub.root, dest)
    put = puts(moto, mark, bucket, "repo")
    # the server received exactly one PUT per new or changed file, nothing else
    assert sorted(put) == sorted(changed) == sorted(doc["uploaded"])
    assert doc["present"] == len(after) - len(changed)
    assert "metadata/root.json" not in put and "files/other/" not in " ".join(put)
    # order as the server saw it: stage by stage, timestamp.json last
    stages = [stage_of(n) for n in put]
    assert stages == sorted(stages), list(zip(put, stages, strict=True))
    assert put[-1] == "metadata/timestamp.json"
    assert {STAGES[s][0] for s in stages} >= {
        "hash-named distributions", "plain distributions", "hash-named shards and pages",
        "plain project pages", "plain project list", "versioned metadata", "snapshot",
        "timestamp"}
    # every uploaded file was read back (GET) before the timestamp went up
    gets = [p for m, p in moto.requests(mark) if m == "GET"]
    assert f"/{bucket}/repo/metadata/{doc['versions']['snapshot']}.snapshot.json" in gets


# ---- interrupted publishes ------------------------------------------------------------

_KILLER = """
import os, signal, sys
from repotool.publish import s3
target = sys.argv[1]
put = s3.S3Destination.put
def killing_put(self, f, *a, **kw):
    if f.name.startswith(target) or f.name.endswith(target):
        os.kill(os.getpid(), signal.SIGKILL)
    return put(self, f, *a, **kw)
s3.S3Destination.put = killing_put
sys.argv = ["repotool", *sys.argv[2:]]
from repotool.cli.app import main
main()
"""


@pytest.mark.parametrize("kill_at", [".snapshot.json", "timestamp.json"])
def test_publish_killed_midway_leaves_the_bucket_consistent_for_clients(
        make_published, moto: MotoServer, bucket: str, home: Path, tmp_path: Path,
        kill_at: str) -> None:
    pub = make_published("demo", projects={"demo-pkg": ["1.0"]})
    dest = f"s3://{bucket}/r"
    s3_publish(moto, pub.root, dest)
    url = moto.bucket_url(bucket, "r")
    add_source(home, "cloud", url, pub)
    assert cli("--home", home, "update").exit_code == 0
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign()

    # kill -9 at the first PUT of that kind (publish uploads with one job: a fixed point)
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, kill_at, "repo", "publish", str(pub.root), dest,
         "--endpoint-url", moto.endpoint, "--jobs", "1"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env=os.environ.copy())
    assert proc.returncode == -9, proc.stdout + proc.stderr

    # the old timestamp still names complete metadata: clients update to the old state
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output
    assert versions_seen(home, "demo-pkg") == ["1.0"]
    fresh = tmp_path / "fresh-home"
    add_source(fresh, "cloud", url, pub)
    assert cli("--home", fresh, "update").exit_code == 0
    assert versions_seen(fresh, "demo-pkg") == ["1.0"]
    r = cli("--home", fresh, "download", "demo-pkg==1.0", "-d", tmp_path / "dl")
    assert r.exit_code == 0, r.output

    # publishing again completes the new state
    s3_publish(moto, pub.root, dest)
    assert cli("--home", home, "update").exit_code == 0
    assert versions_seen(home, "demo-pkg") == ["1.0", "1.1"]


def test_upload_that_does_not_read_back_is_refused_and_timestamp_kept(
        make_published, moto: MotoServer, bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytes damaged between repotool and the bucket (a faulty proxy or gateway): the
    read-back finds them and the timestamp there is not advanced."""
    from repotool.publish import s3

    pub = make_published("demo", projects={"demo-pkg": ["1.0"]})
    dest = f"s3://{bucket}/r"
    s3_publish(moto, pub.root, dest)
    old_ts = moto.client(tmp_path).get_object(Bucket=bucket, Key="r/metadata/timestamp.json")[
        "Body"].read()
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign()

    put = s3.S3Destination.put

    def damaging_put(self: Any, f: Any, *a: Any, **kw: Any) -> None:
        if f.name.startswith("index/"):
            damaged = tmp_path / "damaged"
            damaged.write_bytes(f.path.read_bytes()[:-1] + b"!")
            f = type(f)(f.name, damaged, f.size, f.stage)
        put(self, f, *a, **kw)

    monkeypatch.setattr(s3.S3Destination, "put", damaging_put)
    r = publish(pub.root, dest, "--endpoint-url", moto.endpoint)
    assert r.exit_code == 3, r.output
    assert "do not read back as the signed bytes" in r.stderr and "index/" in r.stderr
    assert "its timestamp was not advanced" in r.stderr
    assert moto.client(tmp_path).get_object(Bucket=bucket, Key="r/metadata/timestamp.json")[
        "Body"].read() == old_ts


def test_tampered_object_in_bucket_is_replaced_by_the_signed_bytes(
        make_published, moto: MotoServer, bucket: str, tmp_path: Path) -> None:
    pub = make_published("demo", projects={"demo-pkg": ["1.0"]})
    dest = f"s3://{bucket}/r"
    s3_publish(moto, pub.root, dest)
    wheel = next(n for n in files_of(pub.root) if n.startswith("files/") and _hashed(n))
    data = bytearray((pub.root / wheel).read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    moto.client(tmp_path).put_object(Bucket=bucket, Key=f"r/{wheel}", Body=bytes(data))
    r = publish(pub.root, dest, "--endpoint-url", moto.endpoint, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["replaced"] == [wheel]
    assert f"held other bytes under {wheel}" in r.stderr
    got = moto.client(tmp_path).get_object(Bucket=bucket, Key=f"r/{wheel}")["Body"].read()
    assert got == (pub.root / wheel).read_bytes()


def test_tampered_destination_directory_fails_verification(make_published,
                                                           tmp_path: Path) -> None:
    pub = make_published("demo", projects={"demo-pkg": ["1.0"]})
    dest = tmp_path / "www"
    assert publish(pub.root, dest).exit_code == 0
    wheel = next(n for n in files_of(dest) if n.startswith("files/") and _hashed(n))
    tamper(dest / wheel)  # same size: the listing alone cannot tell
    r = publish(pub.root, dest)
    assert r.exit_code == 3, r.output
    assert "fails verification as a client would see it" in r.stderr
    assert "size or sha256 differs from the signed one" in r.stderr


# ---- refusals ------------------------------------------------------------------------


def test_unsigned_changes_are_not_published(make_published, tmp_path: Path) -> None:
    pub = make_published("demo", projects={"demo-pkg": ["1.0"]})
    pub.add_wheel("demo-pkg", "1.1")  # not signed
    r = publish(pub.root, tmp_path / "www")
    assert r.exit_code == 1, r.output
    assert "1 pending change(s) not yet signed" in r.stderr
    assert not (tmp_path / "www").exists()


def test_source_that_fails_its_check_is_not_published(make_published, tmp_path: Path) -> None:
    pub = make_published("demo", projects={"demo-pkg": ["1.0"]})
    shard = next(p for p in (pub.root / "index").iterdir())
    tamper(shard)
    r = publish(pub.root, tmp_path / "www")
    assert r.exit_code == 3, r.output
    assert "fails its check" in r.stderr and len(r.stderr.strip().splitlines()) == 2
    assert not (tmp_path / "www").exists()


def test_destination_with_another_or_newer_repository_is_refused(
        make_published, tmp_path: Path) -> None:
    a = make_published("a", projects={"demo-pkg": ["1.0"]})
    b = make_published("b", projects={"demo-pkg": ["1.0"]})
    dest = tmp_path / "www"
    assert publish(a.root, dest).exit_code == 0
    r = publish(b.root, dest)
    assert r.exit_code == 1 and "holds another repository" in r.stderr, r.output

    # an older copy of a's directory must not roll the destination back
    old = tmp_path / "old-copy"
    subprocess.run(["cp", "-a", str(a.root), str(old)], check=True)
    a.sign()  # a new timestamp, published
    assert publish(a.root, dest).exit_code == 0
    r = publish(old, dest)
    assert r.exit_code == 1, r.output
    assert "is newer than" in r.stderr and "roll its clients back" in r.stderr


def test_metadata_of_an_unfinished_sign_is_not_uploaded(make_published, tmp_path: Path) -> None:
    """A sign killed before its timestamp leaves N+1.ROLE.json that the next sign may
    overwrite with other bytes: publishing it as immutable would poison caches."""
    pub = make_published("demo", projects={"demo-pkg": ["1.0"]})
    meta = pub.root / "metadata"
    snap = max(int(p.name.split(".")[0]) for p in meta.glob("*.snapshot.json"))
    orphan = meta / f"{snap + 1}.snapshot.json"
    orphan.write_bytes((meta / f"{snap}.snapshot.json").read_bytes())
    r = publish(pub.root, tmp_path / "www", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["orphans"] == [f"metadata/{orphan.name}"]
    assert not (tmp_path / "www" / "metadata" / orphan.name).exists()


# ---- bad destinations: one line, exit 1 or 2 -------------------------------------------


@pytest.mark.parametrize("dest", ["s3://", "s3://Bad_Bucket/x", "s3://ab/x", "ftp://host/x",
                                  "s3://bucket/../x"])
def test_malformed_destination_is_a_usage_error(make_published, dest: str) -> None:
    pub = make_published("demo", projects={"demo-pkg": ["1.0"]})
    r = publish(pub.root, dest)
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("repotool: error:") and len(r.stderr.splitlines()) <= 2


def test_bad_endpoint_and_endpoint_for_directory_are_usage_errors(make_published,
                                                                  tmp_path: Path) -> None:
    pub = make_published("demo", projects={"demo-pkg": ["1.0"]})
    r = publish(pub.root, tmp_path / "www", "--endpoint-url", "http://127.0.0.1:1")
    assert r.exit_code == 2 and "s3:// destinations only" in r.stderr, r.output
    r = publish(pub.root, "s3://bucket/x", "--endpoint-url", "127.0.0.1:9000")
    assert r.exit_code == 2 and "invalid --endpoint-url" in r.stderr, r.output
    r = publish(pub.root, "s3://bucket/x", "--cache-control", "forever=1")
    assert r.exit_code == 2 and "--cache-control" in r.stderr, r.output


def test_missing_bucket_unreachable_server_and_no_credentials_are_one_line(
        make_published, moto: MotoServer, aws: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    pub = make_published("demo", projects={"demo-pkg": ["1.0"]})
    r = publish(pub.root, "s3://no-such-bucket/x", "--endpoint-url", moto.endpoint)
    assert r.exit_code == 1, r.output
    assert "the bucket does not exist" in r.stderr and len(r.stderr.splitlines()) == 2

    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    r = publish(pub.root, "s3://bucket/x", "--endpoint-url", f"http://127.0.0.1:{closed}")
    assert r.exit_code == 1, r.output
    assert "cannot reach the storage service" in r.stderr and len(r.stderr.splitlines()) == 2

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    r = publish(pub.root, "s3://bucket/x", "--endpoint-url", moto.endpoint)
    assert r.exit_code == 1, r.output
    assert "no AWS credentials" in r.stderr and "AWS_ACCESS_KEY_ID" in r.stderr


def test_without_boto3_s3_destinations_say_what_to_install(make_published,
                                                           tmp_path: Path) -> None:
    pub = make_published("demo", projects={"demo-pkg": ["1.0"]})
    code = ("import sys; sys.modules['boto3'] = None; sys.modules['botocore'] = None\n"
            "sys.argv = ['repotool', 'repo', 'publish', sys.argv[1], 's3://bucket/x']\n"
            "from repotool.cli.app import main; main()")
    env = {k: v for k, v in os.environ.items() if k != "REPOTOOL_DEBUG"}
    proc = subprocess.run([sys.executable, "-c", code, str(pub.root)], capture_output=True,
                          text=True, timeout=60, cwd=REPO_ROOT, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "needs boto3" in proc.stderr and "pip install 'repotool[s3]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    # a directory destination needs no boto3
    code = code.replace("'s3://bucket/x'", "sys.argv[2]")
    proc = subprocess.run([sys.executable, "-c", code, str(pub.root), str(tmp_path / "www")],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dry_run_uploads_nothing(make_published, moto: MotoServer, bucket: str) -> None:
    pub = make_published("demo", projects={"demo-pkg": ["1.0"]})
    mark = moto.mark()
    doc = s3_publish(moto, pub.root, f"s3://{bucket}/r", "--dry-run")
    assert doc["dry_run"] and doc["uploaded"][-1] == "metadata/timestamp.json"
    assert puts(moto, mark, bucket, "r") == []


# ---- pure parts ----------------------------------------------------------------------


def test_cache_kinds_and_content_types_of_every_kind_of_file() -> None:
    from repotool.publish.s3 import parse_s3_url
    from repotool.publish.upload import content_type, parse_cache_control

    h = "a" * 64
    assert cache_kind("metadata/timestamp.json") == "timestamp"
    assert cache_kind("metadata/root.json") == "mutable"
    assert cache_kind("simple/p/index.html") == "mutable"
    for immutable in ("metadata/3.snapshot.json", "metadata/2.bins-0a.json",
                      "metadata/1.root.json", f"index/{h}.28.json",
                      f"simple/p/{h}.index.json", f"files/p/{h}.p-1.0.tar.gz",
                      "files/p/p-1.0-py3-none-any.whl"):
        assert cache_kind(immutable) == "immutable", immutable
    assert content_type("simple/index.html") == "text/html; charset=utf-8"
    assert content_type("metadata/timestamp.json") == "application/json"
    assert content_type("files/p/p-1.0.tar.gz") == "application/gzip"
    assert content_type("files/p/p-1.0-py3-none-any.whl") == "application/zip"
    policy = parse_cache_control(["timestamp=max-age=60", "mutable="])
    assert policy["timestamp"] == "max-age=60" and policy["mutable"] == ""
    assert policy["immutable"].endswith("immutable")
    assert parse_s3_url("s3://my.bucket") == ("my.bucket", "")
    assert parse_s3_url("s3://bkt/a//b/") == ("bkt", "a/b/")


def test_a_copy_without_the_workspace_publishes(make_published, tmp_path: Path) -> None:
    """docs/format.md: deleting .repotool/ from a copy leaves a complete repository."""
    import shutil

    pub = make_published("demo", projects={"demo-pkg": ["1.0"]})
    copy = tmp_path / "usb-stick"
    shutil.copytree(pub.root, copy, ignore=shutil.ignore_patterns(".repotool"))
    r = publish(copy, tmp_path / "www", "--json")
    assert r.exit_code == 0, r.output
    assert files_of(tmp_path / "www") == files_of(pub.root)
