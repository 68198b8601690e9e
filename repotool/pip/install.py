"""``repotool install``: pip, fed only through the verified proxy.

Invariant: pip never receives a byte that was not verified. pip runs against a
``proxy.RunningProxy`` on 127.0.0.1 (a free port) as its only index, and nothing else
can add a location:

* ``--isolated`` plus ``PIP_CONFIG_FILE=/dev/null`` and no ``PIP_*`` variables in its
  environment: no pip.conf (global, user or site) and no environment variable adds an
  index, find-links or constraints — also for the pip that installs sdist build
  dependencies, which inherits the environment but not ``--isolated``;
* requirements are re-parsed (``requirements.requirement_lines``): options in requirement
  files (``--index-url``, ``--find-links``, ``-e``, …) and direct URLs are refused,
  only ``NAME[extras] SPEC ; marker`` with ``--hash`` options pass, written to a
  sanitized file inside repotool's home;
* pip runs in an empty working directory with ``--no-cache-dir`` and ``TMPDIR``
  inside repotool's home, so a local file cannot stand in for a requirement and
  nothing is written outside the home and the target environment.

pip does the resolving (markers, extras, wheel tags, Requires-Python, yanked files,
build dependencies). Afterwards pip's ``--report`` (pip ≥ 22.2) is matched against
what the proxy served: every installed file is listed with its source and sha256, and
anything pip installed that the proxy did not serve is a verification failure.

Exit status (``InstallOutcome.exit_code``): 3 if any file failed verification (even if
pip then failed), else pip's failure as 1 (or 3 when the cause was a refusal such as a
project fenced away by ``--only``), else 0.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from repotool.client.home import Home
from repotool.client.queries import parse_requirement
from repotool.errors import UserError
from repotool.pip.buildreqs import check_build_requirements
from repotool.pip.environment import (
    REPORT_MIN_PIP,
    interpreter,
    own_dependencies,
    pip_environment,
    probe,
    run_pip,
    same_prefix,
    workspace,
)
from repotool.pip.index import Problem, Served, VerifiedIndex
from repotool.pip.proxy import RunningProxy
from repotool.pip.requirements import PipOptions, requirement_lines
from repotool.transport.limits import Limits

__all__ = ["InstallOutcome", "Installed", "install"]


@dataclass(frozen=True)
class Installed:
    """One entry of pip's report, matched to what the proxy served."""

    project: str
    version: str
    requested: bool
    served: Served | None  # None: pip got it from somewhere other than the proxy
    url: str

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "version": self.version, "requested": self.requested,
                "url": self.url, "served": self.served.to_dict() if self.served else None}


