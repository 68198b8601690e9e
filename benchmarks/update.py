"""Update benchmark: ``repotool update`` vs ``apt-get update`` vs python-tuf, same data.

SPEC §5 (second wave): at 100,000 files cold update <= 0.25x ``apt-get update`` on an
apt repository with the same number of entries (and <= 0.3x the one-role python-tuf
client), no-change <= 0.15x apt's; at 1,000 and 10,000 files no slower than apt; at
1,000,000 files in 100,000 projects (``--files 1000000``) cold <= 0.5x apt; peak memory
<= 150 MB.  ``list``, ``search`` and ``show`` answer from local state in <= 0.15 s.
Every figure is printed as a ratio against apt and python-tuf from the same run.

The three repositories hold the same entries (``--files``) in the same projects
(``--projects``), numbered as in ``anchors.py``:

* repotool: real wheels, ``repo add`` + ``repo sign`` (``common.build_repository``,
  shared with ``publish.py`` through ``--workdir``);
* apt: ``anchors.build_apt_repo`` (flat, lean stanzas, xz index, gpg-signed);
* python-tuf: ``anchors.build_tuf_repo`` (one targets role with every entry).

All are served by ONE ``anchors.serve_dir`` server (the work directory) and read
over ``file:`` too.  ``http-nodelay`` is the same server with TCP_NODELAY on its
sockets (``common.serve_dir_nodelay``): ``http.server`` sends headers and body in
two writes, so on a kept-alive connection every response after the first waits
~40 ms for a delayed ACK (Nagle); that penalises clients making many requests,
which production servers (nginx: ``tcp_nodelay on``) do not.  Every client run is a
child process through anchors' launcher
(wall seconds from spawn to reap, ``ru_maxrss`` of the largest process of the tree).
Per repeat and transport, interleaved: apt cold + no-change (fresh apt root), python-tuf
cold + no-change (fresh cache), repotool cold + no-change.  repotool's cold run is
``repotool --home H update`` after ``repotool --home H clean`` (not timed): the
keyring stays, which is what a user's cold update looks like (``source add`` is
timed once, separately).  Medians are printed, with ratios against the budgets.

Usage::

    /work/venv/bin/python benchmarks/update.py --files 10000 --projects 1000 --repeat 3
    /work/venv/bin/python benchmarks/update.py --files 100000 --projects 10000 \\
        --workdir /tmp/repotool-bench
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anchors
import common
from common import log, median

PEAK_BUDGET_MIB = 150


def budgets(files: int) -> dict[tuple[str, str], float]:
    """SPEC §5's ratio budgets for ``files`` entries (the second wave's where it set one;
    python-tuf's first-wave 0.3x cold where it applies)."""
    if files >= 1_000_000:
        return {("cold", "apt"): 0.5}
    if files >= 100_000:
        return {("cold", "apt"): 0.25, ("cold", "python-tuf"): 0.3, ("no_change", "apt"): 0.15}
    return {("cold", "apt"): 1.0, ("no_change", "apt"): 1.0}
QUERY_BUDGET_S = 0.15


def _anchor_repos(workdir: Path, files: int, projects: int) -> tuple[anchors.AptRepo, Path]:
    """The apt and python-tuf repositories (cached under ``workdir``)."""
    marker = workdir / "anchors.json"
    if marker.exists():
        doc = json.loads(marker.read_text())
        if doc["files"] == files and doc["projects"] == projects:
            apt = doc["apt"]
            repo = anchors.AptRepo(
                root=Path(apt["root"]), keyring=Path(apt["keyring"]),
                fingerprint=apt["fingerprint"], layout=apt["layout"], suite=apt["suite"],
                components=tuple(apt["components"]), arch=apt["arch"],
                entries=apt["entries"], sizes=apt["sizes"],
            )
            log("reusing the apt and python-tuf repositories")
            return repo, Path(doc["tuf_meta"])
    marker.unlink(missing_ok=True)
    shutil.rmtree(workdir / "apt-repo", ignore_errors=True)
    shutil.rmtree(workdir / "tuf-repo", ignore_errors=True)
    repo = anchors.build_apt_repo(workdir / "apt-repo", files, projects)
    meta = anchors.build_tuf_repo(workdir / "tuf-repo", files, projects)
    log(f"apt and python-tuf repositories with {files} entries built")
    marker.write_text(json.dumps({
        "files": files, "projects": projects, "tuf_meta": str(meta),
        "apt": {"root": str(repo.root), "keyring": str(repo.keyring),
                "fingerprint": repo.fingerprint, "layout": repo.layout, "suite": repo.suite,
                "components": list(repo.components), "arch": repo.arch,
                "entries": repo.entries, "sizes": repo.sizes},
    }))
    return repo, meta


