"""Which files ``download`` fetches: requirements resolved as pip would, over verified views.

``resolve_requirements`` runs resolvelib (the resolver pip vendors) with a provider whose
only candidates are files of the signed indexes. Invariants:

1. Each project comes from exactly one source, the one ``queries.resolve`` picks (the
   dependency-confusion guard): its versions are never mixed with another source's, and
   a higher version elsewhere never wins. That rule's refusals (a fenced name, a source
   that could not be updated, a name no source has) end the resolution with the rule's
   own error and exit code, naming who required the project.
2. Compatibility is judged for a ``targets.Target``: a wheel must fit one of its tags
   (the most specific tag wins, wheels before the sdist of the same version), a file's
   Requires-Python must admit its version, and markers — ``extra`` included — are
   evaluated in its environment.
3. Yanked files (PEP 592) are candidates only for a requirement pinned with ``==`` or
   ``===``; prereleases only with ``pre``, when a specifier names one, or when nothing
   else matches (as pip, via ``SpecifierSet.filter``).
4. All requirements on a project must hold at once: ``a>=1`` and ``a<2`` intersect,
   ``a==1`` and ``a==2`` are an error naming both. Without ``deps`` the same holds for
   the named requirements, and no dependency is followed (SPEC §2).
5. Dependencies come from the verified shard entry of the chosen file; one that names a
   direct URL is refused (only signed indexes provide bytes).

Example::

    picked = resolve_requirements(views, [Requirement.parse("app[cli]>=1")],
                                  Target.current(), deps=True, pre=False)
    [(c.name, str(c.version), c.entry.filename) for c in picked]
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as PackagingRequirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from resolvelib import AbstractProvider, BaseReporter, ResolutionImpossible, ResolutionTooDeep
from resolvelib import Resolver as _Resolver

from repotool.client.targets import Target
from repotool.client.views import Views, resolve
from repotool.errors import FormatError, RepotoolError, UsageError, UserError

if TYPE_CHECKING:
    from resolvelib.structs import RequirementInformation

    from repotool.client.state import SourceView
    from repotool.format.index import FileEntry

__all__ = ["Candidate", "Requirement", "resolve_requirements"]

_rounds_max = 20_000  # resolvelib rounds before giving up (pip: 200,000)
_shown_versions_max = 6  # versions listed in a "no file matches" hint


@dataclass(frozen=True)
class Requirement:
    """A named requirement: project, extras, specifier, and who asked for it."""

    name: str  # normalized
    extras: frozenset[str]  # normalized
    specifier: SpecifierSet
    text: str  # as written, for messages
    parent: str | None = None  # "app 1.0"; None for a requirement the user named
    marker: Marker | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, text: str, parent: str | None = None) -> Requirement:
        """Raises:
            UsageError: malformed, or a direct URL (``name @ URL``)."""
        try:
            req = PackagingRequirement(text)
        except InvalidRequirement as e:
            raise UsageError(f"invalid requirement {text!r}: {str(e).splitlines()[0]}") \
                from None
        if req.url:
            raise UsageError(
                f"direct URL requirement {text!r} bypasses the signed indexes",
                "publish the file in a repository and name the project instead",
            )
        return cls.of(req, parent, text)

    @classmethod
    def of(cls, req: PackagingRequirement, parent: str | None = None,
           text: str | None = None) -> Requirement:
        extras = frozenset(canonicalize_name(e) for e in req.extras)
        return cls(canonicalize_name(req.name), extras, req.specifier,
                   (text or str(req)).strip(), parent, req.marker)

    @property
    def key(self) -> str:
        return _key(self.name, self.extras)

    @property
    def pinned(self) -> bool:
        """``==V`` (not a wildcard) or ``===V``: the case in which PEP 592 lets a yanked
        file be chosen."""
        return any(s.operator == "===" or (s.operator == "==" and not s.version.endswith("*"))
                   for s in self.specifier)

    def said(self) -> str:
        """``demo<2 required by app 1.0`` (or just ``demo==2`` when the user named it)."""
        what = self.text.split(";")[0].strip()
        return f"{what} required by {self.parent}" if self.parent else what


@dataclass(frozen=True)
class Candidate:
    """One version of a project (with extras, for their dependencies) and its best file."""

    name: str
    extras: frozenset[str]
    version: Version
    entry: FileEntry
    view: SourceView = field(compare=False, hash=False, repr=False)

    @property
    def key(self) -> str:
        return _key(self.name, self.extras)

    @property
    def label(self) -> str:
        return f"{self.key} {self.version}"


def _key(name: str, extras: frozenset[str]) -> str:
    return f"{name}[{','.join(sorted(extras))}]" if extras else name


@dataclass
class _Release:
    """One version in the resolving source: usable files best first, and why the others
    are not usable."""

    version: Version
    files: list[FileEntry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def best(self, allow_yanked: bool) -> FileEntry | None:
        return next((f for f in self.files if allow_yanked or f.yanked is False), None)

    def why_not(self, allow_yanked: bool, pre: bool) -> str:
        if not self.files:
            return ", ".join(dict.fromkeys(self.skipped)) or "no files"
        if self.best(allow_yanked) is None:
            return "yanked"
        return "pre-release (give --pre)" if self.version.is_prerelease and not pre else ""


def releases(view: SourceView, name: str, target: Target, *, sdist_ok: bool = True,
             ) -> dict[Version, _Release]:
    """The versions of ``name`` in ``view``, each with its files ranked for ``target``:
    non-yanked before yanked, then wheels by tag specificity, then the sdist."""
    proj = view.project(name)
    out: dict[Version, _Release] = {}
    ranked: dict[Version, list[tuple[tuple[bool, int, int, str], FileEntry]]] = {}
    for f in proj.files if proj is not None else []:
        try:
            v = Version(f.version)
        except InvalidVersion:
            continue
        rel = out.setdefault(v, _Release(v))
        if not target.python_ok(f.requires_python):
            rel.skipped.append(f"requires Python {f.requires_python}")
            continue
        if f.is_wheel:
            rank = target.wheel_rank(f.filename)
            if rank is None:
                rel.skipped.append("no wheel for the target")
                continue
            key = (f.yanked is not False, 0, rank, f.filename)
        elif sdist_ok:
            key = (f.yanked is not False, 1, 0, f.filename)
        else:
            rel.skipped.append("only an sdist")
            continue
        ranked.setdefault(v, []).append((key, f))
    for v, files in ranked.items():
        out[v].files = [f for _k, f in sorted(files, key=lambda kf: kf[0])]
    return out


class _Provider(AbstractProvider[Requirement, Candidate, str]):
    def __init__(self, views: Views, target: Target, *, deps: bool, pre: bool) -> None:
        self.views, self.target, self.deps, self.pre = views, target, deps, pre
        self._projects: dict[str, tuple[SourceView, dict[Version, _Release]]] = {}

    # -- the one rule for sources, and the versions there ----------------------------------

    def project(self, name: str, asked: Sequence[Requirement]
                ) -> tuple[SourceView, dict[Version, _Release]]:
        if name not in self._projects:
            try:
                view = resolve(self.views, name).source
            except RepotoolError as e:
                parents = sorted({r.parent for r in asked if r.parent})
                if not parents:
                    raise
                raise type(e)(f"{e.message} (required by {', '.join(parents)})", e.hint) \
                    from None
            self._projects[name] = (view, releases(view, name, self.target))
        return self._projects[name]

    def matches(self, name: str, reqs: Sequence[Requirement]) -> list[tuple[Version, FileEntry]]:
        """(version, file) for every version all of ``reqs`` admit, highest first."""
        _view, rels = self.project(name, reqs)
        allow_yanked = any(r.pinned for r in reqs)
        usable = {v: f for v, r in rels.items() if (f := r.best(allow_yanked)) is not None}
        spec = functools.reduce(lambda a, b: a & b, (r.specifier for r in reqs), SpecifierSet())
        chosen = list(spec.filter(usable, prereleases=True))
        if not (self.pre or spec.prereleases):
            # pip's rule, spelled out (packaging's own default moved between releases):
            # pre-releases only when no final release matches
            chosen = [v for v in chosen if not v.is_prerelease] or chosen
        return [(v, usable[v]) for v in sorted(chosen, reverse=True)]

    # -- resolvelib's provider interface ---------------------------------------------------

    def identify(self, requirement_or_candidate: Requirement | Candidate) -> str:
        return requirement_or_candidate.key

    def get_preference(
        self, identifier: str, resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[RequirementInformation[Requirement, Candidate]]],
        backtrack_causes: Sequence[RequirementInformation[Requirement, Candidate]],
    ) -> Any:
        infos = list(information[identifier])
        pinned = any(i.requirement.pinned for i in infos)
        cause = any(c.requirement.key == identifier for c in backtrack_causes)
        direct = any(i.parent is None for i in infos)
        return (not pinned, not cause, not direct, identifier)

    def find_matches(
        self, identifier: str, requirements: Mapping[str, Iterator[Requirement]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> list[Candidate]:
        reqs = list(requirements[identifier])
        if not reqs:
            return []
        name, extras = reqs[0].name, reqs[0].extras
        view, _rels = self.project(name, reqs)
        bad = {c.version for c in incompatibilities[identifier]}
        return [Candidate(name, extras, v, f, view)
                for v, f in self.matches(name, reqs) if v not in bad]

    def is_satisfied_by(self, requirement: Requirement, candidate: Candidate) -> bool:
        return requirement.specifier.contains(candidate.version, prereleases=True)

    def get_dependencies(self, candidate: Candidate) -> list[Requirement]:
        out: list[Requirement] = []
        if candidate.extras:  # the same version of the project itself, its files
            pin = f"=={candidate.version}"
            out.append(Requirement(candidate.name, frozenset(), SpecifierSet(pin),
                                   candidate.name + pin, candidate.label))
        if not self.deps:
            return out
        for text in candidate.entry.requires_dist:
            req = _dependency(text, candidate.label, candidate.view.cfg.name)
            if candidate.extras:
                # only what the extras add: the base candidate brings the rest
                if req.marker is None or self.target.marker_ok(req.marker) \
                        or not self.target.marker_ok(req.marker, candidate.extras):
                    continue
            elif req.marker is not None and not self.target.marker_ok(req.marker):
                continue
            out.append(req)
        return out

    # -- explaining a failure ------------------------------------------------------------

    def explain(self, causes: Iterable[RequirementInformation[Requirement, Candidate]]
                ) -> UserError:
        groups: dict[str, list[Requirement]] = {}
        for c in causes:
            group = groups.setdefault(c.requirement.name, [])
            if c.requirement not in group:
                group.append(c.requirement)
        parts, hints = [], []
        for name, reqs in groups.items():
            said = [r.said() for r in reqs]
            if len(reqs) > 1 and all(self.matches(name, [r]) for r in reqs):
                parts.append(f"{said[0]} conflicts with {_and(said[1:])}")
                continue
            view, rels = self.project(name, reqs)
            asked = _and([(str(r.specifier) or "any version")
                          + (f" (required by {r.parent})" if r.parent else "") for r in reqs])
            parts.append(f"no file of {name} matches {asked} for {self.target.label} "
                         f"in source {view.cfg.name!r}")
            hints.append(self._versions_hint(name, reqs, rels))
        return UserError("; ".join(parts),
                         hints[0] if hints else "relax one of the conflicting requirements")

    def _versions_hint(self, name: str, reqs: Sequence[Requirement],
                       rels: dict[Version, _Release]) -> str:
        if not rels:
            return f"the source lists no version of {name}"
        allow_yanked = any(r.pinned for r in reqs)
        shown = []
        for v in sorted(rels, reverse=True)[:_shown_versions_max]:
            why = rels[v].why_not(allow_yanked, self.pre)
            shown.append(f"{v} ({why})" if why else str(v))
        more = ", …" if len(rels) > _shown_versions_max else ""
        return f"versions of {name} there: {', '.join(shown)}{more}"


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> PackagingRequirement | None:
    try:
        return PackagingRequirement(text)
    except InvalidRequirement:
        return None


def _dependency(text: str, parent: str, source: str) -> Requirement:
    req = _parsed(text)
    if req is None:
        # malformed remote metadata is a refusal (exit 3), not the user's usage error
        raise FormatError(f"{parent} declares a malformed dependency {text!r} in the "
                          f"signed index of source {source!r}", "tell the source's publisher")
    if req.url:
        raise UserError(
            f"{parent} depends on {text!r}, a direct URL: only signed indexes provide files",
            "publish that dependency in a source and have the package name it",
        )
    return Requirement.of(req, parent, text)


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def resolve_requirements(
    views: Views, requirements: Sequence[Requirement], target: Target, *, deps: bool,
    pre: bool = False,
) -> list[Candidate]:
    """One candidate per project: the named requirements' first (in their order), then
    their dependencies by name (with ``deps``).

    Raises:
        UserError: no set of files satisfies the requirements (exit 1), with the
            conflict or the missing version explained.
        RepotoolError: as ``queries.resolve`` for a project the source rule refuses.
    """
    provider = _Provider(views, target, deps=deps, pre=pre)
    reporter: BaseReporter[Requirement, Candidate, str] = BaseReporter()
    try:
        result = _Resolver(provider, reporter).resolve(requirements, max_rounds=_rounds_max)
    except ResolutionImpossible as e:
        raise provider.explain(e.causes) from None
    except ResolutionTooDeep:
        raise UserError(f"no resolution found within {_rounds_max} rounds",
                        "pin some of the versions") from None
    chosen: dict[str, Candidate] = {}
    for cand in result.mapping.values():
        # an extras candidate pins its project's plain candidate: the same version, one file
        if cand.name not in chosen or not cand.extras:
            chosen[cand.name] = cand
    named = list(dict.fromkeys(r.name for r in requirements if r.name in chosen))
    rest = sorted(set(chosen) - set(named))
    return [chosen[n] for n in [*named, *rest]]
