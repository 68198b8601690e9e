"""``repotool install``: pip, fed only through the verified proxy.

Invariant: pip never receives a byte that was not verified. pip runs against a
``proxy.RunningProxy`` on 127.0.0.1 (a free port) as its only index, and nothing else
can add a location:

* ``--isolated`` plus ``PIP_CONFIG_FILE=/dev/null`` and no ``PIP_*`` variables in its
  environment: no pip.conf (global, user or site) and no environment variable adds an
  index, find-links or constraints — also for the pip that installs sdist build
  dependencies, which inherits the environment but not ``--isolated``;
* requirements are re-parsed here (``requirement_lines``): options in requirement
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

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from repotool.buildreqs import Target, check_build_requirements, probe_code, target_from_probe
from repotool.errors import UsageError, UserError
from repotool.home import Home
from repotool.proxy import Problem, RunningProxy, Served, VerifiedIndex
from repotool.queries import parse_requirement
from repotool.transport import Limits

__all__ = [
    "InstallOutcome",
    "Installed",
    "PipOptions",
    "install",
    "pip_environment",
    "requirement_lines",
    "run_pip",
]

REPORT_MIN_PIP = Version("22.2")  # --report and --dry-run
_HASH = re.compile(r"^(sha256|sha384|sha512):[0-9a-fA-F]+$")
_COMMENT = re.compile(r"(^|\s+)#.*$")
_requirement_files_max = 100  # nested -r files followed, against include loops


# ---- requirements ---------------------------------------------------------------------------


def requirement_lines(args: list[str], files: list[Path]) -> list[str]:
    """Requirements from arguments and requirement files, re-rendered safely.

    Raises:
        UsageError: a malformed requirement, a direct URL or path, or an option other
            than ``-r FILE`` / ``--hash`` in a requirements file.
        UserError: a requirements file cannot be read.
    """
    out = [_render(a, None, []) for a in args]
    seen: set[Path] = set()
    for f in files:
        out.extend(_file_lines(f, seen))
    if not out:
        raise UsageError("nothing to install", "name requirements or give -r FILE")
    return out


def _render(text: str, where: str | None, hashes: list[str]) -> str:
    prefix = f"{where}: " if where else ""
    try:
        req = parse_requirement(text)
    except UsageError as e:
        raise UsageError(prefix + e.message, e.hint) from None
    if req.url:
        raise UsageError(
            f"{prefix}direct URL requirement {text!r} bypasses the signed indexes",
            "publish the file in a repository and name the project instead",
        )
    return " ".join([str(req), *(f"--hash={h}" for h in hashes)])


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = _COMMENT.sub("", raw)
        if not buf:
            start = n
        if line.endswith("\\"):
            buf.append(line[:-1])
            continue
        buf.append(line)
        joined = " ".join(x.strip() for x in buf).strip()
        buf = []
        if joined:
            yield start, joined
    if buf and (joined := " ".join(x.strip() for x in buf).strip()):
        yield start, joined


def _file_lines(path: Path, seen: set[Path]) -> list[str]:
    if len(seen) >= _requirement_files_max:
        raise UsageError(f"more than {_requirement_files_max} nested requirements files")
    key = path.resolve()
    if key in seen:
        return []
    seen.add(key)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise UserError(f"cannot read requirements file {str(path)!r}: {reason}") from None
    out: list[str] = []
    for n, line in _logical_lines(text):
        where = f"{path}:{n}"
        tokens = line.split()
        if tokens[0] in ("-r", "--requirement") or tokens[0].startswith(
                ("-r", "--requirement=")):
            target = _option_value(tokens, where)
            nested = Path(target)
            out.extend(_file_lines(nested if nested.is_absolute() else path.parent / nested,
                                   seen))
            continue
        if tokens[0].startswith("-"):
            raise UsageError(
                f"{where}: option {tokens[0]!r} is not allowed in requirements for "
                "'repotool install'",
                "repotool chooses the index (only verified files); keep NAME SPEC, "
                "markers, --hash and -r FILE",
            )
        # As pip does: the requirement runs up to the first token that is an option.
        first_opt = next((i for i, t in enumerate(tokens) if t.startswith("-")), len(tokens))
        spec, opts = " ".join(tokens[:first_opt]), tokens[first_opt:]
        hashes: list[str] = []
        i = 0
        while i < len(opts):
            opt = opts[i]
            if opt == "--hash" and i + 1 < len(opts):
                value, i = opts[i + 1], i + 2
            elif opt.startswith("--hash="):
                value, i = opt.split("=", 1)[1], i + 1
            else:
                raise UsageError(f"{where}: option {opt!r} is not allowed here",
                                 "only --hash=ALGORITHM:DIGEST may follow a requirement")
            if not _HASH.match(value):
                raise UsageError(f"{where}: malformed hash {value!r}")
            hashes.append(value.lower())
        out.append(_render(spec, where, hashes))
    return out


def _option_value(tokens: list[str], where: str) -> str:
    first = tokens[0]
    if first in ("-r", "--requirement"):
        if len(tokens) != 2:
            raise UsageError(f"{where}: {first} takes one file name")
        return tokens[1]
    value = first.split("=", 1)[1] if first.startswith("--") else first[2:]
    if not value or len(tokens) != 1:
        raise UsageError(f"{where}: {first!r} takes one file name")
    return value


@dataclass(frozen=True)
class PipOptions:
    """The pip options ``install`` passes through (SPEC §6.6). Constraints files are
    re-parsed like requirements files (names, specifiers, markers, hashes; no extras,
    as pip's resolver requires) and handed to pip sanitized."""

    constraint_files: tuple[Path, ...] = ()
    only_binary: tuple[str, ...] = ()  # ":all:", ":none:" or comma-separated names
    no_deps: bool = False
    upgrade: bool = False
    pre: bool = False

    def constraint_lines(self) -> list[str]:
        """Raises: UsageError, UserError: as ``requirement_lines``; extras refused."""
        seen: set[Path] = set()
        out: list[str] = []
        for f in self.constraint_files:
            for line in _file_lines(f, seen):
                if parse_requirement(line.split(" --hash=")[0]).extras:
                    raise UsageError(f"{f}: constraint {line!r} names extras",
                                     "constraints take a name, a specifier and markers")
                out.append(line)
        return out

    def args(self, constraints: Path | None) -> list[str]:
        """pip's options; ``constraints`` is the sanitized constraints file."""
        out = ["-c", str(constraints)] if constraints is not None else []
        for value in self.only_binary:
            names = value.split(",")
            if value not in (":all:", ":none:") and not all(
                    re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", n) for n in names):
                raise UsageError(f"--only-binary {value!r}: give :all:, :none: or project "
                                 "names separated by commas")
            out += ["--only-binary", value]
        return out + [flag for on, flag in ((self.no_deps, "--no-deps"),
                                            (self.upgrade, "--upgrade"),
                                            (self.pre, "--pre")) if on]


# ---- running pip ------------------------------------------------------------------------------


def pip_environment(workdir: Path, index_url: str | None = None) -> dict[str, str]:
    """The environment for pip: ours without ``PIP_*`` and ``UV_*``, no config file,
    temporary files in repotool's home.

    With ``index_url`` (the proxy), every pip or uv that a build backend starts on its
    own (setuptools' ``fetch_build_eggs``, a backend running ``pip download``) gets the
    proxy as its only index, never the public default: ``PIP_INDEX_URL`` and
    ``UV_DEFAULT_INDEX``/``UV_INDEX_URL`` are set, no extra index, find-links or
    ``PIP_NO_INDEX`` is, and uv reads no configuration file.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("PIP_", "UV_"))}
    no_proxy = ",".join(x for x in ("127.0.0.1", "localhost", env.get("NO_PROXY")) if x)
    env.update({
        "PIP_CONFIG_FILE": os.devnull,  # no pip.conf at all (--isolated keeps global ones)
        "PIP_NO_CACHE_DIR": "1",  # for the build-dependency pip (not --isolated)
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "UV_NO_CONFIG": "1",  # no uv.toml or [tool.uv] adds an index
        "UV_NO_CACHE": "1",  # nothing written outside the home
        "TMPDIR": str(workdir),
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    })
    if index_url is not None:
        env.update({"PIP_INDEX_URL": index_url, "UV_DEFAULT_INDEX": index_url,
                    "UV_INDEX_URL": index_url})
    return env


@dataclass(frozen=True)
class _Probe:
    pip: Version
    prefix: str
    target: Target


def probe(python: Path, env: dict[str, str], cwd: Path) -> _Probe:
    """pip's version, ``sys.prefix`` and the install target of ``python``.

    Raises:
        UserError: ``python`` cannot be run or has no pip.
    """
    try:
        proc = subprocess.run([str(python), "-c", probe_code()], env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UserError(f"cannot run {str(python)!r}: {e}",
                        "give --python a Python interpreter") from None
    try:
        doc = json.loads(proc.stdout) if proc.returncode == 0 else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise UserError(f"cannot run {str(python)!r} as a Python interpreter",
                        "give --python a Python interpreter")
    if "pip" not in doc:
        raise UserError(f"{str(python)!r} has no usable pip",
                        f"run '{python} -m ensurepip --upgrade'")
    try:
        version = Version(str(doc["pip"]))
    except InvalidVersion:
        raise UserError(f"{str(python)!r} reports pip version {doc['pip']!r}") from None
    return _Probe(version, str(doc.get("prefix", "")), target_from_probe(doc))


def own_dependencies() -> set[str]:
    """repotool and every distribution it needs, transitively (canonical names), from
    the installed metadata: what an install into its own environment must not replace."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.markers import default_environment
    from packaging.requirements import InvalidRequirement, Requirement

    env = {k: str(v) for k, v in default_environment().items()}
    seen: set[tuple[str, str]] = set()  # (distribution, extra or "")
    queue: list[tuple[str, str]] = [("repotool", "")]
    while queue:
        name, extra = queue.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        for text in reqs:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is None or req.marker.evaluate({**env, "extra": extra}):
                dep = canonicalize_name(req.name)
                queue += [(dep, ""), *((dep, canonicalize_name(e)) for e in req.extras)]
    return {name for name, _ in seen}


def _same_prefix(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return a == b


def run_pip(python: Path, args: list[str], *, env: dict[str, str], cwd: Path,
            echo: Callable[[str], object]) -> int:
    """Run ``python -m pip ARGS``, passing each line of its output to ``echo``."""
    proc = subprocess.Popen([str(python), "-m", "pip", *args], env=env, cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            echo(raw.decode("utf-8", errors="replace"))
        return proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: do not leave pip running
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def interpreter(python: Path | None) -> Path:
    """``--python`` as an absolute path (pip runs elsewhere); a bare name is looked up
    on PATH. Symlinks are kept: a venv's python is a link to the base interpreter."""
    if python is None:
        return Path(sys.executable)
    text = str(python)
    if os.sep not in text and (found := shutil.which(text)):
        return Path(found)
    return Path(os.path.abspath(text))


@contextlib.contextmanager
def workspace(home: Home) -> Iterator[Path]:
    """A private temporary directory inside repotool's home, removed afterwards."""
    base = home.root / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="pip-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---- install ----------------------------------------------------------------------------------


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
        own = not dry_run and _same_prefix(found.prefix, sys.prefix)
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
