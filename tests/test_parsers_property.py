"""Every parser of user or remote text, property-tested (SPEC §2, §3.10).

Two layers:

* unit: each parser, given arbitrary text or bytes, returns a valid value or raises a
  ``RepotoolError`` with a one-line message — never another exception (the CLI's
  catch-all for bugs must not be what keeps a traceback away);
* CLI: the real typer app, in-process, with arbitrary option values and corrupted state
  files: the exit code is the SPEC's (1 operational, 2 usage, 3 verification refused),
  no traceback and no "internal error", the error is one or two lines, and the keyring
  is byte-identical whenever a command fails (or only reads).

Plus the freeze attack a huge ``--clock-skew`` would reopen, and the lifetimes that
used to overflow ``datetime``. Examples are derandomized (conftest's hypothesis
profile), so CI runs the same cases every time.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from attacks import keyring_digest, source_config, tree_digest
from conftest import CliResult, KeyPair, Published, cli, make_key
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from repotool import keys
from repotool.client.home import Home, SourceConfig, clock_skew_max, normalize_pattern
from repotool.client.queries import parse_requirement
from repotool.client.views import Views
from repotool.errors import RepotoolError, UsageError, UserError
from repotool.publish.workspace import Repository, RoleKeys
from repotool.storage import duration_max, parse_duration, safe_name
from repotool.transport.urls import normalize_url

pytest_plugins = ["attacks"]
# CLI-level tests run the real CLI per example: they report the failing example as
# found (shrinking it would cost minutes); unit-level tests shrink as usual
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)

# ---- strategies -----------------------------------------------------------------------

# command-line arguments as Linux hands them over: any text, and undecodable bytes as
# surrogate escapes
ARG = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(blacklist_categories=()), max_size=20),
    st.binary(max_size=30).map(lambda b: b.decode("utf-8", "surrogateescape")),
)
_URL_BITS = st.sampled_from([
    *"ab:/[]@%?#.-_~019 \t\x00é", "\udc80", "\ud800", "\u200b", "::1", "%00", "%ff", "%2F",
    "127.0.0.1", ":99999", ":0", "~root", "~nobody-here", "..", "xn--", "a" * 70,
])
URL = st.one_of(
    st.tuples(
        st.sampled_from(["", "http://", "https://", "file://", "file:", "http://[",
                         "HTTP://", "http://u:p@", "ftp://", "~", "/", "file://localhost/",
                         "http://127.0.0.1:1/", "http://[::1]:1/"]),
        st.lists(_URL_BITS, max_size=8).map("".join),
    ).map("".join),
    ARG,
)
DURATION = st.one_of(
    st.from_regex(r"\A[0-9]{1,12}[smhdwy]\Z"),
    st.tuples(st.integers(-5, 10**16), st.sampled_from("smhdw")).map(lambda t: f"{t[0]}{t[1]}"),
    ARG,
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.text(st.characters(blacklist_categories=()), max_size=4),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    items = node.items() if isinstance(node, dict) else \
        enumerate(node) if isinstance(node, list) else []
    out = []
    for k, v in items:
        out.append((*prefix, k))
        out.extend(_paths(v, (*prefix, k)))
    return out


@st.composite
def mutated_json(draw: Any, doc: Any) -> bytes:
    """``doc`` with one value replaced by arbitrary JSON, or a key dropped or added."""
    doc = copy.deepcopy(doc)
    paths = _paths(doc)
    if not paths:
        return json.dumps(draw(JSON)).encode()
    path = draw(st.sampled_from(paths))
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    action = draw(st.sampled_from(["replace", "drop", "add"]))
    if action == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(JSON)
    else:
        parent[path[-1]] = draw(JSON)
    return json.dumps(doc).encode()


def file_bytes(valid: bytes) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, and bytes close to a valid file: truncated, one byte changed."""
    n = max(len(valid), 1)
    return st.one_of(
        st.binary(max_size=200),
        st.integers(0, n).map(lambda i: valid[:i]),
        st.tuples(st.integers(0, n - 1), st.integers(1, 255)).map(
            lambda t: valid[:t[0]] + bytes([valid[t[0]] ^ t[1]]) + valid[t[0] + 1:]
            if valid else b""),
        st.just(b"[" * 5000),
    )