def _repotool_sizes(root: Path) -> dict[str, int]:
    """Bytes a cold update downloads: timestamp, snapshot, targets, every index shard."""
    meta = root / "metadata"
    ts = json.loads((meta / "timestamp.json").read_bytes())
    snap_v = ts["signed"]["meta"]["snapshot.json"]["version"]
    snap = json.loads((meta / f"{snap_v}.snapshot.json").read_bytes())
    tgt_v = snap["signed"]["meta"]["targets.json"]["version"]
    tgt = json.loads((meta / f"{tgt_v}.targets.json").read_bytes())
    shards = [t for p, t in tgt["signed"]["targets"].items() if p.startswith("index/")]
    return {
        "timestamp.json": (meta / "timestamp.json").stat().st_size,
        "snapshot.json": (meta / f"{snap_v}.snapshot.json").stat().st_size,
        "targets.json": (meta / f"{tgt_v}.targets.json").stat().st_size,
        "index_shards": len(shards),
        "index_shards_bytes": sum(t["length"] for t in shards),
    }


def _summ(runs: list[anchors.RunStats]) -> dict[str, Any]:
    return {
        "median_s": median([r.seconds for r in runs]),
        "all_s": [round(r.seconds, 4) for r in runs],
        "peak_rss_kib": max(r.peak_rss_kib for r in runs),
    }


FETCHED: dict[str, dict[str, int]] = {}  # "cold"/"no_change" -> files and bytes fetched


def _repotool_update(home: Path, expect_changed: bool, projects: int) -> anchors.RunStats:
    st = common.measured("update", "--json", home=home)
    doc = json.loads(st.stdout)[0]
    if not doc["ok"] or doc["changed"] != expect_changed or doc["projects"] != projects:
        raise common.BenchError(f"unexpected update result: {doc}")
    FETCHED["cold" if expect_changed else "no_change"] = {
        "files": doc["files_fetched"], "bytes": doc["bytes_fetched"]}
    return st


