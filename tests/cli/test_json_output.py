"""``--json`` on update, repo sign, download, install and lock (SPEC §6.6, docs/cli.md).

stdout is exactly one JSON document of the documented shape (``json.loads`` of all of
it); failures the document describes keep it and set the exit code; errors that leave
no document print nothing on stdout and one ``repotool: error:`` line (+ hint) on
stderr, with SPEC §2's exit code. Real pip in a real venv for install and lock.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from builders import sha256_file
from conftest import cli
from venvs import make_venv, pip_freeze

from repotool.format.layout import dist_target_path, hashed_name

PROBLEM = {"kind": str, "subject": str, "message": str, "exit_code": int,
           "source": (str, type(None)), "hint": (str, type(None))}
SERVED = {"project": str, "version": str, "filename": str, "sha256": str, "size": int,
          "source": str}


def doc_of(stdout: str) -> Any:
    return json.loads(stdout)  # the whole of stdout: one document, nothing else


def check(obj: dict[str, Any], shape: dict[str, Any]) -> None:
    assert set(obj) == set(shape), (sorted(obj), sorted(shape))
    for k, t in shape.items():
        assert isinstance(obj[k], t), (k, obj[k], t)


def no_document(r: Any, code: int, starts: str) -> None:
    assert r.exit_code == code, r.output
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert 1 <= len(lines) <= 2 and lines[0].startswith(f"repotool: error: {starts}"), lines


def test_repo_sign_update_and_download_json(make_published, home: Path,
                                            tmp_path: Path) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    whl = pub.add_wheel("demo-pkg", "1.1")
    r = cli("repo", "sign", pub.root, "--key", pub.key.private, "--json")
    assert r.exit_code == 0, r.output
    check(doc_of(r.stdout), {"files": int, "bytes": int, "projects_changed": int,
                             "versions": dict, "notes": list})
    assert cli("--home", home, "source", "add", "demo", pub.root, "--key",
               pub.key.public).exit_code == 0

    r = cli("--home", home, "update", "--json")
    assert r.exit_code == 0, r.output
    [u] = doc_of(r.stdout)
    check(u, {"source": str, "ok": bool, "changed": bool, "exit_code": int,
              "error": type(None), "hint": type(None), "mirror": str, "failures": list,
              "versions": dict, "files_fetched": int, "bytes_fetched": int,
              "projects": int, "notices": list})
    assert u["ok"] and u["versions"]["timestamp"] == 2

    r = cli("--home", home, "download", "demo-pkg", "-d", tmp_path / "dl", "--json")
    assert r.exit_code == 0, r.output
    [d] = doc_of(r.stdout)
    check(d, {**SERVED, "path": str})
    assert (d["version"], d["sha256"]) == ("1.1", sha256_file(whl))
    assert Path(d["path"]).read_bytes() == whl.read_bytes()

    # errors with no document: stdout empty, one error line, the SPEC's code
    no_document(cli("--home", home, "download", "nope", "--json"), 1, "")
    no_document(cli("--home", home, "download", "demo-pkg==", "--json"), 2,
                "invalid requirement")
    no_document(cli("--home", home, "update", "nope", "--json"), 1, "no source named")
    no_document(cli("repo", "sign", tmp_path / "none", "--key", pub.key.private, "--json"),
                1, "")
    # a failed source is part of the document: kept, exit code set
    (pub.root / "metadata" / "timestamp.json").write_text("{}")
    r = cli("--home", home, "update", "--json")
    assert r.exit_code == 3
    [u] = doc_of(r.stdout)
    assert not u["ok"] and u["exit_code"] == 3 and isinstance(u["error"], str)


def test_install_and_lock_json_with_real_pip(make_published, home: Path,
                                             tmp_path: Path) -> None:
    pub = make_published(projects={"lib": ["1.0"]})
    lib = pub.dist / "lib-1.0-py3-none-any.whl"
    pub.add_wheel("app", "1.0", requires_dist=["lib"])
    pub.add_wheel("bad", "1.0")
    pub.sign()
    assert cli("--home", home, "source", "add", "demo", pub.root, "--key",
               pub.key.public).exit_code == 0
    assert cli("--home", home, "update").exit_code == 0
    py = make_venv(tmp_path / "venv")

    lockfile = tmp_path / "req.lock"
    r = cli("--home", home, "lock", "app", "--python", py, "-o", lockfile, "--json")
    assert r.exit_code == 0, r.output
    lk = doc_of(r.stdout)
    check(lk, {"python": str, "exit_code": int, "pip_exit": int, "output": str,
               "entries": list, "problems": list, "problems_dropped": int,
               "unverified": list, "warnings": list})
    assert lk["output"] == str(lockfile) and lockfile.is_file()
    entries = {e["project"]: e for e in lk["entries"]}
    assert set(entries) == {"app", "lib"}
    check(entries["lib"], {"project": str, "version": str, "source": str, "hashes": list})
    assert entries["lib"]["hashes"] == [sha256_file(lib)]
    r = cli("--home", home, "lock", "app", "--python", py, "--json")  # -o -: JSON only
    assert r.exit_code == 0 and doc_of(r.stdout)["output"] is None
    assert "--hash" not in r.stdout

    r = cli("--home", home, "install", "--python", py, "app", "--json")
    assert r.exit_code == 0, r.output
    inst = doc_of(r.stdout)
    check(inst, {"python": str, "dry_run": bool, "exit_code": int, "pip_exit": int,
                 "resolutions": list, "installed": list, "served": list, "problems": list,
                 "problems_dropped": int, "unverified": list, "warnings": list})
    assert pip_freeze(py) == {"app": "1.0", "lib": "1.0"}
    assert {i["project"] for i in inst["installed"]} == {"app", "lib"}
    for i in inst["installed"]:
        check(i, {"project": str, "version": str, "requested": bool, "url": str,
                  "served": dict})
        check(i["served"], SERVED)
    assert "Successfully installed" in r.stderr  # pip's output: stderr, not the document
    assert inst["resolutions"] == []  # --dry-run says why
    r = cli("--home", home, "install", "--python", py, "app", "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    dry = doc_of(r.stdout)
    assert dry["dry_run"] is True and dry["resolutions"]
    check(dry["resolutions"][0], {"project": str, "source": (str, type(None)),
                                  "reason": str})

    # a refusal: the document says what and why, the exit code is 3
    bad = pub.dist / "bad-1.0-py3-none-any.whl"
    stored = pub.root / hashed_name(dist_target_path("bad", bad.name), sha256_file(bad))
    evil = bytearray(stored.read_bytes())
    evil[-1] ^= 0xFF  # same size, other bytes
    stored.write_bytes(bytes(evil))
    r = cli("--home", home, "install", "--python", py, "bad", "--json")
    assert r.exit_code == 3, r.output
    refused = doc_of(r.stdout)
    assert refused["exit_code"] == 3 and refused["pip_exit"] != 0
    check(refused["problems"][0], PROBLEM)
    assert refused["problems"][0]["kind"] == "file"
    assert "bad" not in pip_freeze(py)
    # an error before pip runs: no document
    no_document(cli("--home", home, "install", "--python", py, "x @ https://e.example/x.whl",
                    "--json"), 2, "direct URL")


def test_quiet_keeps_data_and_drops_chatter(make_published, home: Path,
                                            tmp_path: Path) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    r = cli("--home", home, "-q", "source", "add", "demo", pub.root, "--key", pub.key.public)
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
    r = cli("--home", home, "-q", "update")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
    r = cli("--home", home, "-q", "download", "demo-pkg", "-d", tmp_path / "dl")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
    assert (tmp_path / "dl" / "demo_pkg-1.0-py3-none-any.whl").is_file()
    # every command group obeys -q (cli/common.py err and say): repo, mirror
    r = cli("-q", "repo", "sign", pub.root, "--key", pub.key.private)
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
    r = cli("--home", home, "-q", "mirror", "demo", tmp_path / "copy")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
    assert (tmp_path / "copy").is_dir()
    r = cli("--home", home, "-q", "list")  # data asked for
    assert r.exit_code == 0 and r.stdout.startswith("demo-pkg\t1.0")
    r = cli("--home", home, "-q", "show", "nope")
    assert r.exit_code == 1 and r.stderr.startswith("repotool: error:")
