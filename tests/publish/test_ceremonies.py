"""Key ceremonies and signers (SPEC §6.1): env:/URI signers, proposals signed on separate
machines, what clients see meanwhile, expiry operations and the CI/cron examples.

Everything is real: Ed25519 keys, repotool subprocesses in separate home directories,
a client following the root chain; the HSM signer runs against SoftHSM when installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from builders import build_wheel
from conftest import CliResult, KeyPair, cli, make_key

from repotool.publish.check import check_repository, expiry_warning
from repotool.publish.workspace import Repository, RoleKeys

ROOT = Path(__file__).resolve().parents[2]


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "lock"}


def ok(r: CliResult) -> CliResult:
    assert r.exit_code == 0, r.output
    return r


def offline_repo(tmp: Path, *, n_root: int = 3,
                 threshold: int = 2) -> tuple[Path, dict[str, KeyPair]]:
    """A role-separated repository: root 2-of-3 (offline), a targets key, an online key."""
    d = tmp / "publisher"
    ks = {n: make_key(d, n) for n in [*(f"r{i}" for i in range(1, n_root + 1)), "targets",
                                     "online"]}
    repo = d / "repo"
    # 4 bins, not 256: the same code paths, a fraction of the files
    Repository.init(repo, "acme", RoleKeys(
        [ks[f"r{i}"].public_key() for i in range(1, n_root + 1)], threshold,
        [ks["targets"].public_key()], 1, [ks["online"].public_key()]),
        now=datetime.now(UTC), bin_bits=2)
    ok(cli("repo", "add", repo, build_wheel(tmp / "dist", "demo-pkg", "1.0")))
    ok(cli("repo", "sign", repo, *[a for k in ("r1", "r2", "targets", "online")
                                   for a in ("--key", ks[k].private)]))
    return repo, ks


def trusted_root_version(home: Path, name: str = "acme") -> int:
    doc = json.loads((home / "sources" / name / "keyring" / "root.json").read_bytes())
    return int(doc["signed"]["version"])


# ---- signers: file, env:, URIs ---------------------------------------------------------


def test_signer_env_var_signs_like_the_key_file(tmp_path: Path) -> None:
    repo, ks = offline_repo(tmp_path)
    ok(cli("repo", "add", repo, build_wheel(tmp_path / "dist", "demo-pkg", "1.1")))
    env = {"CI_TARGETS_KEY": ks["targets"].private.read_text()}
    r = ok(cli("repo", "sign", repo, "--key", "env:CI_TARGETS_KEY", "--key",
               ks["online"].private, "--json", env=env))
    assert "targets" in json.loads(r.stdout)["versions"]
    sig = json.loads((repo / "metadata" / "2.targets.json").read_bytes())["signatures"]
    assert [s["keyid"] for s in sig] == [ks["targets"].fingerprint]
    assert ok(cli("repo", "check", repo))
    # a secret stored on one line with "\n" escapes (some CI systems) reads the same
    one_line = ks["targets"].private.read_text().strip().replace("\n", "\\n")
    fpr = ok(cli("key", "fingerprint", "env:K", env={"K": one_line})).stdout.strip()
    assert fpr == ks["targets"].fingerprint


def test_signer_env_var_encrypted_pem_takes_the_passphrase(tmp_path: Path) -> None:
    env = {"PASS": "s3cret"}
    ok(cli("key", "generate", tmp_path / "enc", "--passphrase-env", "PASS", env=env))
    pem = (tmp_path / "enc.key").read_text()
    assert "ENCRYPTED PRIVATE KEY" in pem
    fpr = ok(cli("key", "fingerprint", "env:K", "--passphrase-env", "PASS",
                 env={"K": pem, **env})).stdout.strip()
    assert fpr == ok(cli("key", "fingerprint", tmp_path / "enc.pub")).stdout.strip()
    r = cli("key", "fingerprint", "env:K", "--passphrase-env", "WRONG",
            env={"K": pem, "WRONG": "nope"})
    assert r.exit_code == 1 and "wrong passphrase for 'env:K'" in r.stderr
    assert "s3cret" not in r.output and "PRIVATE" not in r.output


@pytest.mark.parametrize(("key", "env", "code", "says"), [
    ("env:MISSING_VAR", {}, 1, "environment variable 'MISSING_VAR' (--key env:MISSING_VAR) is "
                              "not set"),
    ("env:", {}, 2, "env: takes an environment variable name"),
    ("env:BAD", {"BAD": "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n"},
     1, "'env:BAD' is not a readable PEM private key"),
    ("env:PUB", None, 1, "'env:PUB' is not a private key"),
    ("env:EMPTY", {"EMPTY": ""}, 1, "is empty"),
    ("nosuch:thing", {}, 2, "unknown signer URI scheme 'nosuch'"),
    ("hsm:notanumber", {}, 1, "the signer holds none of the"),
    ("gnupg:?id=abcd", {}, 1, "the signer holds none of the"),
])
def test_bad_signer_one_line_error_nothing_written(
        tmp_path: Path, key: str, env: dict[str, str] | None, code: int, says: str) -> None:
    repo, ks = offline_repo(tmp_path)
    ok(cli("repo", "add", repo, build_wheel(tmp_path / "dist", "demo-pkg", "1.1")))
    before = tree(repo)
    if env is None:
        env = {"PUB": ks["targets"].public.read_text()}
    for args in (["repo", "sign", repo, "--key", key, "--key", ks["online"].private],
                 ["repo", "rotate", repo, "--role", "online", "--threshold", "1", "--key", key],
                 ["repo", "rotate", repo, "--apply", tmp_path / "none.json", "--key", key]):
        r = cli(*args, env={"REPOTOOL_DEBUG": "0", **env})
        if "--apply" in args:
            assert r.exit_code in (1, 2) and r.stderr.startswith("repotool: error:")
            continue
        assert r.exit_code == code, r.output
        assert says in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) <= 2 and "Traceback" not in r.output
    assert tree(repo) == before


def test_extra_keys_ignored_with_note_in_sign_and_rotate(tmp_path: Path) -> None:
    repo, ks = offline_repo(tmp_path)
    stranger = make_key(tmp_path / "other", "stranger")
    everyone = [a for k in ks.values() for a in ("--key", k.private)]
    r = ok(cli("repo", "sign", repo, "--role", "snapshot", *everyone, "--key",
               stranger.private))
    # r1-r3 and targets sign nothing a snapshot refresh writes: noted, not refused
    for k in ("r1", "r3", "targets"):
        assert f"note: key {ks[k].fingerprint} holds no role this sign writes: ignored" in \
            r.stderr
    assert stranger.fingerprint in r.stderr
    new = make_key(tmp_path / "new", "online2")
    r = ok(cli("repo", "rotate", repo, "--role", "online", "--add", new.public, "--remove",
               ks["online"].fingerprint, *everyone, "--key", new.private, "--key",
               stranger.private))
    assert f"note: key {stranger.fingerprint} holds no role" in r.stderr
    # missing ones are named with their fingerprints
    r2 = cli("repo", "rotate", repo, "--role", "online", "--threshold", "1",
             "--key", ks["r1"].private, "--key", stranger.private)
    assert r2.exit_code == 3
    assert ks["r2"].fingerprint in r2.stderr and ks["r3"].fingerprint in r2.stderr


# ---- HSM through securesystemslib's HSMSigner, against SoftHSM --------------------------

SOFTHSM_LIB = Path("/usr/lib/softhsm/libsofthsm2.so")


def _softhsm(tmp: Path) -> dict[str, str]:
    if not SOFTHSM_LIB.exists() or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM is not installed (apt-get install softhsm2)")
    pkcs11 = pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed")
    (tmp / "tokens").mkdir()
    conf = tmp / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp / 'tokens'}\nobjectstore.backend = file\n")
    env = {"SOFTHSM2_CONF": str(conf), "PYKCS11LIB": str(SOFTHSM_LIB), "HSM_PIN": "1234"}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "repotool",
                    "--pin", "1234", "--so-pin", "5678"], check=True, capture_output=True,
                   env={**os.environ, **env})
    os.environ.update(env)  # the token is found through these in this process too
    lib = pkcs11.lib(str(SOFTHSM_LIB))
    with lib.get_token(token_label="repotool").open(rw=True, user_pin="1234") as session:
        from pkcs11.util.ec import encode_named_curve_parameters

        params = session.create_domain_parameters(
            pkcs11.KeyType.EC, {pkcs11.Attribute.EC_PARAMS:
                                encode_named_curve_parameters("secp256r1")}, local=True)
        params.generate_keypair(store=True, id=b"\x02", label="repotool-root")
    return env


def test_signer_hsm_uri_signs_root_against_softhsm(tmp_path: Path) -> None:
    env = _softhsm(tmp_path)
    from securesystemslib.signer import HSMSigner

    try:
        uri, key = HSMSigner.import_(hsm_keyid=2, token_label="repotool")
        (tmp_path / "hsm.pub").write_text(key.keyval["public"])
        d = tmp_path / "k"
        t, o = make_key(d, "targets"), make_key(d, "online")
        repo = tmp_path / "repo"
        ok(cli("repo", "init", repo, "--name", "acme", "--root-key", tmp_path / "hsm.pub",
               "--targets-key", t.public, "--online-key", o.public))
        ok(cli("repo", "add", repo, build_wheel(tmp_path / "dist", "demo-pkg", "1.0")))
        # the URI carries no public key: repotool matches it to the root key it holds
        r = ok(cli("repo", "sign", repo, "--key", uri, "--key", t.private, "--key", o.private,
                   "--passphrase-env", "HSM_PIN", env=env))
        assert "root v1" in r.stdout
        root = json.loads((repo / "metadata" / "1.root.json").read_bytes())
        assert [s["keyid"] for s in root["signatures"]] == [key.keyid]
        assert ok(cli("key", "fingerprint", uri, "--pub", tmp_path / "hsm.pub",
                      "--passphrase-env", "HSM_PIN", env=env)).stdout.strip() == key.keyid
        home = tmp_path / "home"
        ok(cli("--home", home, "source", "add", "acme", repo, "--key", tmp_path / "hsm.pub"))
        ok(cli("--home", home, "update"))
        # a wrong PIN: one line, nothing written
        ok(cli("repo", "add", repo, build_wheel(tmp_path / "dist", "demo-pkg", "1.1")))
        before = tree(repo)
        r2 = cli("repo", "sign", repo, "--role", "root", "--key", uri, "--key", t.private,
                 "--key", o.private, "--passphrase-env", "BAD_PIN",
                 env={**env, "BAD_PIN": "0000", "REPOTOOL_DEBUG": "0"})
        assert r2.exit_code == 1 and "the signer holds none" in r2.stderr, r2.output
        assert tree(repo) == before
    finally:
        for k in env:
            os.environ.pop(k, None)


# ---- ceremonies ------------------------------------------------------------------------


def run(home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``repotool ARGS`` as a holder on their own machine: own HOME, own working dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPOTOOL", "PIP_"))}
    env.update(HOME=str(home), REPOTOOL_HOME=str(home / ".repotool"))
    return subprocess.run([sys.executable, "-m", "repotool", *map(str, args)], cwd=home,
                          env=env, capture_output=True, text=True, timeout=120)


def test_ceremony_2_of_3_offline_root_three_holders_three_homes(tmp_path: Path) -> None:
    repo, ks = offline_repo(tmp_path)
    user = tmp_path / "user"
    ok(cli("--home", user, "source", "add", "acme", repo, "--key", ks["r1"].public))
    ok(cli("--home", user, "update"))
    # three holders, each with only their key (and later the proposal file)
    holders = {}
    for n in ("r1", "r2", "r3"):
        h = tmp_path / f"holder-{n}"
        h.mkdir()
        shutil.copy(ks[n].private, h / f"{n}.key")
        holders[n] = h
    new = make_key(tmp_path / "newkeys", "r4")
    before = tree(repo)
    # the publisher proposes: replace r3 by r4 (r3's holder leaves), keep 2-of-3
    r = run(repo.parent, "repo", "rotate", "repo", "--role", "root", "--add",
            new.public, "--remove", ks["r3"].fingerprint, "--propose", "rotate-root.json")
    assert r.returncode == 0, r.stderr
    assert "old root v1: 0 of 2 signatures" in r.stdout and ks["r3"].fingerprint in r.stdout
    assert tree(repo) == before
    # holder 1 signs on their machine
    shutil.copy(repo.parent / "rotate-root.json", holders["r1"])
    r = run(holders["r1"], "proposal", "sign", "rotate-root.json", "--key", "r1.key")
    assert r.returncode == 0, r.stderr
    assert f"signed by {ks['r1'].fingerprint}" in r.stderr
    assert "still missing: old root v1 needs 1 more of 2" in r.stdout
    # meanwhile a client updating sees the old root only
    ok(cli("--home", user, "update"))
    assert trusted_root_version(user) == 1 and tree(repo) == before
    # holder 2 gets the file from holder 1, shows it, signs it
    shutil.copy(holders["r1"] / "rotate-root.json", holders["r2"])
    r = run(holders["r2"], "proposal", "show", "rotate-root.json", "--json")
    st = json.loads(r.stdout)
    assert st["signed_by"] == [ks["r1"].fingerprint] and not st["complete"]
    assert st["old"]["missing"] == 1 and st["new"]["missing"] == 1
    assert new.fingerprint in st["new"]["can_sign"]
    assert st["changes"] == [{"role": "root", "add": [new.fingerprint],
                              "remove": [ks["r3"].fingerprint], "threshold": [2, 2]}]
    r = run(holders["r2"], "proposal", "sign", "rotate-root.json", "--key", "r2.key")
    assert r.returncode == 0, r.stderr
    # the old threshold is met, the new one not: r4 must sign too (new threshold: r1, r2, r4)
    r = run(holders["r2"], "proposal", "show", "rotate-root.json", "--json")
    st = json.loads(r.stdout)
    assert st["old"]["missing"] == 0 and st["new"]["missing"] == 0 and st["complete"]
    # holder 3 (leaving) is asked too: an extra key is noted, never an error
    shutil.copy(holders["r2"] / "rotate-root.json", holders["r3"])
    r = run(holders["r3"], "proposal", "sign", "rotate-root.json", "--key", "r3.key")
    assert r.returncode == 0, r.stderr
    # back at the publisher: apply with the online and targets keys
    shutil.copy(holders["r3"] / "rotate-root.json", repo.parent / "signed.json")
    r = run(repo.parent, "repo", "rotate", "repo", "--apply", "signed.json",
            "--key", ks["targets"].private, "--key", ks["online"].private)
    assert r.returncode == 0, r.stderr
    assert "root v2" in r.stdout
    ok(cli("repo", "check", repo))
    ok(cli("--home", user, "update"))
    assert trusted_root_version(user) == 2
    # r3 no longer counts, r4 does: a new sign by r1 + r4 meets the root threshold
    ok(cli("repo", "sign", repo, "--role", "root", "--key", ks["r1"].private, "--key",
           new.private, "--key", ks["targets"].private, "--key", ks["online"].private))
    ok(cli("--home", user, "update"))
    assert trusted_root_version(user) == 3


def _propose(repo: Path, out: Path, *args: str | Path) -> None:
    ok(cli("repo", "rotate", repo, *args, "--propose", out))


def test_half_signed_proposal_refused_by_apply_writes_nothing_exit_3(tmp_path: Path) -> None:
    repo, ks = offline_repo(tmp_path)
    p = tmp_path / "p.json"
    _propose(repo, p, "--role", "targets", "--threshold", "1")
    ok(cli("proposal", "sign", p, "--key", ks["r1"].private))
    before = tree(repo)
    r = cli("repo", "rotate", repo, "--apply", p, "--key", ks["targets"].private,
            "--key", ks["online"].private)
    assert r.exit_code == 3 and "nothing was written" in r.stderr
    assert ks["r2"].fingerprint in r.stderr and ks["r3"].fingerprint in r.stderr
    assert tree(repo) == before


def test_new_keys_only_proposal_refused_by_apply_and_by_client_forced(tmp_path: Path) -> None:
    """The attack: whoever holds only the *new* keys signs a root that lists them."""
    repo, ks = offline_repo(tmp_path)
    user = tmp_path / "user"
    ok(cli("--home", user, "source", "add", "acme", repo, "--key", ks["r1"].public))
    ok(cli("--home", user, "update"))
    a, b = make_key(tmp_path / "evil", "a"), make_key(tmp_path / "evil", "b")
    p = tmp_path / "p.json"
    _propose(repo, p, "--role", "root", "--add", a.public, "--add", b.public,
             "--remove", ks["r1"].fingerprint, "--remove", ks["r2"].fingerprint,
             "--remove", ks["r3"].fingerprint)
    ok(cli("proposal", "sign", p, "--key", a.private, "--key", b.private))
    st = json.loads(ok(cli("proposal", "show", p, "--json")).stdout)
    assert st["new"]["missing"] == 0 and st["old"]["missing"] == 2 and not st["complete"]
    before = tree(repo)
    r = cli("repo", "rotate", repo, "--apply", p, "--key", ks["targets"].private,
            "--key", ks["online"].private)
    assert r.exit_code == 3 and "root (old v1)" in r.stderr and ks["r1"].fingerprint in r.stderr
    assert tree(repo) == before
    # forced into place by hand: the client refuses it and keeps root v1
    doc = json.loads(p.read_bytes())["root"]
    data = json.dumps(doc).encode()
    (repo / "metadata" / "2.root.json").write_bytes(data)
    (repo / "metadata" / "root.json").write_bytes(data)
    r = cli("--home", user, "update")
    assert r.exit_code == 3, r.output
    assert trusted_root_version(user) == 1


def test_stale_proposal_refused_after_another_root_change(tmp_path: Path) -> None:
    repo, ks = offline_repo(tmp_path)
    p1, p2 = tmp_path / "p1.json", tmp_path / "p2.json"
    _propose(repo, p1, "--role", "targets", "--threshold", "1")
    _propose(repo, p2, "--role", "online", "--threshold", "1")
    for p in (p1, p2):
        ok(cli("proposal", "sign", p, "--key", ks["r1"].private, "--key", ks["r2"].private))
    keys = ["--key", ks["targets"].private, "--key", ks["online"].private]
    ok(cli("repo", "rotate", repo, "--apply", p2, *keys))
    before = tree(repo)
    r = cli("repo", "rotate", repo, "--apply", p1, *keys)
    assert r.exit_code == 3
    assert "made against root version 1, the repository's root is version 2" in r.stderr
    assert tree(repo) == before


def test_tampered_proposal_signature_does_not_count(tmp_path: Path) -> None:
    repo, ks = offline_repo(tmp_path)
    p = tmp_path / "p.json"
    _propose(repo, p, "--role", "targets", "--threshold", "1")
    ok(cli("proposal", "sign", p, "--key", ks["r1"].private, "--key", ks["r2"].private))
    doc = json.loads(p.read_bytes())
    doc["root"]["signed"]["roles"]["targets"]["keyids"] = [ks["r1"].fingerprint]
    p.write_text(json.dumps(doc))
    st = json.loads(ok(cli("proposal", "show", p, "--json")).stdout)
    assert st["signed_by"] == [] and len(st["invalid_signatures"]) == 2
    before = tree(repo)
    r = cli("repo", "rotate", repo, "--apply", p, "--key", ks["targets"].private, "--key",
            ks["online"].private, "--key", ks["r1"].private)
    assert r.exit_code == 3 and tree(repo) == before


def test_parallel_signed_copies_merge_at_apply(tmp_path: Path) -> None:
    repo, ks = offline_repo(tmp_path)
    p = tmp_path / "p.json"
    _propose(repo, p, "--role", "targets", "--threshold", "1")
    c1, c2 = tmp_path / "c1.json", tmp_path / "c2.json"
    shutil.copy(p, c1)
    shutil.copy(p, c2)
    ok(cli("proposal", "sign", c1, "--key", ks["r1"].private))
    ok(cli("proposal", "sign", c2, "--key", ks["r3"].private))
    r = ok(cli("repo", "rotate", repo, "--apply", c1, "--apply", c2, "--key",
               ks["targets"].private, "--key", ks["online"].private))
    assert "root v2" in r.stdout
    ok(cli("repo", "check", repo))


def test_malformed_proposal_one_line_exit_1(tmp_path: Path) -> None:
    repo, ks = offline_repo(tmp_path)
    for text in ("{", "[]", '{"repotool_proposal": 1}', '{"repotool_proposal": 1, "base": 1,'
                 ' "root": 2}'):
        (tmp_path / "bad.json").write_text(text)
        for args in (["proposal", "show", tmp_path / "bad.json"],
                     ["proposal", "sign", tmp_path / "bad.json", "--key", ks["r1"].private],
                     ["repo", "rotate", repo, "--apply", tmp_path / "bad.json"]):
            r = cli(*args, env={"REPOTOOL_DEBUG": "0"})
            assert r.exit_code == 1 and "is not a repotool proposal" in r.stderr, r.output


def test_one_command_rotation_of_one_key_every_role_repository(tmp_path: Path) -> None:
    d = tmp_path / "k"
    old, new = make_key(d, "old"), make_key(d, "new")
    repo = tmp_path / "repo"
    ok(cli("repo", "init", repo, "--name", "solo", "--key", old.public))
    ok(cli("repo", "add", repo, build_wheel(tmp_path / "dist", "demo-pkg", "1.0")))
    ok(cli("repo", "sign", repo, "--key", old.private))
    home = tmp_path / "home"
    ok(cli("--home", home, "source", "add", "solo", repo, "--key", old.public))
    ok(cli("--home", home, "update"))
    ok(cli("repo", "rotate", repo, "--role", "all", "--add", new.public, "--remove",
           old.fingerprint, "--key", old.private, "--key", new.private))
    keys = json.loads(ok(cli("repo", "keys", repo, "--json")).stdout)
    assert all(r["keys"] == [new.fingerprint] for r in keys["roles"].values())
    assert keys["bins"]["keys"] == [new.fingerprint]
    ok(cli("--home", home, "update"))
    assert trusted_root_version(home, "solo") == 2
    # from now on the new key alone publishes; the old one is ignored with a note
    ok(cli("repo", "add", repo, build_wheel(tmp_path / "dist", "demo-pkg", "2.0")))
    r = cli("repo", "sign", repo, "--key", old.private)
    assert r.exit_code == 3
    ok(cli("repo", "sign", repo, "--key", new.private))
    ok(cli("--home", home, "update"))


# ---- expiry operations -----------------------------------------------------------------


def test_expiry_warning_at_20_percent_of_lifetime() -> None:
    signed = datetime(2026, 1, 1, tzinfo=UTC)
    exp = signed + timedelta(days=10)
    assert expiry_warning("snapshot", exp, signed, signed + timedelta(days=7, hours=23),
                          "d") is None
    w = expiry_warning("snapshot", exp, signed, signed + timedelta(days=8, hours=1), "d")
    assert w is not None and w.startswith("snapshot expires at 2026-01-11 00:00:00 UTC")
    assert "in 1d, within the last 20% of its 10d lifetime" in w
    # signed for less than its default (10d targets): judged against the default at once
    w = expiry_warning("targets", exp, signed, signed + timedelta(hours=1), "d")
    assert w is not None and "last 20% of its default 90d lifetime" in w
    assert "repo sign d --role targets" in w
    signed_long = exp - timedelta(days=200)  # a 200d targets: judged against 200d
    assert expiry_warning("targets", exp, signed_long, exp - timedelta(days=41), "d") is None
    w = expiry_warning("targets", exp, signed_long, exp - timedelta(days=39), "d")
    assert w is not None and "last 20% of its 200d lifetime" in w
    w = expiry_warning("timestamp", exp, None, exp - timedelta(hours=1), "my dir")
    assert w is not None and "repotool repo sign 'my dir' --refresh --key ONLINE_KEY" in w


def test_check_warns_near_expiry_naming_role_and_renew_command(tmp_path: Path) -> None:
    repo, ks = offline_repo(tmp_path)
    rep = check_repository(repo, now=datetime.now(UTC) + timedelta(hours=20))
    ts = [w for w in rep.warnings if w.startswith("timestamp")]
    assert ts and "renew: repotool repo sign" in ts[0] and "--refresh" in ts[0]
    assert not [w for w in rep.warnings if w.startswith(("root", "targets")) or "bin" in w]
    # a timestamp kept fresh (the library with a later clock) while snapshot ages
    later = datetime.now(UTC) + timedelta(days=5, hours=12)
    assert set(Repository(repo).sign([ks["online"].signer()], now=later).versions) == {
        "timestamp"}
    rep = check_repository(repo, now=later + timedelta(hours=12))
    snap = [w for w in rep.warnings if w.startswith("snapshot expires")]
    assert snap and "--refresh --key ONLINE_KEY" in snap[0], rep.warnings
    # bins are re-signed only when they change: they age with targets, and are named too
    later = datetime.now(UTC) + timedelta(days=80)
    Repository(repo).sign([ks["online"].signer()], now=later, refresh=True)
    rep = check_repository(repo, now=later)
    bins = [w for w in rep.warnings if "bin(s) near expiry" in w]
    assert bins and bins[0].startswith("4 bin(s) near expiry, the first: bins expires at")
    assert "--role bins --key TARGETS_KEY" in bins[0]
    assert any(w.startswith("targets expires at") for w in rep.warnings)


def test_refresh_cron_path_online_key_alone_pending_stays_pending(tmp_path: Path) -> None:
    repo, ks = offline_repo(tmp_path)
    ok(cli("repo", "add", repo, build_wheel(tmp_path / "dist", "unreviewed", "1.0")))
    pending = (repo / ".repotool" / "pending.json").read_bytes()
    r = ok(cli("repo", "sign", repo, "--refresh", "--key", ks["online"].private, "--json"))
    assert json.loads(r.stdout)["versions"] == {"snapshot": 2, "timestamp": 2}
    assert (repo / ".repotool" / "pending.json").read_bytes() == pending
    ok(cli("repo", "check", repo))
    assert b"unreviewed" not in (repo / "simple" / "index.json").read_bytes()
    r2 = cli("repo", "sign", repo, "--refresh", "--role", "targets", "--key",
             ks["online"].private)
    assert r2.exit_code == 2


def test_systemd_refresh_unit_runs_the_documented_command(tmp_path: Path) -> None:
    repo, ks = offline_repo(tmp_path)
    service = (ROOT / "examples" / "repotool-refresh.service").read_text()
    timer = (ROOT / "examples" / "repotool-refresh.timer").read_text()
    assert "OnCalendar=" in timer and "Unit=repotool-refresh.service" in timer
    line = next(x for x in service.splitlines() if x.startswith("ExecStart="))
    argv = line[len("ExecStart="):].split()
    assert argv[:4] == ["/usr/local/bin/repotool", "repo", "sign", "/srv/repo"]
    argv = [sys.executable, "-m", "repotool", *argv[1:]]
    argv = [str(repo) if a == "/srv/repo" else
            str(ks["online"].private) if a == "/etc/repotool/online.key" else a for a in argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPOTOOL")}
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "snapshot v2, timestamp v2" in r.stdout


def test_ci_publish_example_targets_key_from_env_secret(tmp_path: Path) -> None:
    repo, ks = offline_repo(tmp_path)
    dist = tmp_path / "ci-dist"
    build_wheel(dist, "demo-pkg", "2.0")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPOTOOL", "PIP_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(REPOTOOL_REPO=str(repo), REPOTOOL_DIST=str(dist),
               REPOTOOL_TARGETS_KEY=ks["targets"].private.read_text(),
               REPOTOOL_ONLINE_KEY=ks["online"].private.read_text())
    r = subprocess.run(["bash", str(ROOT / "examples" / "ci-publish.sh")], capture_output=True,
                       text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "demo-pkg 2.0" in r.stdout and "0 problem(s)" in r.stdout
    assert ks["targets"].private.read_text() not in r.stdout + r.stderr
    user = tmp_path / "user"
    ok(cli("--home", user, "source", "add", "acme", repo, "--key", ks["r1"].public))
    ok(cli("--home", user, "update"))
    shown = json.loads(ok(cli("--home", user, "show", "demo-pkg", "--json")).stdout)
    assert "2.0" in json.dumps(shown)


def test_ceremony_first_root_of_offline_2_of_3_signed_by_holders_apart(tmp_path: Path) -> None:
    d = tmp_path / "publisher"
    ks = {n: make_key(d, n) for n in ("r1", "r2", "r3", "targets", "online")}
    repo = d / "repo"
    Repository.init(repo, "acme", RoleKeys(
        [ks[f"r{i}"].public_key() for i in (1, 2, 3)], 2, [ks["targets"].public_key()], 1,
        [ks["online"].public_key()]), now=datetime.now(UTC), bin_bits=2)
    ok(cli("repo", "add", repo, build_wheel(tmp_path / "dist", "demo-pkg", "1.0")))
    before = tree(repo)
    p = tmp_path / "first.json"
    r = ok(cli("repo", "rotate", repo, "--propose", p))
    assert "first root v1: 0 of 2 signatures" in r.stdout and tree(repo) == before
    r = cli("repo", "rotate", repo, "--role", "root", "--threshold", "1", "--propose",
            tmp_path / "x.json")
    assert r.exit_code == 1 and "never signed" in r.stderr
    ok(cli("proposal", "sign", p, "--key", ks["r1"].private))
    r = cli("repo", "rotate", repo, "--apply", p, "--key", ks["targets"].private, "--key",
            ks["online"].private)
    assert r.exit_code == 3 and ks["r2"].fingerprint in r.stderr and tree(repo) == before
    ok(cli("proposal", "sign", p, "--key", ks["r3"].private))
    # a first root made for another repository's init does not apply here
    other = tmp_path / "other"
    Repository.init(other, "acme", RoleKeys(
        [ks[f"r{i}"].public_key() for i in (1, 2, 3)], 1, [ks["targets"].public_key()], 1,
        [ks["online"].public_key()]), now=datetime.now(UTC), bin_bits=2)
    r = cli("repo", "rotate", other, "--apply", p, "--key", ks["targets"].private, "--key",
            ks["online"].private)
    assert r.exit_code == 3 and "not the one 'repo init' wrote" in r.stderr
    ok(cli("repo", "rotate", repo, "--apply", p, "--key", ks["targets"].private, "--key",
           ks["online"].private))
    ok(cli("repo", "check", repo))
    home = tmp_path / "home"
    ok(cli("--home", home, "source", "add", "acme", repo, "--key", ks["r3"].public))
    ok(cli("--home", home, "update"))
    # published now: the same proposal cannot be applied again
    r = cli("repo", "rotate", repo, "--apply", p, "--key", ks["targets"].private)
    assert r.exit_code == 3 and "signed already" in r.stderr


def test_expired_proposal_refused_by_sign_and_apply(tmp_path: Path) -> None:
    from repotool.errors import VerificationError
    from repotool.publish import ceremony

    repo, ks = offline_repo(tmp_path)
    p = tmp_path / "p.json"
    _propose(repo, p, "--role", "targets", "--threshold", "1", "--expires", "1h")
    ok(cli("proposal", "sign", p, "--key", ks["r1"].private, "--key", ks["r2"].private))
    before = tree(repo)
    later = datetime.now(UTC) + timedelta(hours=2)
    with pytest.raises(VerificationError, match="expired"):
        ceremony.apply(Repository(repo), [ceremony.load(p)],
                       [ks["targets"].signer(), ks["online"].signer()], now=later)
    assert tree(repo) == before
    st = ceremony.status(ceremony.load(p), now=later)
    assert st["expired"] and not st["complete"]
