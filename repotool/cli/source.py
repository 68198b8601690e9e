"""``repotool source`` (add, list, show, remove), ``update`` and ``clean``: the sources
and their verified state, through repotool/client/sources.py and update.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from repotool.cli.common import (
    OUTPUT,
    duration,
    err,
    get_home,
    get_limits,
    handled,
    now,
    out,
    pubkeys,
    say,
    warn,
)
from repotool.cli.render import print_json, print_update
from repotool.errors import UsageError

__all__ = ["register", "source_app"]

source_app = typer.Typer(help="Add, list, show and remove sources (like apt sources).",
                         no_args_is_help=True)


@source_app.command("add")
@handled
def source_add(
    name: Annotated[str | None, typer.Argument(
        help="A name for the source.", show_default=False)] = None,
    url: Annotated[str | None, typer.Argument(
        help="Path, file://, http:// or https:// location.", show_default=False)] = None,
    key: Annotated[list[Path] | None, typer.Option(
        "--key", help="The repository's root public key (repeatable).")] = None,
    fingerprint: Annotated[list[str] | None, typer.Option(
        "--fingerprint", help="A root key fingerprint (64 hex digits).")] = None,
    root: Annotated[Path | None, typer.Option("--root", help="A trusted root.json.")] = None,
    mirror: Annotated[list[str] | None, typer.Option("--mirror")] = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="This source provides only these projects, and they come only "
        "from it (glob, repeatable).")] = None,
    priority: Annotated[int, typer.Option("--priority", help="Higher wins.")] = 0,
    ca_cert: Annotated[Path | None, typer.Option("--ca-cert")] = None,
    clock_skew: Annotated[str | None, typer.Option(
        "--clock-skew", help="Tolerance when judging expiry, e.g. 5m (at most 1h).")] = None,
    from_file: Annotated[Path | None, typer.Option(
        "--from", metavar="FILE.sources", help="Add the source a deb822 .sources file "
        "describes (Name, URIs, Signed-By, Only, Priority) instead of NAME URL and "
        "options.", show_default=False)] = None,
) -> None:
    """Add a repository and trust its root key(s) for it alone.

    The source is also written to sources.d/NAME.sources (as root:
    /etc/repotool/sources.d), where configuration management may drop such files too:
    'repotool update' sets them up.
    """
    from repotool import keys as keymod
    from repotool.client.dropins import add_checked, add_from_file
    from repotool.client.home import SourceConfig, normalize_pattern
    from repotool.client.sources import add_source
    from repotool.transport.urls import normalize_url

    if from_file is not None:
        if name or url or key or fingerprint or root or mirror or only or priority or ca_cert \
                or clock_skew:
            raise UsageError("--from FILE takes the whole source from the file; give no "
                             "NAME, URL or other option with it")
        _added(*add_from_file(get_home(), from_file, limits=get_limits(),
                              report=lambda m: err(f"warning: {m}")))
        return
    if name is None or url is None:
        raise UsageError("give NAME and URL (or --from FILE.sources)")
    given = sum(bool(x) for x in (key, fingerprint, root))
    if given != 1:
        raise UsageError("give exactly one of --key, --fingerprint or --root")
    from repotool.client.home import clock_skew_max

    skew = duration(clock_skew, "--clock-skew", clock_skew_max,
                     "a skew tolerates a client clock that is off, not expired metadata; "
                     "fix the clock, or ask the publisher to re-sign") or 0
    ids = [k.keyid for k in pubkeys(key)]
    for f in fingerprint or []:
        if not keymod.is_fingerprint(f.lower()):
            raise UsageError(f"invalid fingerprint {f!r}: expected 64 hex digits")
        ids.append(f.lower())
    if len(set(ids)) != len(ids):
        raise UsageError("the same key is given twice")
    home = get_home()
    home.source_dir(name)  # validates the name
    cfg = SourceConfig(
        name=name,
        url=normalize_url(url),
        mirrors=[normalize_url(m) for m in mirror or []],
        only=[normalize_pattern(p) for p in only or []],
        priority=priority,
        clock_skew=skew,
    )
    how = (f"added from root file {root}" if root is not None else
           f"added by {'key' if key else 'fingerprint'} " + ", ".join(ids))
    trusted = add_checked(home, cfg, ids, lambda: add_source(
        home, cfg, key_ids=ids, root_file=root, ca_cert=ca_cert, limits=get_limits(),
        report=lambda m: err(f"warning: {m}"), how=how))
    _added(cfg, trusted)


def _added(cfg: Any, trusted: Any) -> None:
    say(f"added source {cfg.name!r}: repository {cfg.repo_name!r} at {cfg.url}")
    say(f"trusted root keys (threshold {trusted.roles['root'].threshold}):")
    for k in sorted(trusted.roles["root"].keyids):
        say(f"  {k}")
    err("run 'repotool update' to fetch its index")


@source_app.command("list")
@handled
def source_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List sources in resolution order."""
    from repotool.client.dropins import pending
    from repotool.client.state import describe_source

    home = get_home()
    docs = [describe_source(home, c) for c in home.sources()]
    for path in pending(home):
        warn(f"{path} is not set up yet; 'repotool update' sets it up")
    if as_json:
        print_json(docs)
        return
    for d in docs:
        fence = f" only={','.join(d['only'])}" if d["only"] else ""
        out(f"{d['name']}\t{d['url']}\tpriority={d['priority']}{fence}\t"
             f"{d['projects']} project(s)")


