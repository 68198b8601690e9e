"""``download`` resolves as pip users expect (issue 13): Requires-Python, extras, markers,
conflicts, ranges, direct URLs, target interpreters and platforms, yanked files,
prereleases — and every project from the one source the resolution rule picks.

One signed repository (``main``, priority 10) and a lower-priority one (``low``) are built
and updated once per module from real wheels and sdists; each test downloads into its own
directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from builders import build_sdist, build_wheel
from conftest import CliResult, cli, make_key
from venvs import make_venv, run_pip, venv_python

from repotool.client.targets import Target, expand_platform, target
from repotool.publish.workspace import Repository, RoleKeys

NATIVE = "py3-none-manylinux_2_17_x86_64"


def _repo(base: Path, name: str, files: list[Path], yank: list[tuple[str, str]] = ()) -> Any:
    kp = make_key(base / "keys", name)
    pk = kp.public_key()
    now = datetime.now(UTC)
    repo = Repository.init(base / "repo", name, RoleKeys([pk], 1, [pk], 1, [pk]), now=now)
    repo.add(files, now=now)
    for project, version in yank:
        repo.yank(project, version, "broken")
    repo.sign([kp.signer()], now=now)
    return base / "repo", kp


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("resolution")
    d = base / "dist"
    w = build_wheel
    main_files = [
        w(d, "oldpy", "1.0"),
        w(d, "oldpy", "2.0", tag="py2.py3-none-any", requires_python="<3"),
        w(d, "uses-oldpy", "1.0", requires_dist=["oldpy"]),
        w(d, "app", "1.0", requires_dist=[
            "lib>=1", 'extra-dep[fast]; extra == "cli"', 'win-only; sys_platform == "win32"']),
        w(d, "extra-dep", "1.0", requires_dist=['speedup; extra == "fast"']),
        w(d, "speedup", "1.0"),
        w(d, "win-only", "1.0"),
        *(w(d, "lib", v) for v in ("1.0", "1.5", "2.0", "3.0b1")),
        w(d, "pinner", "1.0", requires_dist=["lib<1.5"]),
        w(d, "yanky", "1.0"),
        w(d, "yanky", "2.0"),
        w(d, "plat", "1.0", tag=NATIVE),
        w(d, "plat", "1.0", tag="py3-none-win_amd64"),
        w(d, "plat", "1.0", tag="py3-none-manylinux_2_17_aarch64"),
        w(d, "plat", "1.0", tag="py3-none-linux_aarch64"),
        build_sdist(d, "plat", "1.0"),
        w(d, "uses-shared", "1.0", requires_dist=["shared"]),
        w(d, "wants-new-shared", "1.0", requires_dist=["shared>=2"]),
        w(d, "shared", "1.0"),
        w(d, "uses-low-only", "1.0", requires_dist=["only-low"]),
        w(d, "uses-fenced", "1.0", requires_dist=["corp-secret"]),
        w(d, "corp-secret", "66.0"),
        w(d, "uses-url", "1.0", requires_dist=["lib @ https://example.invalid/lib.whl"]),
    ]
    low_files = [w(base / "ldist", "shared", "9.0"), w(base / "ldist", "only-low", "1.0"),
                 w(base / "ldist", "lib", "99.0")]
    corp_files = [w(base / "cdist", "other-corp", "1.0")]
    main, main_key = _repo(base / "main", "main", main_files, yank=[("yanky", "2.0")])
    low, low_key = _repo(base / "low", "low", low_files)
    corp, corp_key = _repo(base / "corp", "corp", corp_files)
    home = base / "home"
    home.mkdir()
    for args in (("main", main, "--key", main_key.public, "--priority", "10"),
                 ("low", low, "--key", low_key.public),
                 ("corp", corp, "--key", corp_key.public, "--only", "corp-*")):
        r = cli("--home", home, "source", "add", *args)
        assert r.exit_code == 0, r.output
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output
    return {"home": home, "dist": d}


class Got:
    def __init__(self, r: CliResult) -> None:
        self.r = r
        self.files: dict[str, tuple[str, str, str]] = {}
        if r.exit_code == 0:
            for item in json.loads(r.stdout):
                self.files[item["project"]] = (item["version"], item["filename"], item["source"])

    def versions(self) -> dict[str, str]:
        return {p: v for p, (v, _f, _s) in self.files.items()}


@pytest.fixture
def dl(world: dict[str, Any], tmp_path: Path):  # type: ignore[no-untyped-def]
    counter = iter(range(100))

    def run(*args: str | Path) -> Got:
        dest = tmp_path / f"dl{next(counter)}"
        got = Got(cli("--home", world["home"], "download", *args, "-d", dest, "--json"))
        if got.r.exit_code == 0:  # what was said is what is there
            assert sorted(p.name for p in dest.iterdir()) == sorted(
                f for _v, f, _s in got.files.values())
        else:
            assert not dest.exists() or not any(dest.iterdir())
        return got

    return run


def test_download_skips_releases_whose_requires_python_excludes_the_target(dl) -> None:
    assert dl("oldpy").versions() == {"oldpy": "1.0"}
    assert dl("uses-oldpy", "--deps").versions() == {"uses-oldpy": "1.0", "oldpy": "1.0"}
    got = dl("oldpy==2.0")
    assert got.r.exit_code == 1, got.r.output
    assert "no file of oldpy matches ==2.0 for Python 3." in got.r.stderr
    assert "2.0 (requires Python <3)" in got.r.stderr  # the hint says why
    # cross-downloading for an old interpreter: that release is the one
    got = dl("oldpy", "--python-version", "2.7")
    assert got.files["oldpy"][:2] == ("2.0", "oldpy-2.0-py2.py3-none-any.whl")


def test_download_follows_extras_and_target_markers(dl) -> None:
    assert dl("app", "--deps").versions() == {"app": "1.0", "lib": "2.0"}
    got = dl("App[CLI]", "--deps")  # extras of extras too: extra-dep[fast] brings speedup
    assert got.versions() == {"app": "1.0", "extra-dep": "1.0", "lib": "2.0", "speedup": "1.0"}
    assert list(got.files) == ["app", "extra-dep", "lib", "speedup"]  # named ones first
    # markers are evaluated for the target platform, not for the machine running repotool
    got = dl("app", "--deps", "--platform", "win_amd64")
    assert got.versions() == {"app": "1.0", "lib": "2.0", "win-only": "1.0"}
    # without --deps only what was named, extras or not
    assert dl("app[cli]").versions() == {"app": "1.0"}
    got = dl('lib; python_version < "3"', "oldpy")
    assert got.versions() == {"oldpy": "1.0"}
    assert "ignoring 'lib; python_version < \"3\"'" in got.r.stderr


def test_download_conflicting_requirements_are_an_error_naming_both(dl) -> None:
    got = dl("lib==1.0", "lib==2.0")
    assert got.r.exit_code == 1, got.r.output
    assert "lib==1.0 conflicts with lib==2.0" in got.r.stderr
    got = dl("lib==2.0", "pinner", "--deps")
    assert got.r.exit_code == 1, got.r.output
    assert "lib==2.0 conflicts with lib<1.5 required by pinner 1.0" in got.r.stderr
    assert "Traceback" not in got.r.output and len(got.r.stderr.splitlines()) <= 2
    # the same requirements without the conflict resolve, the pin winning over "latest"
    assert dl("lib", "pinner", "--deps").versions() == {"lib": "1.0", "pinner": "1.0"}


def test_download_intersects_ranges(dl) -> None:
    assert dl("lib>=1", "lib<2").versions() == {"lib": "1.5"}
    assert dl("lib>1.0,<2", "lib!=1.5").r.exit_code == 1
    # a range from a dependency intersects with the user's
    assert dl("pinner", "lib>=1", "--deps").versions() == {"pinner": "1.0", "lib": "1.0"}


def test_download_direct_url_requirement_is_refused_as_usage_error(dl, tmp_path: Path) -> None:
    for req in ("lib @ https://example.invalid/lib-1.0-py3-none-any.whl",
                f"lib @ file://{tmp_path}/lib-1.0-py3-none-any.whl"):
        got = dl(req)
        assert got.r.exit_code == 2, got.r.output
        assert "direct URL" in got.r.stderr and "signed indexes" in got.r.stderr
    # even with no source at all: refused before anything is read
    r = cli("--home", tmp_path / "empty", "download", "x @ https://e.invalid/x.whl")
    assert r.exit_code == 2, r.output
    # a dependency naming a URL is not followed either (the publisher's data: exit 1)
    got = dl("uses-url", "--deps")
    assert got.r.exit_code == 1, got.r.output
    assert "uses-url 1.0 depends on" in got.r.stderr and "direct URL" in got.r.stderr
    assert dl("uses-url").versions() == {"uses-url": "1.0"}


def test_download_platform_selects_that_platforms_wheel(dl) -> None:
    assert dl("plat").files["plat"][1] == f"plat-1.0-{NATIVE}.whl"
    assert dl("plat", "--platform", "win_amd64").files["plat"][1] == \
        "plat-1.0-py3-none-win_amd64.whl"
    # manylinux2014 is glibc 2.17: the manylinux_2_17 wheel fits, the native one does not
    got = dl("plat", "--platform", "manylinux2014_aarch64", "--python-version", "3.12")
    assert got.files["plat"][1] == "plat-1.0-py3-none-manylinux_2_17_aarch64.whl"
    # no wheel for that platform: the sdist
    assert dl("plat", "--platform", "macosx_11_0_arm64").files["plat"][1] == "plat-1.0.tar.gz"
    for bad in (["--platform", "win amd64!"], ["--python-version", "three"],
                ["--python-version", "3.x"]):
        got = dl("plat", *bad)
        assert got.r.exit_code == 2, got.r.output


def test_target_tags_for_platforms_and_versions() -> None:
    plats = expand_platform("manylinux2014_x86_64")
    assert plats[:2] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert "manylinux2010_x86_64" in plats and plats[-2:] == ["manylinux_2_5_x86_64",
                                                             "manylinux1_x86_64"]
    assert expand_platform("musllinux_1_2_aarch64") == [
        "musllinux_1_2_aarch64", "musllinux_1_1_aarch64", "musllinux_1_0_aarch64"]
    t = target(platforms=["win_amd64"], python_version="3.8")
    assert str(t.tags[0]).startswith("cp38-") and str(t.python_version) == "3.8.0"
    assert t.env["sys_platform"] == "win32" and t.env["python_version"] == "3.8"
    assert t.wheel_rank("x-1.0-cp38-cp38-win_amd64.whl") is not None
    assert t.wheel_rank(f"x-1.0-{NATIVE}.whl") is None
    assert not t.python_ok(">=3.9") and t.python_ok(">=3.8") and not t.python_ok("garbage")


def test_download_python_asks_that_interpreter(dl, world, tmp_path: Path) -> None:
    """A real venv whose interpreter reports another platform (linux_aarch64, through
    sysconfig's documented _PYTHON_HOST_PLATFORM, set by a .pth file in the venv): repotool
    chooses what that venv's own pip chooses, not what fits repotool's interpreter."""
    python = make_venv(tmp_path / "venv")
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                           "'purelib'))"], capture_output=True, text=True, check=True)
    Path(site.stdout.strip(), "cross.pth").write_text(
        "import os; os.environ['_PYTHON_HOST_PLATFORM'] = 'linux-aarch64'\n")
    got = dl("plat", "--python", python)
    assert got.r.exit_code == 0, got.r.output
    assert "aarch64" in got.files["plat"][1]
    pip = run_pip(python, "download", "--no-index", "--find-links", str(world["dist"]),
                  "--no-deps", "plat", "-d", str(tmp_path / "pip"))
    assert [p.name for p in (tmp_path / "pip").iterdir()] == [got.files["plat"][1]], pip.stdout
    # an interpreter without packaging or pip: tags derived from its sysconfig
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "bare"],
                   check=True)
    bare = Target.of_interpreter(venv_python(tmp_path / "bare"))
    assert bare.tags[:50] == Target.current().tags[:50]
    assert dl("plat", "--python", venv_python(tmp_path / "bare")).files["plat"][1] == \
        f"plat-1.0-{NATIVE}.whl"
    got = dl("plat", "--python", tmp_path / "no-such-python")
    assert got.r.exit_code == 1 and "cannot run" in got.r.stderr, got.r.output
    got = dl("plat", "--python", world["dist"] / "plat-1.0.tar.gz")
    assert got.r.exit_code == 1, got.r.output


def test_download_yanked_skipped_unless_pinned(dl) -> None:
    assert dl("yanky").versions() == {"yanky": "1.0"}
    for spec in ("yanky>=2", "yanky==2.*"):  # a wildcard is not a pin (PEP 592)
        got = dl(spec)
        assert got.r.exit_code == 1, got.r.output
        assert "2.0 (yanked)" in got.r.stderr
    assert dl("yanky==2.0").versions() == {"yanky": "2.0"}
    assert dl("yanky===2.0").versions() == {"yanky": "2.0"}


def test_download_prereleases_as_pip(dl) -> None:
    assert dl("lib").versions() == {"lib": "2.0"}
    assert dl("lib", "--pre").versions() == {"lib": "3.0b1"}
    assert dl("lib>2").versions() == {"lib": "3.0b1"}  # only a prerelease matches
    assert dl("lib>=3.0b1").versions() == {"lib": "3.0b1"}  # the specifier names one
    assert dl("lib<2.5", "--pre").versions() == {"lib": "2.0"}


def test_dependency_confusion_transitive_dep_stays_in_its_source(dl) -> None:
    """'low' has shared 9.0 and lib 99.0; 'main' (higher priority) has shared 1.0 and lib
    up to 2.0: dependencies come from main, a higher version elsewhere never wins."""
    got = dl("uses-shared", "app", "--deps")
    assert got.files["shared"] == ("1.0", "shared-1.0-py3-none-any.whl", "main")
    assert got.files["lib"][0::2] == ("2.0", "main")
    got = dl("wants-new-shared", "--deps")
    assert got.r.exit_code == 1, got.r.output
    assert "no file of shared matches >=2 (required by wants-new-shared 1.0)" in got.r.stderr
    assert "in source 'main'" in got.r.stderr
    # a name only the lower-priority source has comes from there
    assert dl("uses-low-only", "--deps").files["only-low"][2] == "low"


def test_dependency_confusion_transitive_dep_fenced_to_source_without_it(dl) -> None:
    """corp-* is fenced (--only) to 'corp', which lacks corp-secret: main's corp-secret
    66.0 must not be taken for a dependency either — refused, exit 3, naming who asked."""
    got = dl("uses-fenced", "--deps")
    assert got.r.exit_code == 3, got.r.output
    assert "corp-secret is pinned to source(s) corp" in got.r.stderr
    assert "required by uses-fenced 1.0" in got.r.stderr


def test_choose_file_keeps_its_contract_for_a_target(world) -> None:
    from packaging.requirements import Requirement

    from repotool.client.home import Home
    from repotool.client.queries import choose_file
    from repotool.client.views import Views, resolve

    view = resolve(Views(Home(world["home"])), "plat").source
    assert choose_file(view, Requirement("plat")).filename == f"plat-1.0-{NATIVE}.whl"
    win = target(platforms=["win_amd64"])
    assert choose_file(view, Requirement("plat"), target=win).filename.endswith("win_amd64.whl")
    mac = target(platforms=["macosx_11_0_arm64"])
    assert choose_file(view, Requirement("plat"), target=mac).filename == "plat-1.0.tar.gz"
    with pytest.raises(Exception, match="no file of plat"):
        choose_file(view, Requirement("plat"), target=mac, sdist_ok=False)
    yanky = resolve(Views(Home(world["home"])), "yanky").source
    assert choose_file(yanky, Requirement("yanky")).version == "1.0"
    assert choose_file(yanky, Requirement("yanky==2.0")).version == "2.0"
