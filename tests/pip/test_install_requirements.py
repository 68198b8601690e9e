"""Requirements for 'repotool install' are re-parsed: nothing but names, specifiers,
markers, extras, --hash and nested -r files reaches pip (repotool/pip/requirements.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from repotool.errors import UsageError, UserError
from repotool.pip.environment import pip_environment
from repotool.pip.requirements import requirement_lines

H = "a" * 64


def test_requirement_files_are_rendered_safely(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "more.txt").write_text("extra-pkg>=2  # trailing comment\n")
    main = tmp_path / "main.txt"
    main.write_text(
        "# a comment\n"
        "\n"
        "Demo_Pkg[cli] >=1.0,<2 ; python_version >= '3.8'\n"
        f"lib==1.0 \\\n    --hash=sha256:{H} \\\n    --hash sha256:{H.upper()}\n"
        "-r sub/more.txt\n"
        "--requirement=sub/more.txt\n"  # already read: not repeated
    )
    assert requirement_lines(["x-y ==3"], [main]) == [
        "x-y==3",
        'Demo_Pkg[cli]<2,>=1.0; python_version >= "3.8"',
        f"lib==1.0 --hash=sha256:{H} --hash=sha256:{H}",
        "extra-pkg>=2",
    ]


@pytest.mark.parametrize("line", [
    "--index-url http://example.invalid/simple/",
    "-i http://example.invalid/simple/",
    "--extra-index-url http://example.invalid/simple/",
    "--find-links /tmp",
    "-f/tmp",
    "--trusted-host example.invalid",
    "-c constraints.txt",
    "-e .",
    "--pre",
    "demo @ file:///tmp/demo-1.0-py3-none-any.whl",
    "https://example.invalid/demo-1.0-py3-none-any.whl",
    "./demo-1.0-py3-none-any.whl",
    "demo --global-option=x",
    "demo --hash=md5:abc",
    "demo --hash=sha256:not-hex",
    "-r",
])
def test_options_that_could_add_unverified_files_are_refused(tmp_path: Path,
                                                              line: str) -> None:
    req = tmp_path / "req.txt"
    req.write_text(line + "\n")
    with pytest.raises(UsageError) as e:
        requirement_lines([], [req])
    assert "req.txt:1" in e.value.message


def test_requirement_file_loops_and_missing_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("-r b.txt\nx\n")
    b.write_text("-r a.txt\ny\n")
    assert requirement_lines([], [a]) == ["y", "x"]
    with pytest.raises(UserError, match="cannot read requirements file"):
        requirement_lines([], [tmp_path / "missing.txt"])
    with pytest.raises(UsageError, match="nothing to install"):
        requirement_lines([], [])


def test_pip_environment_drops_pip_settings(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("PIP_FIND_LINKS", "/evil")
    monkeypatch.setenv("pip_index_url", "http://evil/")
    monkeypatch.setenv("NO_PROXY", "corp.example")
    env = pip_environment(tmp_path)
    assert "PIP_FIND_LINKS" not in env and "pip_index_url" not in env
    assert env["PIP_CONFIG_FILE"] == "/dev/null"
    assert env["TMPDIR"] == str(tmp_path)
    assert env["NO_PROXY"] == "127.0.0.1,localhost,corp.example"
