"""The publisher-to-client path in one test: the contract the rest builds on."""

from __future__ import annotations

from pathlib import Path

from conftest import cli


def test_publish_update_download_verify(make_published, home: Path, tmp_path: Path) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0", "1.1"], "dep-a": ["2.0"]})
    assert cli("repo", "check", pub.root).exit_code == 0
    r = cli("--home", home, "source", "add", "demo", pub.root, "--key", pub.key.public)
    assert r.exit_code == 0, r.output
    assert pub.key.fingerprint in r.stdout
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output
    r = cli("--home", home, "list")
    assert "demo-pkg\t1.1\tdemo" in r.stdout
    r = cli("--home", home, "download", "demo-pkg==1.0", "-d", tmp_path / "dl")
    assert r.exit_code == 0, r.output
    files = list((tmp_path / "dl").iterdir())
    assert [f.name for f in files] == ["demo_pkg-1.0-py3-none-any.whl"]
    assert cli("--home", home, "verify", *files).exit_code == 0
    assert cli("--home", home, "verify", pub.key.public).exit_code == 3
