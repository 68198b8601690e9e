"""``repotool install`` passes -c, --only-binary, --no-deps, --upgrade and --pre to REAL pip;
constraints files are re-read like requirements files; extras and markers resolve as pip
does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from builders import build_sdist, build_wheel
from test_install import add_source, install, installed_lines, update
from venvs import make_venv, pip_freeze


def test_install_options_reach_pip(make_published, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pub = make_published(projects={"lib": ["1.0", "2.0"], "speed": ["1.0"], "never": ["1.0"]})
    now = datetime.now(UTC)
    files = [
        build_wheel(pub.dist, "app", "1.0", requires_dist=[
            "lib", 'speed; extra == "fast"', 'never; python_version < "3"'],
            provides_extra=["fast"]),
        build_wheel(pub.dist, "app", "2.0rc1", requires_dist=["lib>=2"]),
        build_sdist(pub.dist, "src-only", "1.0"),
    ]
    pub.repo.add(files, now=now)
    pub.sign()
    add_source(home, "demo", pub.root, pub.key.public)
    update(home)
    py = make_venv(tmp_path / "venv")
    cons = tmp_path / "constraints.txt"
    cons.write_text("# pins\nlib<2 ; python_version >= '3'\nnot-installed==9\n")

    # -c: lib held below 2; the extra pulls speed; the marker keeps never out
    r = install(home, py, "-c", cons, "app[fast]")
    assert r.exit_code == 0, r.output
    assert pip_freeze(py) == {"app": "1.0", "lib": "1.0", "speed": "1.0"}
    assert set(installed_lines(r.stdout)) == {"app", "lib", "speed"}

    # --pre --upgrade --no-deps: the release candidate, its lib>=2 not followed
    r = install(home, py, "--pre", "--upgrade", "--no-deps", "app")
    assert r.exit_code == 0, r.output
    assert pip_freeze(py) == {"app": "2.0rc1", "lib": "1.0", "speed": "1.0"}

    # --only-binary: pip refuses the sdist-only project (and repotool says pip failed)
    r = install(home, py, "--only-binary", ":all:", "src-only")
    assert r.exit_code == 1, r.output
    assert "src-only" not in pip_freeze(py)


def test_install_options_refused_before_pip_runs(home: Path, tmp_path: Path) -> None:
    py = tmp_path / "no-such-python"  # never reached: refused while parsing
    bad = tmp_path / "bad.txt"
    for text, needle in [("--index-url http://evil/\n", "not allowed"),
                         ("lib[x]<2\n", "names extras"),
                         ("lib @ https://evil/lib.whl\n", "direct URL")]:
        bad.write_text(text)
        r = install(home, py, "-c", bad, "app")
        assert r.exit_code == 2 and needle in r.stderr, r.output
    r = install(home, py, "--only-binary", "a b", "app")
    assert r.exit_code == 2 and "--only-binary" in r.stderr, r.output


def test_dry_run_resolved_from_metadata_lists_signed_files(make_published, home: Path,  # type: ignore[no-untyped-def]
                                                           tmp_path: Path) -> None:
    """A newer pip's --dry-run resolves from the .metadata files and downloads no wheel:
    its report then names proxy URLs nothing was served for. For a dry run (and so for
    ``lock``) those are the signed index's files; for a real install they stay
    unverified (exit 3)."""
    import json

    from repotool.client.home import Home
    from repotool.pip.index import VerifiedIndex
    from repotool.pip.install import _match_report  # the report matching, without pip
    from repotool.transport.limits import Limits

    pub = make_published()
    add_source(home, "demo", pub.root, pub.key.public)
    update(home)
    whl = "demo_pkg-1.0-py3-none-any.whl"
    base = "http://127.0.0.1:9"
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"install": [{
        "metadata": {"name": "demo-pkg", "version": "1.0"}, "requested": True,
        "download_info": {"url": f"{base}/files/demo-pkg/{whl}"}}]}))
    index = VerifiedIndex(Home(home), Limits())
    (item,) = _match_report(report, base, index, dry_run=True)
    assert item.served is not None and item.served.filename == whl
    assert item.served.source == "demo" and item.served.size == (pub.dist / whl).stat().st_size
    (item,) = _match_report(report, base, index)
    assert item.served is None