@dataclass
class InstallOutcome:
    pip_exit: int
    python: str
    dry_run: bool
    served: list[Served] = field(default_factory=list)
    installed: list[Installed] | None = None  # None: pip too old for --report
    problems: list[Problem] = field(default_factory=list)
    resolutions: list[tuple[str, str | None, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # mirrors that failed, next one used
    # refusals beyond the proxy's bounded list: {(kind, exit code): count}
    problems_dropped: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def unverified(self) -> list[Installed]:
        return [i for i in self.installed or [] if i.served is None]

    @property
    def exit_code(self) -> int:
        codes = [(p.kind, p.exit_code) for p in self.problems] + list(self.problems_dropped)
        if self.unverified or ("file", 3) in codes:
            return 3
        if self.pip_exit != 0:
            return max([1, *(min(code, 3) for _, code in codes)])
        return 0


def install(
    home: Home,
    requirements: list[str],
    requirement_files: list[Path],
    *,
    python: Path | None,
    limits: Limits,
    dry_run: bool = False,
    extra_args: list[str] | None = None,
    echo: Callable[[str], object] = sys.stderr.write,
    options: PipOptions | None = None,
) -> InstallOutcome:
    """Install ``requirements`` with pip into ``python``'s environment through the proxy.

    ``extra_args`` are added to pip's command line by repotool itself (for ``lock``),
    never taken from the user; ``options`` are the user's pip options (``PipOptions``).

    Raises:
        UsageError: a requirement repotool refuses (see ``requirement_lines``).
        UserError: no sources, or ``python`` has no usable pip.
    """
    lines = requirement_lines(requirements, requirement_files)
    options = options or PipOptions()
    constraints = options.constraint_lines()
    options.args(None)  # validated before anything runs
    if not home.sources():
        raise UserError("no sources", "add one with 'repotool source add NAME URL --key PUB'")
    py = interpreter(python)
    extra = list(extra_args or [])
    with workspace(home) as work:
        cfile = work / "constraints.txt" if constraints else None
        if cfile is not None:
            cfile.write_text("".join(line + "\n" for line in constraints), encoding="utf-8")
        extra += options.args(cfile)
        cwd = work / "cwd"
        cwd.mkdir()
        found = probe(py, pip_environment(work), cwd)
        version = found.pip
        reporting = version >= REPORT_MIN_PIP
        if dry_run and not reporting:
            raise UserError(f"pip {version} in {str(py)!r} cannot do a dry run",
                            f"upgrade it to pip {REPORT_MIN_PIP} or later")
        own = not dry_run and same_prefix(found.prefix, sys.prefix)
        if own and python is None:
            echo(f"warning: installing into repotool's own environment ({sys.prefix}); "
                 "give --python PATH (e.g. a venv's python) to install elsewhere\n")
        reqfile = work / "requirements.txt"
        reqfile.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        report = work / "report.json"
        index = VerifiedIndex(home, limits)
        outcome = InstallOutcome(0, str(py), dry_run)
        if dry_run:
            for line in lines:
                name = canonicalize_name(parse_requirement(line.split(" --hash=")[0]).name)
                outcome.resolutions.append((name, *index.explain(name)))
        # Before pip runs: every sdist on the way must find its build requirements.
        if ":all:" not in options.only_binary:  # else pip builds no sdist at all
            check_build_requirements(home, index.state(), lines, limits, found.target,
                                     ignore_installed="--ignore-installed" in extra,
                                     report=index._warn)
        # Rendered requirements are safe as arguments (none starts with "-", and the
        # working directory is empty); a file is needed only to carry --hash options.
        hashed = any(" --hash=" in line for line in lines)
        targets = ["-r", str(reqfile)] if hashed else ["--", *lines]
        with RunningProxy(index) as proxy:
            # pip and uv started by a build backend get the proxy as their only index
            env = pip_environment(work, proxy.index_url)
            args = ["install", "--isolated", "--disable-pip-version-check", "--no-input",
                    "--no-cache-dir", "--progress-bar", "off",
                    "--index-url", proxy.index_url]
            if own:
                outcome.pip_exit = _check_own_environment(py, args, extra, targets, work,
                                                          env, cwd, echo, reporting)
            if outcome.pip_exit == 0:
                if reporting:
                    args += ["--report", str(report)]
                if dry_run:
                    args.append("--dry-run")
                args += [*extra, *targets]
                outcome.pip_exit = run_pip(py, args, env=env, cwd=cwd, echo=echo)
            base = proxy.url
        outcome.served = index.served()
        outcome.problems = index.problems()
        outcome.warnings = index.warnings()
        outcome.problems_dropped = index.problems_dropped()
        if reporting and report.is_file():
            outcome.installed = _match_report(report, base, index, dry_run=dry_run)
        elif reporting and outcome.pip_exit == 0:
            outcome.installed = []
    return outcome


def _check_own_environment(py: Path, args: list[str], extra: list[str], targets: list[str],
                           work: Path, env: dict[str, str], cwd: Path,
                           echo: Callable[[str], object], reporting: bool) -> int:
    """Refuse an install into repotool's own environment that would replace repotool or
    a distribution it depends on (cryptography, tuf, requests, …): the verifier must
    not be swapped by what it installs. The plan is pip's own, from a dry run through
    the same proxy; its output is shown only if it fails. Returns pip's exit status.

    Raises:
        UserError: the plan replaces one of repotool's own distributions, or pip is too
            old to tell the plan.
    """
    hint = "give --python PATH to install into another environment (e.g. a venv)"
    if not reporting:
        raise UserError(f"pip in repotool's own environment is older than {REPORT_MIN_PIP}: "
                        "cannot check that the install leaves repotool's dependencies alone",
                        hint)
    plan = work / "plan.json"
    output: list[str] = []
    code = run_pip(py, [*args, "--dry-run", "--report", str(plan), *extra, *targets],
                   env=env, cwd=cwd, echo=output.append)
    if code != 0:
        for line in output:
            echo(line)
        return code
    try:
        items = json.loads(plan.read_bytes())["install"]
        planned = {canonicalize_name(str(i["metadata"]["name"])): str(i["metadata"]["version"])
                   for i in items}
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError("pip wrote no readable installation report") from None
    clash = sorted(set(planned) & own_dependencies())
    if clash:
        names = ", ".join(f"{n} {planned[n]}" for n in clash)
        raise UserError(f"refusing to install {names} into repotool's own environment: it "
                        "would replace what repotool itself runs on", hint)
    return 0


def _match_report(report: Path, base: str, index: VerifiedIndex, *,
                  dry_run: bool = False) -> list[Installed]:
    try:
        doc = json.loads(report.read_bytes())
        items = doc["install"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError("pip wrote no readable installation report") from None
    origin = urllib.parse.urlsplit(base)
    out = []
    for item in items:
        meta = item.get("metadata", {})
        url = str(item.get("download_info", {}).get("url", ""))
        split = urllib.parse.urlsplit(url)
        served = None
        parts = split.path.split("/")
        if (split.scheme, split.netloc) == (origin.scheme, origin.netloc) and len(parts) == 4 \
                and parts[:2] == ["", "files"]:
            served = index.served_file(parts[2], urllib.parse.unquote(parts[3]))
            if served is None and dry_run:  # resolved from verified metadata (PEP 658),
                served = index.listed_file(parts[2], urllib.parse.unquote(parts[3]))
        out.append(Installed(canonicalize_name(str(meta.get("name", "?"))),
                             str(meta.get("version", "?")), bool(item.get("requested")),
                             served, url))
    return out