@source_app.command("show")
@handled
def source_show(
    name: Annotated[str, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    history: Annotated[bool, typer.Option(
        "--history", help="Every root version the keyring accepted, when and how.")] = False,
) -> None:
    """Show a source's settings, trusted keys and state."""
    from repotool.client.state import describe_source

    home = get_home()
    if history:
        from repotool.cli.trust import show_history

        show_history(home, name, as_json)
        return
    d = describe_source(home, home.source(name))
    if as_json:
        print_json(d)
        return
    for k, v in d.items():
        if isinstance(v, list):
            v = ", ".join(map(str, v)) or "-"
        out(f"{k}: {v}")


@source_app.command("remove")
@handled
def source_remove(name: Annotated[str, typer.Argument()]) -> None:
    """Remove a source with its keyring, caches and state."""
    from repotool.client.dropins import forget
    from repotool.client.sources import remove_source

    home = get_home()
    # the file goes first: a removal killed half-way must not bring the source back at
    # the next update (sources.d files are set up again when their source is missing)
    had_file = forget(home, name)
    if home.exists(name) or not had_file:  # else: a file not yet set up, now gone
        remove_source(home, name)
    err(f"removed source {name!r}")


@handled
def update(
    names: Annotated[list[str] | None, typer.Argument(help="Sources (default: all).")] = None,
    allow_name_change: Annotated[bool, typer.Option(
        "--allow-name-change", help="Accept a repository that changed its name.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Fetch and verify the signed index of every source (or those named)."""
    from repotool.client.dropins import update_with_dropins

    results = update_with_dropins(get_home(), names, now=now(), limits=get_limits(),
                                  allow_name_change=allow_name_change,
                                  report=lambda m: err(f"warning: {m}"))
    code = print_update(results, as_json, quiet=OUTPUT.quiet)
    if code:
        raise typer.Exit(code)


@handled
def clean(names: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Empty the metadata and file caches (keyrings stay)."""
    from repotool.client.sources import clean as do_clean

    home = get_home()
    for n in names or [c.name for c in home.sources()]:
        do_clean(home, n)
        err(f"cleaned {n}")


def register(app: typer.Typer) -> None:
    """Add this module's top-level commands to ``app``."""
    app.command("update")(update)
    app.command("clean")(clean)