def json_file_bytes(valid: bytes) -> st.SearchStrategy[bytes]:
    try:
        doc = json.loads(valid)
    except ValueError:
        return file_bytes(valid)
    return st.one_of(file_bytes(valid), mutated_json(doc), mutated_json(doc))


def _other_key_pems() -> list[bytes]:
    """Well-formed PEM files that are not Ed25519 public keys."""
    from cryptography.hazmat.primitives import serialization as s
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519

    out = []
    for k in (ec.generate_private_key(ec.SECP256R1()), rsa.generate_private_key(65537, 1024),
              x25519.X25519PrivateKey.generate(), ed448.Ed448PrivateKey.generate(),
              ed25519.Ed25519PrivateKey.generate()):
        out.append(k.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))
        for enc in (s.NoEncryption(), s.BestAvailableEncryption(b"pw")):
            out.append(k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, enc))
    for label in (b"PUBLIC KEY", b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY", b"CERTIFICATE"):
        body = base64.encodebytes(bytes(range(200)))
        out.append(b"-----BEGIN " + label + b"-----\n" + body + b"-----END " + label + b"-----\n")
    return out


OTHER_PEMS = _other_key_pems()


def key_bytes(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(file_bytes(valid), st.sampled_from(OTHER_PEMS))


# ---- checks ---------------------------------------------------------------------------


def refuses_cleanly(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or None when it raised a RepotoolError with a one-line message and
    hint; any other exception escapes and fails the test."""
    try:
        return fn(*args)
    except RepotoolError as e:
        assert e.message and "\n" not in e.message, repr(e.message)
        assert e.hint is None or "\n" not in e.hint, repr(e.hint)
        return None


def error_lines(r: CliResult) -> list[str]:
    """stderr's error lines (click's own usage errors add a "Usage:/Try" preamble)."""
    return [x for x in r.stderr.splitlines()
            if x.strip() and not x.startswith(("Usage: ", "Try '"))]


def clean_outcome(r: CliResult, *allowed: int) -> None:
    """Exit code is one of ``allowed`` (default: any of the SPEC's), no traceback, no
    internal error, and a failure is one or two lines."""
    out = r.stdout + r.stderr
    assert "Traceback" not in out and "internal error" not in out, out
    assert r.exit_code in (allowed or (0, 1, 2, 3)), (r.exit_code, out)
    if r.exit_code:
        lines = error_lines(r)
        assert 1 <= len(lines) <= 2, r.stderr
        assert lines[0].startswith(("repotool: error:", "Error: ")), r.stderr


# ---- unit level: text parsers ----------------------------------------------------------


@settings(max_examples=300)
@given(URL)
def test_normalize_url_gives_a_fixed_point_or_refuses(text: str) -> None:
    url = refuses_cleanly(normalize_url, text)
    if url is None:
        return
    assert url.endswith("/") and url.split("://")[0].lower() in ("http", "https", "file"), url
    assert url.isprintable() and not any(c.isspace() for c in url), url
    assert normalize_url(url) == url


def test_normalize_url_invalid_ipv6_is_a_usage_error() -> None:
    for text in ("http://[::1", "http://[::1]x/", "https://[zz]/", "http://[::1]:99999/"):
        with pytest.raises(UsageError):
            normalize_url(text)


@pytest.mark.parametrize("url", ["http://[::1", "http://[::1]x/", "https://[zz]/",
                                 "http://[::1]:99999/", "http://h:port/"])
def test_cli_source_add_unparsable_url_is_a_usage_error(keypair: KeyPair, home: Path,
                                                        url: str) -> None:
    """The reported bug: ``source add x 'http://[::1' --key K`` printed a traceback."""
    r = cli("--home", home, "source", "add", "x", url, "--key", keypair.public)
    clean_outcome(r, 2)
    assert r.stderr.startswith(f"repotool: error: invalid URL {url!r}"), r.stderr
    assert not (home / "sources" / "x").exists()


@settings(max_examples=300)
@given(DURATION)
def test_parse_duration_is_bounded_or_refuses(text: str) -> None:
    secs = refuses_cleanly(parse_duration, text)
    if secs is not None:
        assert 1 <= secs <= duration_max
        datetime.now(UTC) + timedelta(seconds=secs)  # never overflows
    skew = refuses_cleanly(lambda t: parse_duration(t, maximum=clock_skew_max), text)
    assert skew is None or 1 <= skew <= clock_skew_max


@settings(max_examples=200)
@given(ARG)
def test_normalize_pattern_is_idempotent_or_refuses(text: str) -> None:
    p = refuses_cleanly(normalize_pattern, text)
    if p is not None:
        assert normalize_pattern(p) == p


@settings(max_examples=200)
@given(st.one_of(ARG, st.tuples(st.sampled_from(
    ["demo-pkg", "a[", "a;", "a @ ", "a==", "a>=1,", "a[x]>=1; python_version>'3'"]), ARG)
    .map("".join)))
def test_parse_requirement_parses_or_refuses(text: str) -> None:
    refuses_cleanly(parse_requirement, text)


@settings(max_examples=200)
@given(ARG)
def test_source_names_and_fingerprints(text: str) -> None:
    home = Home(Path("/nonexistent-home"))
    d = refuses_cleanly(home.source_dir, text)
    if d is not None:  # one path component under sources/, nothing more
        assert d.parent == home.sources_dir and d.name == text and "\n" not in text
    if keys.is_fingerprint(text):
        assert len(text) == 64 and set(text) <= set("0123456789abcdef")


# ---- unit level: files -----------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One published repository, an updated home, and the files they hold."""
    from builders import build_wheel

    base = tmp_path_factory.mktemp("parsers")
    kp = make_key(base / "keys", "k")
    pk = kp.public_key()
    Repository.init(base / "repo", "demo", RoleKeys([pk], 1, [pk], 1, [pk]),
                    now=datetime.now(UTC))
    pub = Published(base / "repo", kp, base / "dist")
    pub.repo.add([build_wheel(pub.dist, "demo-pkg", "1.0")], now=datetime.now(UTC))
    pub.sign()
    home = base / "home"
    assert cli("--home", home, "source", "add", "demo", pub.root, "--key", kp.public,
               "--only", "demo-*").exit_code == 0
    assert cli("--home", home, "update").exit_code == 0
    src = home / "sources" / "demo"
    yield {"base": base, "pub": pub, "key": kp, "home": home, "src": src,
           "work": Path(tempfile.mkdtemp(dir=base))}


def _fresh_copy(world: dict[str, Any]) -> Path:
    dest = Path(tempfile.mkdtemp(dir=world["work"])) / "home"
    shutil.copytree(world["home"], dest)
    return dest


def test_key_files_parse_or_refuse(world: dict[str, Any]) -> None:
    kp: KeyPair = world["key"]
    samples = {"pub": kp.public.read_bytes(), "key": kp.private.read_bytes()}

    @settings(max_examples=150)
    @given(st.one_of(key_bytes(samples["pub"]), key_bytes(samples["key"])))
    def check(data: bytes) -> None:
        k = refuses_cleanly(keys.load_public, data, "x.pub")
        if k is not None:
            assert keys.is_fingerprint(k.keyid)
        s = refuses_cleanly(keys._load_private, data, "x.key", lambda: b"pw")
        if s is not None:
            assert keys.is_fingerprint(s.public_key.keyid)
        f = world["work"] / "key-under-test"
        f.write_bytes(data)
        refuses_cleanly(keys.fingerprint_of_file, f, None)
        refuses_cleanly(keys.public_from_file, f)
        refuses_cleanly(keys.load_signer, f, lambda: None)

    check()


def test_source_config_parses_or_refuses(world: dict[str, Any]) -> None:
    valid = (world["src"] / "source.json").read_bytes()

    @settings(max_examples=200)
    @given(json_file_bytes(valid))
    def check(data: bytes) -> None:
        cfg = refuses_cleanly(SourceConfig.from_bytes, data, "source.json")
        if cfg is None:
            return
        assert 0 <= cfg.clock_skew <= clock_skew_max
        assert all(normalize_url(u) for u in cfg.urls)  # each stays a location the client accepts
        assert all(normalize_pattern(p) == p for p in cfg.only)
        assert SourceConfig.from_bytes(cfg.to_bytes(), "again") == cfg

        # and names the same place (a hand edit may leave a character such as "," unquoted)
        assert all(unquote(normalize_url(u)) == unquote(u) for u in cfg.urls)

    check()


def test_source_config_refuses_a_skew_beyond_the_cap(world: dict[str, Any]) -> None:
    doc = json.loads((world["src"] / "source.json").read_bytes())
    for skew, ok in ((0, True), (clock_skew_max, True), (clock_skew_max + 1, False),
                     (1000 * 7 * 86400, False), (-1, False), (10**30, False), (True, False)):
        data = json.dumps({**doc, "clock_skew": skew}).encode()
        if ok:
            assert SourceConfig.from_bytes(data, "s").clock_skew == skew
        else:
            with pytest.raises(UserError, match="malformed"):
                SourceConfig.from_bytes(data, "s")


def test_keyring_and_cache_files_parse_or_refuse(world: dict[str, Any]) -> None:
    """state.json, root.json (keyring), status.json and projects.json (cache) as the
    update path and the query commands read them."""
    from repotool.client.keyring import read_keyring
    from repotool.client.state import keyring_state, load_view

    src = world["src"]
    state = json.loads((src / "keyring" / "state.json").read_bytes())
    projects_path = src / "cache" / state["index"]["gen"] / "projects.json"
    originals = {
        "state": (src / "keyring" / "state.json").read_bytes(),
        "root": (src / "keyring" / "root.json").read_bytes(),
        "status": (src / "status.json").read_bytes(),
        "projects": projects_path.read_bytes(),
    }
    home = _fresh_copy(world)
    h = Home(home)
    kr = home / "sources" / "demo" / "keyring"
    gen = home / "sources" / "demo" / "cache" / state["index"]["gen"]
    cfg = h.source("demo")

    @settings(max_examples=150)
    @given(st.sampled_from(sorted(originals)).flatmap(
        lambda which: st.tuples(st.just(which), json_file_bytes(originals[which]))))
    def check(case: tuple[str, bytes]) -> None:
        which, data = case
        for name, content in originals.items():
            {"state": kr / "state.json", "root": kr / "root.json",
             "status": home / "sources/demo/status.json",
             "projects": gen / "projects.json"}[name].write_bytes(
                data if name == which else content)
        if which == "projects":  # what the keyring commits to, or it is never read
            st_doc = dict(state, index={**state["index"], "length": len(data),
                                        "sha256": hashlib.sha256(data).hexdigest()})
            (kr / "state.json").write_bytes(json.dumps(st_doc).encode())
        refuses_cleanly(read_keyring, kr, "demo")
        assert isinstance(keyring_state(h, "demo"), dict)
        view = refuses_cleanly(load_view, h, cfg)
        if view is not None:
            assert isinstance(view.projects, dict) and isinstance(view.shards, dict)
        views = Views(h)
        ok, why = views.status_ok(cfg)
        assert isinstance(ok, bool) and isinstance(why, str)

    check()


# ---- CLI level --------------------------------------------------------------------------


def _is_remote(text: str) -> bool:
    """An http(s) location off this machine: never contacted by these tests."""
    try:
        url = normalize_url(text)
    except RepotoolError:
        return False
    if not url.lower().startswith(("http://", "https://")):
        return False
    import urllib.parse

    return urllib.parse.urlsplit(url).hostname not in ("127.0.0.1", "::1")


def _usage_problem(fn: Callable[..., Any], *args: Any, **kw: Any) -> bool:
    try:
        fn(*args, **kw)
    except UsageError:
        return True
    except RepotoolError:
        return False
    return False


def test_cli_source_add_with_arbitrary_options(world: dict[str, Any]) -> None:
    pub: Published = world["pub"]
    kp: KeyPair = world["key"]
    pub_bytes = kp.public.read_bytes()

    @settings(max_examples=120, phases=NO_SHRINK)
    @given(
        url=st.one_of(st.just(str(pub.root)), st.just(pub.root.as_uri()), URL),
        mirrors=st.lists(st.one_of(st.just(str(pub.root)), URL), max_size=1),
        how=st.sampled_from(["key", "keyfile", "fingerprint"]),
        keyfile=key_bytes(pub_bytes),
        fingerprint=st.one_of(st.just(kp.fingerprint), st.just(kp.fingerprint.upper()),
                              st.just(kp.fingerprint + "\n"), ARG),
        only=st.lists(st.one_of(st.just("demo-*"), ARG), max_size=2),
        priority=st.one_of(st.none(), st.integers(-10**20, 10**20).map(str), ARG),
        skew=st.one_of(st.none(), st.sampled_from(["5m", "1h", "61m", "1000w", "9999999999w"]),
                       DURATION),
        name=st.one_of(st.just("demo"), ARG),
    )
    def check(url: str, mirrors: list[str], how: str, keyfile: bytes, fingerprint: str,
              only: list[str], priority: str | None, skew: str | None, name: str) -> None:
        if _is_remote(url) or any(_is_remote(m) for m in mirrors):
            return  # loopback only
        work = Path(tempfile.mkdtemp(dir=world["work"]))
        home = work / "home"
        args: list[str] = []
        if how == "key":
            args.append(f"--key={kp.public}")
        elif how == "keyfile":
            (work / "k.pub").write_bytes(keyfile)
            args.append(f"--key={work / 'k.pub'}")
        else:
            args.append(f"--fingerprint={fingerprint}")
        args += [f"--mirror={m}" for m in mirrors] + [f"--only={p}" for p in only]
        if priority is not None:
            args.append(f"--priority={priority}")
        if skew is not None:
            args.append(f"--clock-skew={skew}")
        r = cli("--home", home, "source", "add", *args, "--", name, url)
        clean_outcome(r)
        # what the SPEC calls a usage error is one, whatever else is wrong
        try:
            int(priority) if priority is not None else 0
            bad_priority = False
        except ValueError:
            bad_priority = True
        usage = bad_priority or any((
            skew is not None and _usage_problem(parse_duration, skew, maximum=clock_skew_max),
            how == "fingerprint" and not keys.is_fingerprint(fingerprint.lower()),
            any(_usage_problem(normalize_url, u) for u in [url, *mirrors]),
            any(_usage_problem(normalize_pattern, p) for p in only),
        ))
        if usage and how != "keyfile" and safe_name(name):  # names are checked first (exit 1)
            assert r.exit_code == 2, r.output
        if r.exit_code == 0:
            cfg = Home(home).source(name)  # what was saved reads back
            assert 0 <= cfg.clock_skew <= clock_skew_max
            clean_outcome(cli("--home", home, "source", "list"), 0)
        else:
            assert not (home / "sources" / name).exists() or name == "demo"

    check()


def test_cli_durations_for_sign_and_rotate(world: dict[str, Any]) -> None:
    """--expires: exit 2 beyond 3650 days or when malformed, never an OverflowError;
    the repository is unchanged by a refused run. (Accepted lifetimes sign: they are
    covered below and by test_publish; here they would only cost time.)"""
    pub: Published = world["pub"]
    kp: KeyPair = world["key"]
    repo = world["work"] / "sign-repo"
    shutil.copytree(pub.root, repo)
    before = tree_digest(repo)

    @settings(max_examples=80, phases=NO_SHRINK)
    @given(DURATION, st.booleans())
    def check(expires: str, rotate: bool) -> None:
        if refuses_cleanly(parse_duration, expires) is not None:
            return
        args = (["repo", "rotate", repo, "--role=targets", f"--key={kp.private}",
                 f"--expires={expires}", "--json"] if rotate
                else ["repo", "sign", repo, f"--key={kp.private}", f"--expires={expires}",
                      "--json"])
        clean_outcome(cli(*args), 2)
        assert tree_digest(repo) == before

    check()


def test_cli_requirement_strings(world: dict[str, Any]) -> None:
    home = _fresh_copy(world)
    kr = keyring_digest(home, "demo")
    reqs = st.one_of(st.just("demo-pkg==1.0"), st.just("demo-pkg[x]>=1"),
                     st.tuples(st.sampled_from(["demo-pkg", "nope", ""]), ARG).map("".join), ARG)

    @settings(max_examples=100, phases=NO_SHRINK)
    @given(reqs, st.booleans())
    def check(req: str, install: bool) -> None:
        usage = _usage_problem(parse_requirement, req)
        if install and not usage:
            return  # would run pip: covered by test_install*; here only parsing matters
        dest = Path(tempfile.mkdtemp(dir=world["work"]))
        args = ["install", "--dry-run", "--", req] if install else \
            ["download", "-d", dest, "--", req]
        r = cli("--home", home, *args)
        clean_outcome(r)
        if usage:
            assert r.exit_code == 2, r.output
        assert keyring_digest(home, "demo") == kr

    check()


def test_cli_key_fingerprint_of_arbitrary_bytes(world: dict[str, Any]) -> None:
    kp: KeyPair = world["key"]
    f = world["work"] / "fpr-under-test"

    @settings(max_examples=100, phases=NO_SHRINK)
    @given(st.one_of(key_bytes(kp.public.read_bytes()), key_bytes(kp.private.read_bytes())))
    def check(data: bytes) -> None:
        f.write_bytes(data)
        r = cli("key", "fingerprint", f)
        clean_outcome(r, 0, 1)
        if r.exit_code == 0:
            assert keys.is_fingerprint(r.stdout.strip())

    check()


def test_cli_root_and_ca_files(world: dict[str, Any]) -> None:
    """``source add --root FILE`` and ``--ca-cert FILE`` with arbitrary contents."""
    pub: Published = world["pub"]
    root = (pub.root / "metadata" / "1.root.json").read_bytes()
    ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

    @settings(max_examples=80, phases=NO_SHRINK)
    @given(json_file_bytes(root), st.one_of(st.none(), file_bytes(ca)))
    def check(root_bytes: bytes, ca_bytes: bytes | None) -> None:
        work = Path(tempfile.mkdtemp(dir=world["work"]))
        (work / "root.json").write_bytes(root_bytes)
        args = ["--home", work / "home", "source", "add", "demo", pub.root,
                f"--root={work / 'root.json'}"]
        if ca_bytes is not None:
            (work / "ca.pem").write_bytes(ca_bytes)
            args.append(f"--ca-cert={work / 'ca.pem'}")
        r = cli(*args)
        clean_outcome(r)
        if r.exit_code:
            assert not (work / "home" / "sources" / "demo").exists()

    check()


def test_cli_corrupted_state_files(world: dict[str, Any]) -> None:
    """source.json, keyring state.json, status.json corrupted; then update, list, show
    and source list: clean errors, and a refused update leaves the keyring as it was."""
    src = world["src"]
    files = {rel: (src / rel).read_bytes()
             for rel in ("source.json", "keyring/state.json", "status.json")}

    state = json.loads(files["keyring/state.json"])

    @settings(max_examples=30, phases=NO_SHRINK)
    @given(st.sampled_from(sorted(files)).flatmap(
        lambda rel: st.tuples(st.just(rel), json_file_bytes(files[rel]))))
    # found by hand: a non-ASCII digest made hmac.compare_digest raise TypeError
    @example(("keyring/state.json", json.dumps({**state, "timestamp_sha256": "é"}).encode()))
    def check(case: tuple[str, bytes]) -> None:
        rel, data = case
        home = _fresh_copy(world)
        (home / "sources" / "demo" / rel).write_bytes(data)
        kr = keyring_digest(home, "demo")
        for args in (["list"], ["show", "demo-pkg"], ["source", "list"], ["update"]):
            r = cli("--home", home, *args)
            clean_outcome(r)
            if r.exit_code or args != ["update"]:
                assert keyring_digest(home, "demo") == kr, args

    check()


# ---- the freeze attack a clock skew must not reopen ----------------------------------


def test_freeze_attack_not_reopened_by_huge_clock_skew(pubs, home: Path) -> None:
    """An attacker keeps serving metadata that expired long ago. A skew big enough to
    accept it is refused at 'source add' (exit 2), and a source.json edited to one is a
    malformed config (exit 1) — not silently honoured by update."""
    pub = pubs()
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign(now=datetime.now(UTC) - timedelta(days=400))  # every role expired long ago
    for skew in ("1000w", "3650d", "61m", "3601s", "9999999999w"):
        r = cli("--home", home, "source", "add", "demo", pub.root, "--key", pub.key.public,
                "--clock-skew", skew)
        clean_outcome(r, 2)
        assert "--clock-skew" in r.stderr and "at most 1h" in r.stderr, r.stderr
        assert not (home / "sources" / "demo").exists()
    r = cli("--home", home, "source", "add", "demo", pub.root, "--key", pub.key.public,
            "--clock-skew", "1h")
    assert r.exit_code == 0, r.output
    r = cli("--home", home, "update")
    clean_outcome(r, 3)  # the largest skew allowed does not accept it
    assert "expired" in r.stderr, r.stderr
    # the config edited by hand to the skew the CLI refuses
    cfg_path = home / "sources" / "demo" / "source.json"
    kr = keyring_digest(home, "demo")
    for skew in (1000 * 7 * 86400, 9999999999 * 7 * 86400, clock_skew_max + 1):
        cfg_path.write_bytes(json.dumps({**source_config(home, "demo"), "clock_skew": skew})
                             .encode())
        for args in (["update"], ["update", "demo"], ["list"], ["source", "list"]):
            r = cli("--home", home, *args)
            clean_outcome(r, 1)
            assert "malformed" in r.stderr and "clock_skew" in r.stderr, r.stderr
        assert keyring_digest(home, "demo") == kr
        assert not (home / "sources" / "demo" / "cache").exists() or \
            cli("--home", home, "list").exit_code == 1


@pytest.mark.parametrize("expires", ["9999999999w", "3651d", "1000w", "315360001s"])
def test_overflowing_lifetimes_refused_as_usage_errors(pubs, expires: str) -> None:
    pub = pubs()
    before = tree_digest(pub.root)
    for args in (["repo", "sign", pub.root, "--key", pub.key.private],
                 ["repo", "rotate", pub.root, "--role", "targets", "--key", pub.key.private]):
        r = cli(*args, "--expires", expires)
        clean_outcome(r, 2)
        assert "--expires" in r.stderr and "at most 3650d" in r.stderr, r.stderr
    assert tree_digest(pub.root) == before
    r = cli("repo", "sign", pub.root, "--key", pub.key.private, "--expires", "3650d",
            "--role", "root")
    assert r.exit_code == 0, r.output


# ---- the catch-all for bugs ---------------------------------------------------------------


def test_internal_error_is_one_line_unless_debugging(world: dict[str, Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug still gives one line and exit 1 (no traceback, SPEC §2), says it is a bug,
    and REPOTOOL_DEBUG=1 shows it whole."""
    import repotool.client.queries

    def broken(*a: Any, **k: Any) -> Any:
        raise ZeroDivisionError("a bug\nsecond line")

    monkeypatch.setattr(repotool.client.queries, "list_projects", broken)
    monkeypatch.delenv("REPOTOOL_DEBUG", raising=False)
    r = cli("--home", world["home"], "list")
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [
        "repotool: internal error: ZeroDivisionError: a bug; please report it "
        "(REPOTOOL_DEBUG=1 shows the traceback)"]
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        cli("--home", world["home"], "list", env={"REPOTOOL_DEBUG": "1"})