def run(workdir: Path, files: int, projects: int, repeat: int,
        transports: list[str]) -> dict[str, Any]:
    workdir = workdir.resolve()
    sdir = workdir / f"repotool-{files}"
    built = common.build_repository(sdir, files, projects)
    adir = workdir / f"anchors-{files}"
    adir.mkdir(parents=True, exist_ok=True)
    apt_repo, tuf_meta = _anchor_repos(adir, files, projects)
    root_bytes = (tuf_meta / "1.root.json").read_bytes()
    state = workdir / f"state-{files}"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir()
    repo_root = Path(built.root)
    res: dict[str, Any] = {
        "files": files, "projects": projects, "repeat": repeat,
        "load_before": common.uptime(),
        "peak_rss_floor_kib": anchors.rss_floor_kib(),
        "sizes": {
            "apt": apt_repo.sizes,
            "python-tuf": {p.name: p.stat().st_size for p in sorted(tuf_meta.iterdir())},
            "repotool": _repotool_sizes(repo_root),
        },
    }
    with anchors.serve_dir(workdir) as base, common.serve_dir_nodelay(workdir) as base_nd:
        urls = {
            "file": {
                "apt": apt_repo.root.as_uri() + "/",
                "python-tuf": tuf_meta.as_uri() + "/",
                "repotool": repo_root.as_uri() + "/",
            },
            "http": {
                "apt": f"{base}{apt_repo.root.relative_to(workdir)}/",
                "python-tuf": f"{base}{tuf_meta.relative_to(workdir)}/",
                "repotool": f"{base}{repo_root.relative_to(workdir)}/",
            },
        }
        urls["http-nodelay"] = {k: v.replace(base, base_nd, 1) for k, v in urls["http"].items()}
        homes = {}
        add_runs = []
        for t in transports:
            homes[t] = state / f"home-{t}"
            add_runs.append(common.measured(
                "source", "add", "bench", urls[t]["repotool"], "--key", built.pub,
                home=homes[t]))
        res["source_add"] = _summ(add_runs)
        runs: dict[tuple[str, str, str], list[anchors.RunStats]] = {}

        def pair(key: tuple[str, str], cold: Callable[[], anchors.RunStats],
                 warm: Callable[[], anchors.RunStats]) -> None:
            c, w = cold(), warm()
            runs.setdefault((*key, "cold"), []).append(c)
            runs.setdefault((*key, "no_change"), []).append(w)
            log(f"{key[0]:4} {key[1]:10}: cold {c.seconds:.3f}s ({c.peak_rss_kib // 1024} MiB)"
                f"  no-change {w.seconds:.3f}s ({w.peak_rss_kib // 1024} MiB)")

        for r in range(repeat):
            for t in transports:
                u = urls[t]
                apt_state = state / f"apt-{t}-{r}"
                apt = functools.partial(
                    anchors.apt_update_measured, u["apt"], apt_repo.keyring, apt_state,
                    suite=apt_repo.suite, components=apt_repo.components)
                pair((t, "apt"), apt, apt)
                tuf_state = state / f"tuf-{t}-{r}"
                tuf = functools.partial(
                    anchors.tuf_update_measured, u["python-tuf"], root_bytes, tuf_state)
                pair((t, "python-tuf"), tuf, tuf)
                home = homes[t]
                if r > 0:
                    common.repotool("clean", home=home)
                pair((t, "repotool"),
                     functools.partial(_repotool_update, home, True, projects),
                     functools.partial(_repotool_update, home, False, projects))
                shutil.rmtree(apt_state, ignore_errors=True)
                shutil.rmtree(tuf_state, ignore_errors=True)
        last = json.loads(common.measured("update", "--json", home=homes[transports[0]]).stdout)
        res["repotool_no_change_fetch"] = {
            "files": last[0]["files_fetched"], "bytes": last[0]["bytes_fetched"]}

        # queries against the first transport's home
        home = homes[transports[0]]
        q = {
            "list": ("list",),
            "search": ("search", "yaml"),
            "show": ("show", common.project_name(projects // 2)),
        }
        qruns: dict[str, list[anchors.RunStats]] = {k: [] for k in q}
        for _ in range(max(3, repeat)):
            for k, a in q.items():
                qruns[k].append(common.measured(*a, home=home))
        res["queries"] = {k: _summ(v) for k, v in qruns.items()}
        res["queries_output_lines"] = {k: v[0].stdout.count("\n") for k, v in qruns.items()}
    res["results"] = {f"{t}/{tool}/{case}": _summ(v) for (t, tool, case), v in runs.items()}
    res["repotool_fetched"] = dict(FETCHED)
    res["build"] = {"add": built.add, "sign": built.sign, "gen_seconds": built.gen_seconds}
    res["load_after"] = common.uptime()
    shutil.rmtree(state, ignore_errors=True)
    return res


def _print(res: dict[str, Any], transports: list[str]) -> None:
    w = sys.stdout.write
    R = res["results"]
    w(f"\nupdate: {res['files']} entries in {res['projects']} projects, median of "
      f"{res['repeat']}; load average {res['load_before']} -> {res['load_after']} "
      f"(2 cores, shared machine); RSS floor (launcher) "
      f"{res['peak_rss_floor_kib'] // 1024} MiB\n\n")
    w("| transport | tool | cold s | no-change s | cold / apt | no-change / apt | "
      "cold / python-tuf | no-change / python-tuf | peak RSS MiB (cold / no-change) |\n")
    w("|---|---|---|---|---|---|---|---|---|\n")
    for t in transports:
        for tool in ("apt", "python-tuf", "repotool"):
            c, n = R[f"{t}/{tool}/cold"], R[f"{t}/{tool}/no_change"]
            ratios = [
                R[f"{t}/{tool}/{case}"]["median_s"] / R[f"{t}/{anchor}/{case}"]["median_s"]
                for anchor in ("apt", "python-tuf") for case in ("cold", "no_change")]
            w(f"| {t} | {tool} | {c['median_s']:.3f} | {n['median_s']:.3f} | "
              f"{ratios[0]:.2f} | {ratios[1]:.2f} | {ratios[2]:.2f} | {ratios[3]:.2f} | "
              f"{c['peak_rss_kib'] // 1024} / {n['peak_rss_kib'] // 1024} |\n")
    w("\n| transport | ratio | value | budget | verdict |\n|---|---|---|---|---|\n")
    for t in transports:
        for (case, anchor), budget in budgets(res["files"]).items():
            ratio = R[f"{t}/repotool/{case}"]["median_s"] / R[f"{t}/{anchor}/{case}"]["median_s"]
            verdict = "met" if ratio <= budget else "MISSED"
            w(f"| {t} | repotool / {anchor} ({case}) | {ratio:.2f} | <= {budget} | {verdict} |\n")
        peak = max(R[f"{t}/repotool/{c}"]["peak_rss_kib"] for c in ("cold", "no_change")) / 1024
        verdict = "met" if peak <= PEAK_BUDGET_MIB else "MISSED"
        w(f"| {t} | repotool peak RSS MiB | {peak:.0f} | <= {PEAK_BUDGET_MIB} | {verdict} |\n")
    for case, fx in res.get("repotool_fetched", {}).items():
        w(f"\nrepotool {case} update fetched {fx['files']} file(s), {fx['bytes']} bytes")
    b = res.get("build", {})
    if b.get("add"):
        w(f"\nbuild (repo add + repo sign, cached builds report their first run): add "
          f"{b['add']['seconds']:.1f}s / {b['add']['peak_rss_kib'] // 1024} MiB, sign "
          f"{b['sign']['seconds']:.1f}s / {b['sign']['peak_rss_kib'] // 1024} MiB, "
          f"{b['sign']['summary']['files']} files written\n")
    f = res["repotool_no_change_fetch"]
    w(f"\nrepotool no-change update fetched {f['files']} file(s), {f['bytes']} bytes; "
      f"source add: {res['source_add']['median_s']:.3f}s\n")
    w("\n| query | median s | peak RSS MiB | output lines | budget | verdict |\n"
      "|---|---|---|---|---|---|\n")
    for k, v in res["queries"].items():
        verdict = "met" if v["median_s"] <= QUERY_BUDGET_S else "MISSED"
        w(f"| repotool {k} | {v['median_s']:.3f} | {v['peak_rss_kib'] // 1024} | "
          f"{res['queries_output_lines'][k]} | <= {QUERY_BUDGET_S} | {verdict} |\n")
    w(f"\nsizes: {json.dumps(res['sizes'])}\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--projects", type=int, default=None, help="default: files / 10")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--transport", action="append", choices=("http", "http-nodelay", "file"),
                    help="repeatable (default: all three)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/repotool-bench"))
    args = ap.parse_args(argv)
    projects = args.projects or max(1, args.files // 10)
    transports = args.transport or ["http", "http-nodelay", "file"]
    res = run(args.workdir, args.files, projects, args.repeat, transports)
    out = args.workdir.resolve() / f"update-{args.files}.json"
    out.write_text(json.dumps(res, indent=1))
    _print(res, transports)
    log(f"results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
